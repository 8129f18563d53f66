"""State rules (``while``): hold points while the entity's properties match.

A rule's hold is a contribution whose ``occurred_at`` is when its current match **began**
(in event time); a value-weighted hold follows its value while matching but keeps that time.
A set/reset at E suppresses a hold whose match began before E (``ledger.start_epoch``; the
hold becomes None) until the rule stops matching; a match that begins before the current
epoch is suppressed from the start.

State rules are evaluated at every property update. An update newer than every property time
(the common case) moves each match forward (``follow``). One that arrives out of order changes
the entity's past, so every match and when it began is re-evaluated from the property history
(``reevaluate``), exactly as if the updates had arrived in event-time order. History older than
the lateness horizon is dropped by compaction; ``Ledger.anchors`` keeps, per rule, when the
match in progress at the entity's ``floor_ms`` began (``settle_anchors``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.scoring import ledger as ledgers
from streams.scoring.plan.spec import Rule, Score
from streams.scoring.points import award_points
from streams.scoring.profile import update_times, updated_between, view_at
from streams.scoring.state import C_OCCURRED, C_POINTS, C_SOURCE, EntityState, Ledger

Awards = list[tuple[str, int]]
View = dict[str, Any]


def follow(
    ledger: Ledger,
    score: Score,
    view: View,
    *,
    at_ms: int,
    source_id: str,
    awards: Awards,
) -> None:
    """An update at ``at_ms``, not older than any property time: matches begin, go on or end."""
    holds = ledger.holds
    for rule in score.state_rules:
        assert rule.holds is not None  # noqa: S101 - state rules always have a condition
        if not rule.holds(view):
            _end(ledger, rule, awards)
            continue
        if rule.id not in holds:
            _hold(ledger, rule, view, at_ms, source_id, awards)  # the match begins now
            continue
        held = holds[rule.id]
        if held is not None:  # None: suppressed by a set/reset until it stops matching
            _hold(ledger, rule, view, held[C_OCCURRED], held[C_SOURCE], awards)


def reevaluate(
    entity: EntityState,
    kind: str,
    ledger: Ledger,
    score: Score,
    view: View,
    *,
    source_id: str,
    awards: Awards,
) -> None:
    """An out-of-order update changed the history: re-evaluate every match from it.

    A hold whose match now begins at another time is attributed to this update.
    """
    times = update_times(entity, since_ms=entity.floor_ms)
    views = _views(entity, kind)
    for rule in score.state_rules:
        assert rule.holds is not None  # noqa: S101 - state rules always have a condition
        if not rule.holds(view):
            _end(ledger, rule, awards)
            continue
        began = match_began(rule, times, views, ledger.anchors)
        if began is None:  # cannot happen: the newest update shows the current view
            began = times[0] if times else entity.floor_ms
        held = ledger.holds.get(rule.id)
        source = held[C_SOURCE] if held is not None and held[C_OCCURRED] == began else source_id
        _hold(ledger, rule, view, began, source, awards)


def settle_anchors(
    entity: EntityState, kind: str, ledger: Ledger, score: Score, horizon_ms: int
) -> None:
    """Before compaction drops the history older than ``horizon_ms``: record when the match in
    progress just before it began, per rule (``ledger.anchors``)."""
    if horizon_ms <= entity.floor_ms:
        return
    if not updated_between(entity, entity.floor_ms, horizon_ms):
        # (the usual case) no update in [floor, horizon): each match in progress at the
        # horizon was in progress at the floor, so the anchors stand, for the rules still there
        if ledger.anchors:
            ledger.anchors = {
                rule.id: ledger.anchors[rule.id]
                for rule in score.state_rules
                if rule.id in ledger.anchors
            }
        return
    times = update_times(entity, since_ms=entity.floor_ms, before_ms=horizon_ms)
    views = _views(entity, kind)
    anchors: dict[str, int] = {}
    for rule in score.state_rules:
        began = match_began(rule, times, views, ledger.anchors)
        if began is not None:
            anchors[rule.id] = began
    ledger.anchors = anchors


def match_began(
    rule: Rule, times: list[int], views: Callable[[int], View], anchors: dict[str, int]
) -> int | None:
    """When the rule's match in progress at ``times[0]`` began (None if it does not match).

    ``times``: update times since the history floor, newest first; ``anchors``: matches in
    progress at the floor.
    """
    assert rule.holds is not None  # noqa: S101 - state rules always have a condition
    began = None
    for at_ms in times:
        if not rule.holds(views(at_ms)):
            return began
        began = at_ms
    return anchors.get(rule.id, began)


def _views(entity: EntityState, kind: str) -> Callable[[int], View]:
    memo: dict[int, View] = {}

    def view(at_ms: int) -> View:
        found = memo.get(at_ms)
        if found is None:
            found = memo[at_ms] = view_at(entity, kind, at_ms)
        return found

    return view


def _end(ledger: Ledger, rule: Rule, awards: Awards) -> None:
    if rule.id in ledger.holds:
        held = ledgers.release_hold(ledger, rule.id)
        if held is not None and held[C_POINTS]:
            awards.append((rule.id, -held[C_POINTS]))


def _hold(
    ledger: Ledger, rule: Rule, view: View, began_ms: int, source_id: str, awards: Awards
) -> None:
    """The rule matches, since ``began_ms``: hold its points (suppressed if before the epoch)."""
    if began_ms < ledger.epoch_ms:
        new = None
    else:
        points = award_points(rule.points, view) or 0
        new = (rule.id, points, rule.category, began_ms, None, source_id)
    holds = ledger.holds
    held = holds.get(rule.id)
    if rule.id in holds and held == new:
        return
    ledgers.hold(ledger, rule.id, new)
    moved = (0 if new is None else new[C_POINTS]) - (0 if held is None else held[C_POINTS])
    if moved:
        awards.append((rule.id, moved))
