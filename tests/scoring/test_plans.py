"""Every plan shipped in plans/ loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.scoring import load_plan

PLANS = Path(__file__).resolve().parents[2] / "plans"


@pytest.mark.parametrize(
    "path", sorted(PLANS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(PLANS))
)
def test_plan_loads(path: Path) -> None:
    plan = load_plan(path.read_text(), source=str(path))
    assert plan.scores


def test_reference_plan_is_big_enough() -> None:
    plan = load_plan((PLANS / "reference.yaml").read_text(), source="reference.yaml")
    assert plan.rule_count >= 40
    assert len(plan.scores) >= 3
