"""``leadscore calibrate --compare shadow``: the tenant's active plan and its shadow plan side by
side, each from the service's own record of it (docs/plans.md, Champion and challenger).

The active plan's values come from ``score-changed``, the shadow's from
``score-changed-shadow``, both as ``calibrate`` reads a score from the topics: each entity's
last change at or before ``--since``; the conversions after it, up to ``--until``. Only the
entities both plans have a value for are compared (a shadow starts with empty states where it
was published: give ``--since`` a moment well after that). Besides ``calibrate --compare``'s
figures (bands, lift, thresholds, AUC and deciles per side) the report lists the entities whose
tier differs under the two plans.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from streams.scoring import Plan
from streams.scoring.aggregate import tier_of

#: Most entities whose tier differs that comparison.json lists (all are counted).
MAX_LISTED = 1000


class Scored(Protocol):
    """An entity's value of the score (``calibrate.Observation``)."""

    @property
    def entity_id(self) -> str: ...
    @property
    def score(self) -> int: ...


def tier_differences(current: Sequence[Scored], shadow: Sequence[Scored], plan: Plan, name: str,
                     shadow_plan: Plan, shadow_name: str) -> list[dict[str, Any]]:  # fmt: skip
    """The entities whose tier differs (both sides the same entities), the largest moves in
    value first."""
    score, other = plan.by_name[name], shadow_plan.by_name[shadow_name]
    values = {o.entity_id: o.score for o in shadow}
    out: list[dict[str, Any]] = []
    for o in current:
        mine, theirs = tier_of(score, o.score), tier_of(other, values[o.entity_id])
        if mine != theirs:
            out.append({"entity_id": o.entity_id,
                        "current": {"value": o.score, "tier": mine},
                        "shadow": {"value": values[o.entity_id], "tier": theirs}})  # fmt: skip
    out.sort(key=lambda d: (-abs(d["shadow"]["value"] - d["current"]["value"]), d["entity_id"]))
    return out
