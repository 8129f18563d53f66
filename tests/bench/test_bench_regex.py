"""``bench/regex.py`` (``make bench-regex``) still runs: a tiny run writes its results files,
with both plans and their events/s. No timing is judged here, only that the harness works."""

from __future__ import annotations

from pathlib import Path

from tests.bench import tiny_run


def test_a_tiny_run_writes_both_plans_figures(tmp_path: Path) -> None:
    result, table = tiny_run(tmp_path, "regex", "--events", "200", "--rounds", "1",
                             "--re-budget", "0.001")  # fmt: skip
    assert set(result["plans"]) == {"plain", "regex", "catastrophic"}
    for figures in result["plans"].values():
        assert figures["events_per_s"] > 0
        assert figures["rules"] == 8
        assert figures["changes"] == 0  # adversarial texts match nothing, under either plan
    assert result["ratio"] > 0
    assert result["workload"]["events"] == 200
    assert {"cpu", "cores"} <= set(result["machine"])
    assert result["command"].startswith("python bench/regex.py --events 200")
    assert len(result["python_re"]) == 7  # every catastrophic regex timed on Python's re
    assert "| plain | 8 |" in table
    assert "| catastrophic | 8 |" in table and "| regex | 8 |" in table
    assert "Ratio catastrophic / plain" in table
