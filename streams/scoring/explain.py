"""Why a score has its value: live contributions, folded totals, categories, limits."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from streams.scoring.aggregate import clamp, reached, scaled_clamp, total, unlimited_total
from streams.scoring.decay import decayed_total, micro_sums
from streams.scoring.decay_memo import MICRO, micro_value
from streams.scoring.durations import format_duration
from streams.scoring.inactivity import RULE as INACTIVITY
from streams.scoring.inactivity import span
from streams.scoring.plan.spec import Decay, Plan, Score
from streams.scoring.predict import explain_view
from streams.scoring.rollup import counted
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
    Ledger,
)

Row = tuple[str, int, str | None, int, int | None, str, str]


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
    #: Decaying scores: the instant the value was evaluated at, the next decay check, and per
    #: contribution (in ``contributions``' order) its decay and its value then (a decimal
    #: with six places; the category sums are decayed too)
    evaluated_at_ms: int | None = None
    next_decay_check_ms: int | None = None
    decayed: tuple[tuple[str | None, float | None], ...] = ()
    decayed_categories: tuple[float, ...] = ()
    #: Scores with inactivity: when the next deduction falls due if no event comes first
    next_inactivity_ms: int | None = None
    #: Roll-up scores: what the members add (see ``rollup_view``)
    rollup: dict[str, Any] | None = None
    #: Predicted scores: the model, its features and top factors (``predict.explain_view``)
    predicted: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = self._plain_dict()
        if self.predicted is not None:
            out["predicted"] = self.predicted
        if self.rollup is not None:
            out["rollup"] = self.rollup
        if self.next_inactivity_ms is not None:
            out["next_inactivity"] = self.next_inactivity_ms
        if self.evaluated_at_ms is None:
            return out
        out["evaluated_at"] = self.evaluated_at_ms
        out["next_decay_check"] = self.next_decay_check_ms
        for row, (decay, value) in zip(out["contributions"], self.decayed, strict=True):
            row["decay"], row["value"] = decay, value
        for row, value in zip(out["categories"], self.decayed_categories, strict=True):
            row["sum"] = value
        return out

    def _plain_dict(self) -> dict[str, Any]:
        low, high = self.limits
        return {
            "score": self.score,
            "value": self.value,
            "total_before_limits": self.total_before_limits,
            "limits": {"min": low, "max": high},
            "contributions": [_row_dict(row) for row in self.contributions],
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


def _row_dict(row: Row) -> dict[str, Any]:
    rule, points, category, occurred, expires, source, kind = row
    out: dict[str, Any] = {
        "rule": rule,
        "points": points,
        "category": category,
        "occurred_at": occurred,
        "expires_at": expires,
        "source_event_id": source,
        "kind": kind,
    }
    if kind == "inactivity":  # deductions of one silence: how many, the first and the last
        periods, period_ms, _ = span((rule, points, category, occurred, expires, source))
        out["source_event_id"] = None
        out["periods"] = periods
        out["first_at"] = occurred - (periods - 1) * period_ms
    return out


def explain(state: EntityState | None, plan: Plan, score_name: str) -> Explanation:
    """Explain one score of an entity (raises KeyError for a score the plan does not have)."""
    score = plan.by_name[score_name]
    if score.predicted is not None:  # its value, and why: the model
        return replace(_explain(state, plan, score), predicted=explain_view(state, score, plan))
    return _explain(state, plan, score)


def _explain(state: EntityState | None, plan: Plan, score: Score) -> Explanation:
    score_name = score.name
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
    rows = [_row(c, _kind(c[C_RULE])) for c in ledger.contribs]
    rows += [_row(h, "state") for h in ledger.holds.values() if h is not None]
    rows.sort(key=lambda r: (r[3], r[0]))
    if score.decays:
        return _decayed(score, ledger, rows)
    sums = ledger.sums
    categories = tuple(
        (name, sums.get(name, 0), c.min, c.max, clamp(sums.get(name, 0), c.min, c.max))
        for name, c in score.categories.items()
    )
    uncategorised = sum(p for name, p in sums.items() if name not in score.categories)
    value = total(score, sums, ledger.rolled)
    before_limits = unlimited_total(score, sums) + ledger.rolled
    return _explanation(score, ledger, rows, value, before_limits, categories, uncategorised)


def _explanation(
    score: Score,
    ledger: Ledger,
    rows: list[Row],
    value: int,
    before_limits: int,
    categories: tuple[tuple[str, int, int | None, int | None, int], ...],
    uncategorised: int,
    **decayed: Any,
) -> Explanation:
    return Explanation(
        score=score.name,
        value=value,
        total_before_limits=before_limits,
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
        next_inactivity_ms=ledger.inactive_due_ms,
        rollup=rollup_view(score, ledger),
        **decayed,
    )


#: At most this many members are listed (highest first); ``members`` counts them all.
LISTED_MEMBERS = 100


def rollup_view(score: Score, ledger: Ledger) -> dict[str, Any] | None:
    """A roll-up's part: its spec, value (before the limits) and members, highest first,
    each marked whether the aggregate counts it."""
    spec = score.rollup
    if spec is None:
        return None
    live = counted(spec, ledger.members)
    return {
        "from": spec.source,
        "aggregate": spec.aggregate,
        "k": spec.k if spec.aggregate == "top" else None,
        "value": ledger.rolled,
        "members": len(live),
        "contributors": [
            {"contact_id": contact, "value": value, "counted": used}
            for contact, value, used in live[:LISTED_MEMBERS]
        ],
    }


def _decayed(score: Score, ledger: Ledger, rows: list[Row]) -> Explanation:
    """A decaying score at the instant its value was evaluated (``decay``)."""
    at_ms = ledger.decayed_ms
    decayed: list[tuple[str | None, float | None]] = []
    for rule, points, _, occurred, _, _, _ in rows:
        decay = score.decays.get(rule)
        if decay is None:
            decayed.append((None, None))
        else:
            value = micro_value(points, decay, at_ms - occurred)
            decayed.append((_describe(decay), value / MICRO))
    micro = micro_sums(score, ledger, at_ms)
    categories = []
    decayed_categories = []
    before_limits = 0
    for name, c in score.categories.items():
        raw = micro.get(name, 0)
        kept = scaled_clamp(raw, c.min, c.max, MICRO)
        before_limits += kept
        categories.append((name, round(raw / MICRO), c.min, c.max, round(kept / MICRO)))
        decayed_categories.append(round(raw / MICRO, 6))
    uncategorised = sum(m for name, m in micro.items() if name not in score.categories)
    before_limits += uncategorised
    return _explanation(
        score, ledger, rows, decayed_total(score, ledger, at_ms),
        round(before_limits / MICRO) + ledger.rolled,
        tuple(categories), round(uncategorised / MICRO), evaluated_at_ms=at_ms,
        next_decay_check_ms=ledger.decay_due_ms, decayed=tuple(decayed),
        decayed_categories=tuple(decayed_categories),
    )  # fmt: skip


def _kind(rule_id: str) -> str:
    if rule_id.startswith("adjustment:"):
        return "adjustment"
    return "inactivity" if rule_id == INACTIVITY else "event"


def _describe(decay: Decay) -> str:
    if decay.kind == "steps":
        steps = ", ".join(
            f"{format_duration(age)}: {num}" + (f"/{den}" if den != 1 else "")
            for age, num, den in decay.steps
        )
        return f"steps ({steps})"
    return f"{decay.kind} {format_duration(decay.length_ms)}"


def _row(c: Contribution, kind: str) -> Row:
    return (c[C_RULE], c[C_POINTS], c[C_CATEGORY], c[C_OCCURRED], c[C_EXPIRES], c[C_SOURCE], kind)
