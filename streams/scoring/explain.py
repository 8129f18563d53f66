"""Why a score has its value: live contributions, folded totals, categories, limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.scoring.aggregate import clamp, reached, total, unlimited_total
from streams.scoring.plan import Plan
from streams.scoring.state import (
    C_CATEGORY,
    C_EXPIRES,
    C_OCCURRED,
    C_POINTS,
    C_RULE,
    C_SOURCE,
    NO_EPOCH,
    Contribution,
    EntityState,
)


@dataclass(frozen=True, slots=True)
class Explanation:
    score: str
    value: int
    total_before_limits: int
    limits: tuple[int | None, int | None]
    #: (rule, points, category, occurred_at_ms, expires_at_ms, source id, kind)
    contributions: tuple[tuple[str, int, str | None, int, int | None, str, str], ...]
    #: (rule, category, points) folded once they could no longer expire or be re-timed
    folded: tuple[tuple[str, str | None, int], ...]
    #: (category, sum before its cap, min, max, value after the cap)
    categories: tuple[tuple[str, int, int | None, int | None, int], ...]
    uncategorised: int
    #: (due_ms, source id, rule, points) awards deferred by quiet hours
    deferred: tuple[tuple[int, str, str, int], ...]
    thresholds_reached: tuple[str, ...]
    epoch_started_at_ms: int | None
    #: (rule, points, occurred_at_ms, source id) per once rule: its latest match refused because
    #: the rule had awarded; it is awarded if a late set/reset drops that award
    stand_by: tuple[tuple[str, int, int, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        low, high = self.limits
        return {
            "score": self.score,
            "value": self.value,
            "total_before_limits": self.total_before_limits,
            "limits": {"min": low, "max": high},
            "contributions": [
                {
                    "rule": rule,
                    "points": points,
                    "category": category,
                    "occurred_at": occurred,
                    "expires_at": expires,
                    "source_event_id": source,
                    "kind": kind,
                }
                for rule, points, category, occurred, expires, source, kind in self.contributions
            ],
            "folded": [
                {"rule": rule, "category": category, "points": points}
                for rule, category, points in self.folded
            ],
            "categories": [
                {"name": name, "sum": raw, "min": lo, "max": hi, "value": value}
                for name, raw, lo, hi, value in self.categories
            ],
            "uncategorised": self.uncategorised,
            "deferred": [
                {"due_at": due, "source_event_id": source, "rule": rule, "points": points}
                for due, source, rule, points in self.deferred
            ],
            "thresholds_reached": list(self.thresholds_reached),
            "epoch_started_at": self.epoch_started_at_ms,
            "stand_by": [
                {"rule": rule, "points": points, "occurred_at": occurred, "source_event_id": source}
                for rule, points, occurred, source in self.stand_by
            ],
        }


def explain(state: EntityState | None, plan: Plan, score_name: str) -> Explanation:
    """Explain one score of an entity (raises KeyError for a score the plan does not have)."""
    score = plan.by_name[score_name]
    ledger = state.scores.get(score_name) if state is not None else None
    if ledger is None:
        value = total(score, {})
        categories = tuple(
            (name, 0, c.min, c.max, clamp(0, c.min, c.max)) for name, c in score.categories.items()
        )
        return Explanation(
            score_name, value, unlimited_total(score, {}), (score.min, score.max), (), (),
            categories, 0, (), reached(score, value), None,
        )  # fmt: skip
    rows = [_row(c, "adjustment" if c[C_RULE].startswith("adjustment:") else "event")
            for c in ledger.contribs]  # fmt: skip
    rows += [_row(h, "state") for h in ledger.holds.values() if h is not None]
    rows.sort(key=lambda r: (r[3], r[0]))
    sums = ledger.sums
    categories = tuple(
        (name, sums.get(name, 0), c.min, c.max, clamp(sums.get(name, 0), c.min, c.max))
        for name, c in score.categories.items()
    )
    uncategorised = sum(p for name, p in sums.items() if name not in score.categories)
    value = total(score, sums)
    return Explanation(
        score=score_name,
        value=value,
        total_before_limits=unlimited_total(score, sums),
        limits=(score.min, score.max),
        contributions=tuple(rows),
        folded=tuple(sorted((rule, cat, pts) for (rule, cat), pts in ledger.folded.items())),
        categories=categories,
        uncategorised=uncategorised,
        deferred=tuple(
            (due, source, c[C_RULE], c[C_POINTS]) for due, source, cs in ledger.pending for c in cs
        ),
        thresholds_reached=reached(score, value),
        epoch_started_at_ms=None if ledger.epoch_ms == NO_EPOCH else ledger.epoch_ms,
        stand_by=tuple(
            sorted(
                (c[C_RULE], c[C_POINTS], c[C_OCCURRED], c[C_SOURCE])
                for c in ledger.standby.values()
            )
        ),
    )


def _row(c: Contribution, kind: str) -> tuple[str, int, str | None, int, int | None, str, str]:
    return (c[C_RULE], c[C_POINTS], c[C_CATEGORY], c[C_OCCURRED], c[C_EXPIRES], c[C_SOURCE], kind)
