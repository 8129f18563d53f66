"""A decay check is scheduled without evaluating the total at the next multiple of the
granularity when decay cannot move it out of its band by then (``decay._steady``, from
``decay.evaluate``'s bounds). Scoring traffic with and without that shortcut must publish the
same changes, decay checks included (the shortcut is switched off by replacing ``_steady``,
which only the pure build's calls see: ``make test`` runs these tests pure too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams import native
from streams.commands.offline import OfflineScorer
from streams.commands.traffic import TrafficShape, as_offline_line, generate
from streams.scoring import Invalid, ScoreChange, decay, load_plan, parse_input
from streams.scoring.plan.spec import Score

ROOT = Path(__file__).resolve().parents[2]


def _changes(plan_path: str) -> list[ScoreChange]:
    plan = load_plan((ROOT / plan_path).read_text(), source=plan_path)
    scorer = OfflineScorer(plan)
    out: list[ScoreChange] = []
    shape = TrafficShape(contacts=200, deals=30, step_ms=15 * 60_000)  # about 30 days
    for source, record in generate(2500, seed=5, shape=shape):
        parsed = parse_input(as_offline_line(source, record))
        if not isinstance(parsed, Invalid):
            out.extend(scorer.feed(parsed))
    return out


@pytest.mark.skipif(native.loaded() != "pure", reason="replacing _steady reaches pure calls only")
def test_the_shortcut_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    plan_path = "plans/reference-second-wave.yaml"
    steady: list[bool] = []

    def counted(score: Score, low: int, high: int) -> bool:
        steady.append(kept(score, low, high))
        return steady[-1]

    kept = decay._steady
    monkeypatch.setattr(decay, "_steady", counted)
    with_shortcut = _changes(plan_path)
    monkeypatch.setattr(decay, "_steady", lambda score, low, high: False)
    without = _changes(plan_path)
    assert with_shortcut == without
    assert any(c.cause == "decay" for c in without)
    assert True in steady and False in steady  # the shortcut was taken, and refused


def test_steady_means_no_boundary_in_the_range() -> None:
    plan = load_plan((ROOT / "plans/reference-second-wave.yaml").read_text(), source="wave2")
    engagement = plan.by_name["engagement"]  # thresholds 100, 250, 500
    assert decay._steady(engagement, 101, 249)
    assert decay._steady(engagement, 100, 249)  # 100 is reached all through
    assert not decay._steady(engagement, 99, 120)
    assert not decay._steady(engagement, 240, 250)
