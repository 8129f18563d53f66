"""Inactivity (SPEC §8): points when an entity has had no event for a period.

A score's ``inactivity: {after: 30d, points: -10, repeat: every}``. Every event applied to the
entity is activity, scored or not (not a duplicate or a too-late one; adjustments are not
activity). A *silence* runs from one activity to the next (or to now); its deductions are
contributions of rule ``inactivity`` at ``a + k * after`` for k = 1, 2, ... before the next
activity (``repeat: once``: k = 1 only), each a change with cause ``inactivity`` at that instant.

By event time: a late event at ``e`` inside a silence that began at ``a`` and ended at ``n``
(``a < e < n``, or ``n`` = now) undoes that silence's deductions after ``e`` and starts a new
silence at ``e``, whose deductions before ``n`` are made at once. So any arrival order within
the lateness ends with the deductions of event-time order.

State: ``ScoreState.active``, the event times from the lateness horizon on (and the newest one
before it, where a silence crossing the horizon began), ascending; deductions are ordinary
contributions (folded like any other once older than the horizon: no late event can reach
them); ``inactive_due_ms``, the next deduction's instant.
"""

from __future__ import annotations

from bisect import bisect_left

from streams.scoring.plan import Inactivity
from streams.scoring.state import C_CATEGORY, C_OCCURRED, C_POINTS, C_RULE, Contribution, ScoreState

RULE = "inactivity"


def instants(idle: Inactivity, start_ms: int, end_ms: int) -> list[int]:
    """The deductions of a silence from ``start_ms`` until before ``end_ms``."""
    out: list[int] = []
    at = start_ms + idle.after_ms
    while at < end_ms:
        out.append(at)
        if idle.once:
            break
        at += idle.after_ms
    return out


def touch(idle: Inactivity, ledger: ScoreState, at_ms: int) -> bool:
    """An event at ``at_ms`` is activity: undo and redo the deductions it changes, reschedule.

    Returns whether the ledger's contributions changed.
    """
    active = ledger.active
    i = bisect_left(active, at_ms)
    if i < len(active) and active[i] == at_ms:
        return False  # another event at the same instant: the silences are the same
    active.insert(i, at_ms)
    following = active[i + 1] if i + 1 < len(active) else None
    changed = False
    kept: list[Contribution] = []
    for contrib in ledger.contribs:
        when = contrib[C_OCCURRED]
        if contrib[C_RULE] == RULE and when > at_ms and (following is None or when < following):
            ledger.sums[contrib[C_CATEGORY]] -= contrib[C_POINTS]
            changed = True
        else:
            kept.append(contrib)
    if changed:
        ledger.contribs = kept
    if following is not None:  # a late event: its silence until the next event is over
        for when in instants(idle, at_ms, following):
            _deduct(idle, ledger, when)
            changed = True
    schedule(idle, ledger)
    return changed


def _deduct(idle: Inactivity, ledger: ScoreState, at_ms: int) -> None:
    """A deduction: no source event (it is the absence of one)."""
    ledger.contribs.append((RULE, idle.points, idle.category, at_ms, None, ""))
    ledger.sums[idle.category] = ledger.sums.get(idle.category, 0) + idle.points


def due(idle: Inactivity, ledger: ScoreState, at_ms: int) -> None:
    """The deduction due at ``at_ms`` (``ledger.inactive_due_ms``), then the next one."""
    _deduct(idle, ledger, at_ms)
    schedule(idle, ledger)


def schedule(idle: Inactivity, ledger: ScoreState) -> None:
    """``inactive_due_ms``: the next deduction of the silence since the newest event."""
    if not ledger.active:
        ledger.inactive_due_ms = None
        return
    newest = ledger.active[-1]
    last = newest
    for contrib in ledger.contribs:
        if contrib[C_RULE] == RULE and contrib[C_OCCURRED] > last:
            last = contrib[C_OCCURRED]
    if idle.once and last > newest:
        ledger.inactive_due_ms = None
    else:
        ledger.inactive_due_ms = last + idle.after_ms


def prune(ledger: ScoreState, horizon_ms: int) -> None:
    """Forget event times before ``horizon_ms`` but the newest of them (a silence's start)."""
    active = ledger.active
    i = bisect_left(active, horizon_ms)
    if i > 1:
        ledger.active = active[i - 1 :]
