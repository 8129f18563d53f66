"""``bench/run.py``'s contenders (``make bench``) without a broker: the ``leadscore@<commit>``
contender is chosen by default from ``--base`` (``BENCH_BASE``), names topics it may hold, and
stands in the ratios and the table. No worker runs and no timing is judged here."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def run() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        import run as module  # bench/run.py

        yield module
    finally:
        sys.path.remove(str(BENCH))


def test_the_base_commit_is_a_contender_by_default(run: Any) -> None:
    names = run.arguments([]).contenders.split(",")
    assert names[names.index("ours") + 1] == "leadscore@3f54bb3"
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
