"""Shadow plan commands without a broker: their refusals (exit 2, one line, nothing sent) and
the tier differences of ``calibrate --compare shadow``."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import main
from streams.commands.calibrate import Observation
from streams.commands.compare_shadow import tier_differences
from streams.scoring import load_plan

ROOT = Path(__file__).resolve().parents[2]
PLAN = """
version: {version}
scores:
  - name: engagement
    entity: contact
    tiers: [{{name: cold, below: {warm}}}, {{name: hot}}]
    rules: [{{id: visit, on: page_visit, points: 10}}]
"""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "publish", "--tenant", "acme"], "give the plan FILE, or --shadow FILE"),
        (["plan", "publish", "--tenant", "acme", "a.yaml", "--shadow", "b.yaml"],
         "give the plan FILE, or --shadow FILE (not both)"),
        (["plan", "publish", "--tenant", "acme", "--shadow", "missing.yaml"], "cannot read"),
        (["plan", "promote", "--tenant", "acme", "--from-time", "yesterday"],
         "--from-time must be epoch millis or ISO-8601"),
        (["plan", "discard", "--tenant", " "], "--tenant must name the tenant"),
        (["calibrate", "--plan", str(ROOT / "plans" / "reference.yaml"), "--score",
          "engagement", "--since", "2026-01-01T00:00:00Z", "--until", "2026-02-01T00:00:00Z",
          "--compare", "shadow"], "--compare shadow needs --tenant"),
    ],
)  # fmt: skip
def test_refusals(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_tier_differences_lists_the_entities_whose_tier_moved_largest_first() -> None:
    current = load_plan(PLAN.format(version="a", warm=50), source="a.yaml")
    shadow = load_plan(PLAN.format(version="b", warm=20), source="b.yaml")
    mine = [Observation("c1", 30, False, frozenset()), Observation("c2", 60, True, frozenset()),
            Observation("c3", 10, False, frozenset())]  # fmt: skip
    theirs = [Observation("c1", 30, False, frozenset()), Observation("c2", 60, True, frozenset()),
              Observation("c3", 45, False, frozenset())]  # fmt: skip
    got = tier_differences(mine, theirs, current, "engagement", shadow, "engagement")
    # c1: cold (below 50) against hot (20 and up); c3: 10 cold against 45 hot; c2 hot on both
    assert [(d["entity_id"], d["current"]["tier"], d["shadow"]["tier"]) for d in got] == [
        ("c3", "cold", "hot"), ("c1", "cold", "hot")]  # fmt: skip
