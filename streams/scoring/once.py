"""``repeat: once`` whatever the arrival order: which match holds the award, and its stand-by.

In event-time order a once rule awards the *earliest* match of each epoch. Arrival order may
differ, so besides its flag (``Ledger.statics``: the event time of the award) a once rule
keeps one stand-by match (``Ledger.standby``):

- a match **later** than the award is refused (``static``); the latest such match stands by;
- a match **earlier** than the award (but not before the epoch) takes the award over, as it
  would have in event-time order: the displaced award is taken back (live or deferred, and its
  cap slot freed) and stands by if it is the latest;
- a set/reset at E drops awards that occurred before E. If the flag goes and the stand-by match
  occurred at or after E, the stand-by is awarded then (``reopen``): in event-time order it, or
  an earlier match also after E, would have been awarded.

So whether a once rule has awarded in an epoch never depends on arrival order, and neither
does the total of a rule with constant points and no expiry. Only the latest stand-by is kept
(bounded state): when a late set/reset reopens the rule and several refused matches occurred
after it, the latest is awarded, where event-time order would have awarded the earliest. That
changes which event carries the award (its expiry, its value-weighted points), not whether one
is awarded.
"""

from __future__ import annotations

from typing import Any

from streams.scoring import ledger as ledgers
from streams.scoring.capping import take_slot
from streams.scoring.plan.spec import Rule, Score
from streams.scoring.points import award_points
from streams.scoring.quiet_hours import quiet_until
from streams.scoring.state import (
    C_EXPIRES,
    C_OCCURRED,
    C_POINTS,
    C_SOURCE,
    NO_STANDBY,
    NO_STATICS,
    Ledger,
)

Awards = list[tuple[str, int]]


def stand_by(
    ledger: Ledger,
    rule: Rule,
    fields: dict[str, Any],
    *,
    at_ms: int,
    source_id: str,
    now_ms: int,
) -> None:
    """A match refused because the rule awarded earlier: keep it if it is the latest one."""
    current = ledger.standby.get(rule.id)
    if current is not None and current[C_OCCURRED] >= at_ms:
        return
    expires = None if rule.ttl_ms is None else at_ms + rule.ttl_ms
    if expires is not None and expires <= now_ms:
        return
    points = rule.points if type(rule.points) is int else award_points(rule.points, fields)
    if points is not None:
        if ledger.standby is NO_STANDBY:  # (never added to: shared, ``state.NO_STANDBY``)
            ledger.standby = {}
        ledger.standby[rule.id] = (rule.id, points, rule.category, at_ms, expires, source_id)


def take_over(ledger: Ledger, rule: Rule, flag_ms: int) -> int:
    """An earlier match takes the award made at ``flag_ms``; returns the points taken back.

    The caller sets the flag to the new match and has freed the displaced cap slot.
    """
    taken = ledgers.take_back(ledger, rule.id, flag_ms)
    if taken is None:  # a 0-point award: nothing was recorded
        taken = (rule.id, 0, rule.category, flag_ms, None, "")
    current = ledger.standby.get(rule.id)
    if current is None or current[C_OCCURRED] < flag_ms:
        if ledger.standby is NO_STANDBY:
            ledger.standby = {}
        ledger.standby[rule.id] = taken
    return taken[C_POINTS]


def reopen(ledger: Ledger, score: Score, *, now_ms: int, awards: Awards) -> tuple[str, ...]:
    """After ``ledger.start_epoch``: award the stand-by match of each once rule that lost its flag.

    Appends every such award to ``awards``; returns the rules whose points count now (an award
    in quiet hours with policy ``defer`` is held until the quiet period ends, like the event's
    own award would have been).
    """
    counted: list[str] = []
    for rule_id, match in list(ledger.standby.items()):
        if rule_id in ledger.statics:
            continue  # the award occurred after the epoch: it still counts, the stand-by waits
        del ledger.standby[rule_id]
        rule = score.rule_by_id.get(rule_id)
        if rule is None or not rule.once:
            continue
        at_ms = match[C_OCCURRED]
        expires = match[C_EXPIRES]
        if expires is not None and expires <= now_ms:
            continue
        quiet = score.quiet_hours
        quiet_end = None if quiet is None else quiet_until(quiet, score.zone, at_ms)
        if quiet is not None and quiet_end is not None and quiet.policy == "skip":
            continue
        if rule.cap is not None:
            caps = take_slot(ledger.caps, rule_id, rule.cap, at_ms)
            if caps is None:
                continue
            ledger.caps = caps
        if ledger.statics is NO_STATICS:  # (never added to: shared, ``state.NO_STATICS``)
            ledger.statics = {}
        ledger.statics[rule_id] = at_ms
        awards.append((rule_id, match[C_POINTS]))
        if quiet_end is not None:
            if match[C_POINTS]:
                ledgers.defer(ledger, (quiet_end, match[C_SOURCE], (match,)))
            continue
        if match[C_POINTS]:
            ledgers.record(ledger, match)
        counted.append(rule_id)
    return tuple(counted)
