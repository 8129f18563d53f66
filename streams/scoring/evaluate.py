"""Steps 3-7 of SPEC §4 for one score: match, static, capping, points, record.

Event rules award per matching event; state rules (``while``) hold points while the entity's
properties match. Both only *decide* and record into the score's ledger; emitting changes is
the engine's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.scoring import ledger as ledgers
from streams.scoring.capping import cap_allows, record_award
from streams.scoring.outcomes import Verdict
from streams.scoring.plan import Rule, Score
from streams.scoring.points import award_points
from streams.scoring.state import C_POINTS, Contribution, ScoreState

#: Verdict of a score whose matched rules all failed, by precedence of the first failure.
Awards = list[tuple[str, int]]


def event_rules(
    ledger: ScoreState,
    rules: tuple[Rule, ...],
    fields: Mapping[str, Any],
    *,
    at_ms: int,
    source_id: str,
    now_ms: int,
    awards: Awards,
    contribs: list[Contribution],
) -> Verdict:
    """Evaluate the score's rules for one event; append awards and contributions.

    Returns SCORED if any rule awarded, else the reason of the first matched rule
    (STATIC, EXPIRED, NO_VALUE, CAPPED, BEFORE_RESET) or NO_MATCH.
    """
    reason = Verdict.NO_MATCH
    for rule in rules:
        where = rule.where
        if where is not None and not where(fields):
            continue
        if rule.once and rule.id in ledger.statics:
            reason = _first(reason, Verdict.STATIC)
            continue
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
            times = ledger.caps.get(rule.id)
            if times is None:
                times = ledger.caps[rule.id] = []
            if not cap_allows(times, at_ms, cap):
                reason = _first(reason, Verdict.CAPPED)
                continue
            record_award(times, at_ms)
        if at_ms < ledger.epoch_ms:
            reason = _first(reason, Verdict.BEFORE_RESET)
            continue
        if rule.once:
            ledger.statics[rule.id] = at_ms
        awards.append((rule.id, points))
        if points:
            contribs.append((rule.id, points, rule.category, at_ms, expires, source_id))
    return Verdict.SCORED if awards else reason


def _first(current: Verdict, new: Verdict) -> Verdict:
    return new if current is Verdict.NO_MATCH else current


def state_rules(
    ledger: ScoreState,
    score: Score,
    view: Mapping[str, Any],
    *,
    at_ms: int,
    source_id: str,
    awards: Awards,
) -> None:
    """Re-evaluate the score's state rules after the entity's properties changed.

    Entering a match holds the rule's points (contribution at the event's time); leaving it
    gives them back; a value-weighted hold follows its value while matching. A hold suppressed
    by a set/reset stays suppressed until the rule stops matching. Awards record the point
    movement per rule (negative when given back).
    """
    holds = ledger.holds
    for rule in score.state_rules:
        assert rule.holds is not None  # noqa: S101 - state rules always have a condition
        matching = rule.holds(view)
        if not matching:
            if rule.id in holds:
                held = ledgers.release_hold(ledger, rule.id)
                if held is not None and held[C_POINTS]:
                    awards.append((rule.id, -held[C_POINTS]))
            continue
        if rule.id in holds and holds[rule.id] is None:
            continue  # suppressed by a set/reset until it stops matching
        points = award_points(rule.points, view) or 0
        held = holds.get(rule.id)
        before = 0 if held is None else held[C_POINTS]
        if held is not None and before == points:
            continue
        ledgers.hold(ledger, rule.id, (rule.id, points, rule.category, at_ms, None, source_id))
        if points != before:
            awards.append((rule.id, points - before))
