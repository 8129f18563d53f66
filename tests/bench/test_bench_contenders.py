"""``bench/run.py``'s contenders (``make bench``) without a broker: the ``leadscore@<commit>``
contender is chosen by default from ``--base`` (``BENCH_BASE``), names topics it may hold, and
stands in the ratios and the table; ``ours-wave2`` is our worker on the second-wave plan, whose
roll-ups the generated inputs exercise. No worker runs and no timing is judged here."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streams.scoring import (
    EntityKey,
    EntityState,
    Invalid,
    apply,
    apply_member,
    load_plan,
    parse_input,
    route,
)
from streams.wire.codec import Codec, Source
from tests.bench import bench_module

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def run() -> Any:
    return bench_module("run")


def test_the_base_commit_is_a_contender_by_default(run: Any) -> None:
    names = run.arguments([]).contenders.split(",")
    assert names[names.index("ours") + 1 :][:2] == ["ours-wave2", "leadscore@3f54bb3"]
    assert "leadscore@abc1234" in run.arguments(["--base", "abc1234"]).contenders.split(",")
    without = run.arguments(["--base", ""]).contenders.split(",")
    assert not any(name.startswith("leadscore@") for name in without)
    chosen = run.arguments(["--contenders", "ours,{base}"]).contenders
    assert chosen == "ours,leadscore@3f54bb3"


def test_a_commit_contender_names_valid_topics(run: Any) -> None:
    who = run.Contender("leadscore@3f54bb3", "service")
    assert who.slug == "leadscore-3f54bb3"
    topics = run.TopicSet.named(run.TopicSet.input_names(f"b1-{who.slug}-tput"), "b1")
    for name in (*topics.inputs, *topics.outputs):
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name), name


def test_ratios_and_table_show_the_commit_contender(run: Any) -> None:
    def figures(events_per_s: int, p99_ms: float) -> dict[str, Any]:
        return {"throughput": {"events_per_s": events_per_s, "cpu_s_per_million_events": 1.0,
                               "peak_rss_mib": 1.0}, "latency": {"p99_ms": p99_ms}}  # fmt: skip

    contenders = {"ours": figures(2000, 20.0), "leadscore@3f54bb3": figures(1000, 40.0)}
    assert run.ratios(contenders) == {
        "throughput ours/leadscore@3f54bb3": 2.0,
        "p99 ours/leadscore@3f54bb3": 0.5,
    }
    # without ours, the first contender is the reference
    assert run.ratios({"leadscore@a": figures(10, 1), "leadscore@b": figures(5, 1)}) == {
        "throughput leadscore@a/leadscore@b": 2.0,
        "p99 leadscore@a/leadscore@b": 1.0,
    }
    result = {"contenders": contenders, "ratios": run.ratios(contenders),
              "commits": {"ours": "1" * 40 + " +changes",
                          "leadscore@3f54bb3": "3f54bb3" + "0" * 33}}  # fmt: skip
    table = run.markdown(result)
    assert "| leadscore@3f54bb3 | 1,000 |" in table
    assert "Commits: ours 111111111111 +changes, leadscore@3f54bb3 3f54bb300000." in table
    assert "rounds" not in table  # one round: no list of them
    contenders["ours"]["throughput_rounds"] = [1900, 2000]
    contenders["leadscore@3f54bb3"]["throughput_rounds"] = [1000, 800, 400]
    assert run.ratios(contenders)["median throughput ours/leadscore@3f54bb3"] == 2.5
    assert "- ours throughput rounds (events/s, the best above): 1,900, 2,000" in run.markdown(
        result
    )
    assert all(row.endswith("| - | - |") for row in table.splitlines() if "| 1.0 |" in row)


def test_a_contender_on_another_plan_is_named_with_it(run: Any, tmp_path: Path) -> None:
    plan = tmp_path / "old.yaml"
    plan.write_text("# an older plan\nversion: reference-1\nscores: []\n")
    ours = run.Contender("ours", "service")
    old = run.Contender("faust-baseline", "service", settings=(("LEADSCORE_PLAN_PATH", str(plan)),))
    assert run.plans([ours]) == {}
    shown = run.plans([ours, old])
    assert shown == {"faust-baseline": f"{plan} (version reference-1)"}
    figures = {"throughput": {"events_per_s": 1, "cpu_s_per_million_events": 1.0,
                              "peak_rss_mib": 1.0}}  # fmt: skip
    table = run.markdown({"contenders": {"ours": figures}, "ratios": {}, "plans": shown})
    assert (
        f"Plans: plans/reference.yaml, except faust-baseline: {plan} (version reference-1)."
        in table
    )


def tput(events_per_s: int) -> dict[str, Any]:
    return {"throughput": {"events_per_s": events_per_s, "cpu_s_per_million_events": 1.0,
                           "peak_rss_mib": 1.0}}  # fmt: skip


def test_the_common_rate_is_the_slowest_contenders_own_load(run: Any) -> None:
    args = run.arguments([])
    contenders = {"ours": tput(12_000), "quix-alo": tput(5_000), "pipe-confluent": tput(60_000)}
    assert run.common_rate(args, contenders) == (2_500.0, "50% of quix-alo's")
    # --latency-rate names it
    assert run.common_rate(run.arguments(["--latency-rate", "3000"]), contenders) == (
        3000.0,
        "--latency-rate",
    )
    # ours: the common rate, then its own load (in that order: the windows run in turn in one
    # process, and an overloaded own-load window would leave its aftermath to the next one);
    # the slowest: one window for both
    windows = run.latency_windows(args, contenders["ours"]["throughput"], 2_500.0)
    assert list(windows.items()) == [("latency_common", 2_500.0), ("latency", 6_000.0)]
    slowest = contenders["quix-alo"]
    assert run.latency_windows(args, slowest["throughput"], 2_500.0) == {"latency": 2_500.0}
    smoke = run.arguments(["--smoke", "--latency-max-rate", "0"])  # the smoke runs both
    assert run.latency_windows(smoke, slowest["throughput"], 2_500.0) == {
        "latency": 2_500.0,
        "latency_common": 2_500.0,
    }
    slowest["latency"] = {"p99_ms": 40.0, "target_rate_per_s": 2_500.0}
    run.windows_done(slowest)
    assert slowest["latency_common"] == {**slowest["latency"], "same_window_as_own_load": True}


def test_the_smoke_is_small_and_its_options_can_still_be_set(run: Any) -> None:
    smoke = run.arguments(["--smoke"])
    assert smoke.smoke and smoke.events == run.SMOKE["events"] <= 5_000
    assert smoke.rounds == 1 and smoke.latency_rate == run.SMOKE["latency_rate"]
    assert smoke.out.name == "bench-smoke"  # never bench/results
    assert run.own_rate(smoke, {"events_per_s": 100_000}) == run.SMOKE["latency_max_rate"]
    assert run.own_rate(smoke, {"events_per_s": 100}) == 50
    assert run.arguments(["--smoke", "--events", "3000"]).events == 3000
    full = run.arguments([])
    assert not full.smoke and full.events == 50_000 and full.out.name == "results"
    assert run.own_rate(full, {"events_per_s": 100_000}) == 50_000


def test_a_run_never_overwrites_an_earlier_runs_files(run: Any, tmp_path: Path) -> None:
    assert run.free_stem(tmp_path, "2026-12-06") == tmp_path / "2026-12-06"
    (tmp_path / "2026-12-06.json").write_text("{}")
    (tmp_path / "2026-12-06b.json").write_text("{}")
    assert run.free_stem(tmp_path, "2026-12-06") == tmp_path / "2026-12-06c"


def test_the_table_shows_both_latency_loads_and_the_goals(run: Any) -> None:
    ours, pipe = tput(10_000), tput(40_000)
    ours["latency"] = {"achieved_rate_per_s": 5_000.0, "p50_ms": 90.0, "p95_ms": 200.0,
                       "p99_ms": 900.0}  # fmt: skip
    ours["latency_common"] = {"p50_ms": 40.0, "p99_ms": 120.0}
    pipe["latency"] = {"achieved_rate_per_s": 20_000.0, "p50_ms": 50.0, "p95_ms": 100.0,
                       "p99_ms": 450.0}  # fmt: skip
    pipe["latency_common"] = {"p50_ms": 20.0, "p99_ms": 60.0}
    result: dict[str, Any] = {
        "contenders": {"ours": ours, "pipe-confluent-txn": pipe},
        "common_rate": {"events_per_s": 2_500.0, "from": "50% of x's"},
    }
    result["ratios"] = run.ratios(result["contenders"])
    assert result["ratios"]["p99 at the common rate ours/pipe-confluent-txn"] == 2.0
    result["latency_goals"] = run.latency_goals(result)
    assert result["latency_goals"] == {
        "p99_ms_at_common_rate": {"measured": 120.0, "goal": 250, "met": True},
        "p99_own_load_over_pipe_txn": {"measured": 2.0, "goal": 3.0, "met": True},
    }
    table = run.markdown(result)
    assert "Common latency rate: 2,500.0 events/s (50% of x's)." in table
    assert (
        "| ours | 10,000 | 1.0 | 1.0 | 5000.0 | 90.0 | 200.0 | 900.0 | 40.0 | 120.0 | - |" in table
    )
    assert "- goal p99_ms_at_common_rate: 120.0 (goal 250): met" in table


def test_ours_wave2_is_our_worker_on_the_second_plan(run: Any) -> None:
    chosen = {
        who.name: who for who in run.contenders(run.arguments(["--contenders", "ours,ours-wave2"]))
    }
    ours, wave2 = chosen["ours"], chosen["ours-wave2"]
    assert (wave2.kind, wave2.source_dir, wave2.python) == (ours.kind, ours.source_dir, ours.python)
    assert run.build_of(wave2) == run.build_of(ours)  # the same build, prepared once
    settings = dict(wave2.settings)
    assert set(settings) == {"LEADSCORE_PLAN_PATH"} and not ours.settings
    plan_path = Path(settings["LEADSCORE_PLAN_PATH"])
    assert plan_path == run.ROOT / "plans" / "reference-second-wave.yaml"
    plan = load_plan(plan_path.read_text(), source=str(plan_path))
    assert set(plan.rollup_sources) == {"account", "deal"}
    version = plan_path.read_text().split("\nversion: ", 1)[1].split("\n", 1)[0]
    shown = run.plans([ours, wave2])
    assert shown == {"ours-wave2": f"plans/reference-second-wave.yaml (version {version})"}
    commits = run.commits([ours, wave2])
    assert commits["ours-wave2"] == commits["ours"] and len(commits["ours"].split()[0]) == 40
    figures = tput(1_000)
    figures["throughput"]["outputs_by_entity"] = {"account": 30, "contact": 900, "deal": 70}
    table = run.markdown({"contenders": {"ours": tput(2_000), "ours-wave2": figures},
                          "ratios": run.ratios({"ours": tput(2_000), "ours-wave2": figures}),
                          "plans": shown})  # fmt: skip
    assert "| ours-wave2 | 1,000 |" in table and "- throughput ours/ours-wave2: 2.0" in table
    assert "except ours-wave2: plans/reference-second-wave.yaml (version " in table
    assert (
        "- ours-wave2 score changes by entity (throughput): account 30, contact 900, deal 70"
        in table
    )


def changes(
    plan_path: Path, inputs: list[tuple[Source, dict[str, Any]]]
) -> Counter[tuple[str, str]]:
    """The score changes (entity kind, cause) of ``inputs`` in memory, each member update
    applied to its deal or account at once (as bench/core.py does)."""
    plan = load_plan(plan_path.read_text(), source=str(plan_path))
    codec = Codec.load()
    states: dict[EntityKey, EntityState] = {}
    found: Counter[tuple[str, str]] = Counter()
    now = 0
    for source, raw in inputs:
        record = codec.decode_input(source, codec.encode(codec.inputs[source], raw), fmt="avro")
        item = parse_input(record)
        assert not isinstance(item, Invalid), item
        now = max(now, record["occurred_at"])
        for key in route(item):
            outcome = apply(states.get(key), key, item, plan, now_ms=now)
            states[key] = outcome.state
            found.update((key.kind, str(c.cause)) for c in outcome.changes)
            for target, update in outcome.forwards:
                done = apply_member(states.get(target), target, update, plan, now_ms=now)
                states[target] = done.state
                found.update((target.kind, str(c.cause)) for c in done.changes)
    return found


def test_the_inputs_exercise_the_second_plans_rollups(run: Any) -> None:
    inputs = run.traffic(1_000, seed=3, contacts=2_000, deals=300)
    profiles = [r for s, r in inputs if s is Source.CONTACT_PROFILES]
    assert profiles and all(r["attributes"]["account_id"].startswith("company-") for r in profiles)
    companies = Counter(r["attributes"]["account_id"] for r in profiles)
    assert len(companies) < len({r["contact_id"] for r in profiles})  # several contacts each
    wave2 = changes(run.WAVE2_PLAN, inputs)
    assert wave2["account", "rollup"] > 0 and wave2["deal", "rollup"] > 0
    # without the company attribute, no account at all: what with_company is for
    bare = [(s, {**r, "attributes": {k: v for k, v in r["attributes"].items()
                                     if k != "account_id"}}) if s is Source.CONTACT_PROFILES
            else (s, r) for s, r in inputs]  # fmt: skip
    assert not [kind for kind, _ in changes(run.WAVE2_PLAN, bare) if kind == "account"]
    # and the reference plan scores the same either way
    reference = changes(run.PLAN, inputs)
    assert reference == changes(run.PLAN, bare) and reference["contact", "rule"] > 0
    assert not [kind for kind, _ in reference if kind == "account"]


def test_generated_traffic_keeps_out_of_the_plans_quiet_hours(run: Any) -> None:
    """The benchmark's work must not depend on the hour it runs at: both plans defer awards in
    quiet hours, so the traffic ends before the latest quiet window its span would touch."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from streams.scoring.quiet_hours import quiet_until

    warsaw = ZoneInfo("Europe/Warsaw")
    quiet = run.quiet_hours_of((run.PLAN, run.WAVE2_PLAN))
    assert quiet, "the plans have quiet hours: this test would check nothing"

    def ms(*at: int) -> int:
        return int(datetime(*at, tzinfo=warsaw).timestamp() * 1000)

    span = 50_000 * 20
    # a Wednesday noon: nothing is quiet, the traffic ends a minute before now
    assert run.traffic_end(ms(2026, 12, 9, 12, 0, 30), span) == ms(2026, 12, 9, 11, 59)
    # a Tuesday just past midnight (weekday nights are quiet from 22:00): the evening before
    assert run.traffic_end(ms(2026, 12, 8, 0, 5), span) == ms(2026, 12, 7, 21, 58)
    # a Saturday (quiet all day, after Friday's night): Friday evening
    assert run.traffic_end(ms(2026, 12, 5, 13, 0), span) == ms(2026, 12, 4, 21, 58)
    # a few minutes into the quiet: the span would reach into it
    assert run.traffic_end(ms(2026, 12, 9, 22, 3), span) == ms(2026, 12, 9, 21, 58)
    for now in range(ms(2026, 12, 3, 0, 0), ms(2026, 12, 10, 0, 0), 37 * 60_000):
        end = run.traffic_end(now, span)
        assert end <= now - 60_000
        for minute in range(end - span - 60_000, end + 120_000, 60_000):
            assert all(quiet_until(q, zone, minute) is None for q, zone in quiet), (now, minute)
