"""docs/plans.md, Evaluation order, for one score's event rules: match, static, capping, points,
record.

Event rules award per matching event (state rules, ``while``, are in ``holds``). They only
*decide* and record into the score's ledger; emitting changes is the engine's job.
"""

from __future__ import annotations

from typing import Any

from streams.scoring.capping import cap_allows, times_of, with_award, with_times, without_award
from streams.scoring.once import stand_by, take_over
from streams.scoring.outcomes import Verdict
from streams.scoring.plan.spec import Rule
from streams.scoring.points import award_points
from streams.scoring.state import NO_STATICS, Contribution, Ledger

#: (rule id, points) per award, negative for points taken back.
Awards = list[tuple[str, int]]


def event_rules(
    ledger: Ledger,
    rules: tuple[Rule, ...],
    fields: dict[str, Any],
    *,
    at_ms: int,
    source_id: str,
    now_ms: int,
    awards: Awards,
    contribs: list[Contribution],
    retracted: Awards,
) -> Verdict:
    """Evaluate the score's rules for one event; append awards and contributions.

    Returns SCORED if any rule awarded, else the reason of the first matched rule
    (STATIC, EXPIRED, NO_VALUE, CAPPED, BEFORE_RESET) or NO_MATCH. A once rule's award taken
    over by this (earlier) event is taken back at once and listed in ``retracted`` (negative
    points), whether or not this event's own award is deferred.
    """
    reason = Verdict.NO_MATCH
    for rule in rules:
        where = rule.where
        if where is not None and not where(fields):
            continue
        displaced: int | None = None  # event time of the award this match takes over
        if rule.once:
            flag = ledger.statics.get(rule.id)
            if flag is not None:
                if not ledger.epoch_ms <= at_ms < flag:
                    if at_ms > flag:
                        stand_by(
                            ledger, rule, fields, at_ms=at_ms, source_id=source_id, now_ms=now_ms
                        )
                    reason = _first(reason, Verdict.STATIC)
                    continue
                displaced = flag  # an earlier match than the award: it wins in event-time order
        expires = None if rule.ttl_ms is None else at_ms + rule.ttl_ms
        if expires is not None and expires <= now_ms:
            reason = _first(reason, Verdict.EXPIRED)
            continue
        points = rule.points if type(rule.points) is int else award_points(rule.points, fields)
        if points is None:
            reason = _first(reason, Verdict.NO_VALUE)
            continue
        cap = rule.cap
        if cap is not None:
            times = times_of(ledger.caps, rule.id)
            # a take-over frees the displaced award's slot (kept if this one is capped anyway)
            freed = None if displaced is None else without_award(times, displaced)
            if freed is not None:
                times = freed
            if not cap_allows(times, at_ms, cap):
                reason = _first(reason, Verdict.CAPPED)
                continue
            ledger.caps = with_times(ledger.caps, rule.id, with_award(times, at_ms))
        if at_ms < ledger.epoch_ms:
            reason = _first(reason, Verdict.BEFORE_RESET)
            continue
        if rule.once:
            if displaced is not None:
                taken = take_over(ledger, rule, displaced)
                if taken:
                    retracted.append((rule.id, -taken))
            if ledger.statics is NO_STATICS:  # (never added to: shared, ``state.NO_STATICS``)
                ledger.statics = {}
            ledger.statics[rule.id] = at_ms
        awards.append((rule.id, points))
        if points:
            contribs.append((rule.id, points, rule.category, at_ms, expires, source_id))
    return Verdict.SCORED if awards else reason


def _first(current: Verdict, new: Verdict) -> Verdict:
    return new if current is Verdict.NO_MATCH else current
