"""``bench/scale.py`` without a broker: the pause figures from lists of append times, and the
results table. A run of the script itself needs the three-node cluster and minutes, so it is not
part of ``make test`` (``make bench-scale``, or ``bench/scale.py --smoke`` for the harness). No
timing is judged here."""

from __future__ import annotations

from typing import Any

import pytest

from tests.bench import bench_module


@pytest.fixture(scope="module")
def scale() -> Any:
    return bench_module("scale")


def test_the_longest_gap_ends_in_the_window_and_may_start_before_it(scale: Any) -> None:
    stamps = [0, 100, 200, 1000, 1100, 1150, 3000]
    # the gap 200 -> 1000 straddles the window's start at 500: it counts, ended by 1000
    assert scale.longest_gap(stamps, 500, 2000) == (800, 1000)
    # from 1050 only the gaps ended by 1100 and 1150 count; 3000 is past the window's end
    assert scale.longest_gap(stamps, 1050, 2000) == (100, 1100)
    # the last gap, ended by 3000, once the window reaches it
    assert scale.longest_gap(stamps, 1050, 3001) == (1850, 3000)


def test_no_append_in_the_window_is_no_gap_and_a_first_append_alone_is_zero(scale: Any) -> None:
    assert scale.longest_gap([0, 100], 200, 300) is None
    assert scale.longest_gap([], 0, 100) is None
    assert scale.longest_gap([50, 400], 0, 100) == (0, 50)


def test_the_worst_partition_is_found_where_the_whole_topic_shows_no_pause(scale: Any) -> None:
    # partition 0 appends every 100 ms throughout; partition 1 stops from 1000 to 4000
    appends = [(0, t) for t in range(0, 6000, 100)] + [(1, t) for t in (800, 900, 1000, 4000, 4100)]
    stamps = sorted(t for _, t in appends)
    assert scale.longest_gap(stamps, 500, 6000)[0] == 100
    assert scale.longest_partition_gap(appends, 500, 6000) == (3000, 1)
    assert scale.longest_partition_gap([], 0, 10) is None


def test_caught_up_is_the_last_slow_change_in_the_window(scale: Any) -> None:
    latencies = [(1000, 50), (1500, 900), (2500, 400), (3000, 60), (9000, 5000)]
    assert scale.caught_up_ms(latencies, 1000, 5000, threshold=300) == 1500  # 2500 - 1000
    assert scale.caught_up_ms(latencies, 1000, 5000, threshold=1000) == 0
    # a slow change after the window's end belongs to the next window
    assert scale.caught_up_ms(latencies, 3000, 9000, threshold=300) == 0


def test_each_change_s_window_runs_to_the_next_change_the_last_to_the_end(scale: Any) -> None:
    assert scale.windows([10, 20, 35], 50) == [(10, 20), (20, 35), (35, 50)]
    assert scale.windows([], 50) == []


def test_pause_figures_of_a_join(scale: Any) -> None:
    stamps = [0, 100, 200, 2200, 2300, 2400]
    appends = [(0, t) for t in stamps]
    latencies = [(0, 40), (100, 50), (200, 60), (2200, 1900), (2300, 300), (2400, 50)]
    change = {"change": "join", "workers_before": 1, "workers_after": 2}
    got = scale.pause_figures(change, (150, 4000), stamps, appends, latencies, threshold=60)
    assert got["change"] == "join" and got["workers_after"] == 2
    assert got["longest_gap_ms"] == 2000
    assert got["gap_ended_s_after"] == 2.05  # 2200 - 150
    assert got["longest_partition_gap_ms"] == 2000
    assert got["caught_up_s"] == 2.15  # the change appended at 2300, 300 ms late
    assert got["caught_up_within_window"]  # 1.7 s of prompt changes before the window's end
    assert got["max_latency_ms"] == 1900
    assert got["window_s"] == 3.9  # rounded to 0.1 s


def test_a_backlog_to_the_window_s_end_has_not_caught_up(scale: Any) -> None:
    stamps = [0, 100, 1500, 2000, 2900]
    latencies = [(0, 40), (100, 50), (1500, 1400), (2000, 900), (2900, 400)]
    change = {"change": "leave", "workers_before": 2, "workers_after": 1}
    got = scale.pause_figures(change, (50, 3000), stamps, [(0, t) for t in stamps], latencies, 60)
    assert got["caught_up_s"] == 2.85 and not got["caught_up_within_window"]
    assert scale.shown_caught_up(got) == "> 3.0"  # the window, 2.95 s, to 0.1 s
    assert scale.shown_caught_up({**got, "caught_up_within_window": True}) == "2.85"


def test_speedups_are_over_one_worker(scale: Any) -> None:
    rows = {"1": {"events_per_s": 2000}, "2": {"events_per_s": 3000}, "4": {"events_per_s": 2500}}
    assert scale.speedups(rows) == {"1": 1.0, "2": 1.5, "4": 1.25}
    assert scale.speedups({"2": {"events_per_s": 3000}}) == {}


def test_the_results_table_holds_every_figure(scale: Any) -> None:
    result = {
        "run_at": "2026-12-06T12:00:00+00:00",
        "duration_s": 600,
        "command": "python bench/scale.py",
        "machine": {"cores": 2, "cpu": "AMD EPYC", "memory_gib": 23.5, "python": "3.11.7"},
        "load_avg_start": [1.5, 1.4, 1.3],
        "load_avg_end": [3.0, 2.0, 1.5],
        "throughput": {
            "1": {
                "events_per_s": 2000,
                "cpu_s_per_million_events": 150.0,
                "outputs": 21000,
                "window_s": 20.0,
                "load_1m": 2.5,
            },
            "2": {
                "events_per_s": 2600,
                "cpu_s_per_million_events": 190.5,
                "outputs": 21000,
                "window_s": 15.38,
                "load_1m": 3.1,
            },
        },
        "pauses": {
            "rate_per_s": 600.0,
            "achieved_rate_per_s": 598.2,
            "steady": {
                "window_s": 15.0,
                "longest_gap_ms": 180,
                "longest_partition_gap_ms": 900,
                "p50_latency_ms": 120.0,
                "p99_latency_ms": 400.0,
                "max_latency_ms": 520,
            },
            "changes": [
                {
                    "change": "join",
                    "workers_before": 1,
                    "workers_after": 2,
                    "done_s": 6.1,
                    "longest_gap_ms": 1234,
                    "gap_ended_s_after": 4.2,
                    "longest_partition_gap_ms": 5678,
                    "caught_up_s": 7.5,
                    "p99_latency_ms": 3000.0,
                    "max_latency_ms": 4100,
                }
            ],
        },
        "rebuild": {"entities": 500000, "ready_s_1_worker": 12.3},
    }
    text = scale.markdown(result)
    assert "| 1 | 2,000 | 1.0 | 150.0 | 21,000 | 20.0 | 2.5 |" in text
    assert "| 2 | 2,600 | 1.3 | 190.5 | 21,000 | 15.38 | 3.1 |" in text
    assert "| join | 1 -> 2 | 6.1 | 1234 | 4.2 | 5678 | 7.5 | 3000.0 | 4100 |" in text
    assert "longest partition gap 900 ms" in text and "p99 400.0" in text
    assert "2 cores" in text and "`python bench/scale.py`" in text
    assert "entities 500000, ready_s_1_worker 12.3" in text
    # a run of the rebuild alone has no throughput table and no pause table
    alone = scale.markdown({**result, "throughput": {}, "pauses": None})
    assert "| workers |" not in alone and "| change |" not in alone
    assert "Rebuild from the changelog: entities 500000" in alone


def test_the_smoke_s_counts_are_small_and_explicit_options_win(scale: Any) -> None:
    args = scale.arguments(["--smoke", "--events", "2000"])
    assert args.events == 2000 and args.workers == "1,2" and args.restore_entities == 2000
    assert args.out.name == "bench-scale-smoke"
    full = scale.arguments([])
    assert full.events == 40_000 and full.workers == "1,2,4"
    assert full.changes == "join,join,leave,leave"
    assert full.run != args.run  # each run its own topics
