"""``bench/latency_budget.py`` without a broker: it reads the worker's own figures from its
Prometheus text and writes its table from the figures of a run. No timing is judged here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.bench import bench_module

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def budget() -> Any:
    return bench_module("latency_budget")


def test_the_worker_figures_come_from_its_metrics(budget: Any) -> None:
    text = "\n".join([
        "# HELP leadscore_commit_seconds Time of one commit",
        'leadscore_commit_seconds_bucket{le="0.1"} 3.0',
        "leadscore_commit_seconds_sum 0.5",
        "leadscore_commit_seconds_count 4.0",
        'leadscore_processing_seconds_sum{stage="score"} 0.25',
        'leadscore_processing_seconds_count{stage="score"} 1000.0',
        'leadscore_transactions_total{result="committed"} 4.0',
        'leadscore_transactions_total{result="aborted"} 1.0',
    ])  # fmt: skip
    found = budget.scrape(text)
    assert found == {
        "leadscore_commit_seconds_sum": 0.5,
        "leadscore_commit_seconds_count": 4.0,
        'leadscore_processing_seconds_sum{stage="score"}': 0.25,
        'leadscore_processing_seconds_count{stage="score"}': 1000.0,
        'leadscore_transactions_total{result="committed"}': 4.0,
    }
    assert budget.per_record(found, "score") == 250.0
    assert budget.per_record(found, "ingest") == 0.0  # no records: no division by zero
    assert budget.setting("LEADSCORE_BATCH_SIZE=500") == ("LEADSCORE_BATCH_SIZE", "500")


def test_the_table_names_every_step(budget: Any) -> None:
    step = {"p50_ms": 10, "p95_ms": 20, "p99_ms": 30}
    run = {
        "target_rate_per_s": 2000.0, "achieved_rate_per_s": 1990.0, "samples": 900,
        "settings": {}, "load_1m": 3.5, "steps": dict.fromkeys(budget.STEPS, step),
        "end_to_end": {"append to append (make bench)": step},
        "share_of_slowest_1pct_append_to_append": {"queue, hop 1": 0.5},
        "worker": {"commits_per_s": 9.0}, "cpu_cores_during_window": {"worker": 0.5},
        "median_append_to_append_per_tenth_ms": [1, 2],
    }  # fmt: skip
    table = budget.markdown({"command": "python bench/latency_budget.py", "runs": [run]})
    assert "**2,000.0 events/s** (achieved 1,990.0; 900 samples" in table
    for name in budget.STEPS:
        assert f"| {name} | 10 | 20 | 30 |" in table
    assert "| queue, hop 1 | 10 | 20 | 30 | 0.5 |" in table
