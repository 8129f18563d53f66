"""The pure scoring core: plans, events, the engine, explanation and state serialization.

No I/O, clocks, environment or frameworks here (an import-linter contract enforces it).
The stream shell and the offline scorer call only the names exported below.
"""

from streams.scoring.aggregate import category_values, reached
from streams.scoring.errors import PlanError, PlanIssue, ScoringError, StateFormatError
from streams.scoring.events import (
    Adjustment,
    EntityKey,
    Event,
    Invalid,
    Item,
    parse_input,
    route,
)
from streams.scoring.explain import Explanation, explain
from streams.scoring.members import apply_member
from streams.scoring.outcomes import Cause, Outcome, ScoreChange, ScoreResult, Verdict
from streams.scoring.plan.loader import load_plan
from streams.scoring.plan.spec import Plan, Score
from streams.scoring.rollup import Forward, MemberUpdate
from streams.scoring.scorer import advance, apply, next_due_ms
from streams.scoring.serialize import dumps, loads
from streams.scoring.state import EntityState

__all__ = [
    "Adjustment",
    "Cause",
    "EntityKey",
    "EntityState",
    "Event",
    "Explanation",
    "Forward",
    "Invalid",
    "Item",
    "MemberUpdate",
    "Outcome",
    "Plan",
    "PlanError",
    "PlanIssue",
    "Score",
    "ScoreChange",
    "ScoreResult",
    "ScoringError",
    "StateFormatError",
    "Verdict",
    "advance",
    "apply",
    "apply_member",
    "category_values",
    "dumps",
    "explain",
    "load_plan",
    "loads",
    "next_due_ms",
    "parse_input",
    "reached",
    "route",
]
