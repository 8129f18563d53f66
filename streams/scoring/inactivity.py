"""Inactivity: points when an entity has had no event for a period.

A score's ``inactivity: {after: 30d, points: -10, repeat: every}``. Every event applied to the
entity is activity, scored or not (not a duplicate or a too-late one; adjustments are not
activity). A *silence* runs from one activity ``a`` to the next (or to now); its deductions fall
at ``a + k * after`` for k = 1, 2, ... while that instant is before the next activity
(``repeat: once``: k = 1 only).

Closed form: the deductions of a silence are counted, not walked. Whatever the silence's length,
an evaluation costs the same: the deductions due by the evaluation's instant become one
contribution of rule ``inactivity`` (``count * points``, at the last of their instants) and one
change (cause ``inactivity``). A later evaluation of the same silence extends that contribution,
so a silence is one contribution. The contribution's source field records what it covers,
``"<count>*<after_ms>"`` (``span`` reads it; explain shows ``periods``).

By event time: a late event at ``e`` inside a silence that began at ``a`` and ended at ``n``
(``a < e < n``, or ``n`` = now) keeps that silence's deductions before ``e``, drops those at or
after ``e``, and starts a new silence at ``e`` whose deductions before ``n`` are made at once. So
any arrival order within the lateness ends with the deductions of event-time order.

State: ``Ledger.active``, the event times from the lateness horizon on (and the newest one
before it, where a silence crossing the horizon began), ascending; deductions are ordinary
contributions (folded like any other once older than the horizon: no late event can reach
them); ``inactive_due_ms``, the next deduction's instant.
"""

from __future__ import annotations

from bisect import bisect_left

from streams.scoring.contribs import appended, without
from streams.scoring.plan.spec import Inactivity
from streams.scoring.state import (
    C_CATEGORY,
    C_OCCURRED,
    C_POINTS,
    C_RULE,
    C_SOURCE,
    Contribution,
    Ledger,
)

RULE = "inactivity"


def count(idle: Inactivity, start_ms: int, end_ms: int) -> int:
    """How many deductions a silence from ``start_ms`` makes before ``end_ms`` (exclusive)."""
    if end_ms - start_ms <= idle.after_ms:
        return 0
    return 1 if idle.once else (end_ms - start_ms - 1) // idle.after_ms


def instants(idle: Inactivity, start_ms: int, end_ms: int) -> list[int]:
    """The deductions of a silence from ``start_ms`` until before ``end_ms`` (small cases:
    tests and explanations; the engine counts them with ``count``)."""
    return [start_ms + k * idle.after_ms for k in range(1, count(idle, start_ms, end_ms) + 1)]


def deduction(idle: Inactivity, last_ms: int, periods: int) -> Contribution:
    """``periods`` deductions of ``idle``, the last of them at ``last_ms``: one contribution."""
    return (RULE, periods * idle.points, idle.category, last_ms, None, f"{periods}*{idle.after_ms}")


def span(contrib: Contribution) -> tuple[int, int, int]:
    """A deduction's ``(periods, period_ms, points per period)``; state written before the
    closed form holds single deductions with no source (``(1, 0, points)``)."""
    source = contrib[C_SOURCE]
    if not source:
        return 1, 0, contrib[C_POINTS]
    periods, period = source.split("*")
    n = int(periods)
    return n, int(period), contrib[C_POINTS] // n


def before(contrib: Contribution, end_ms: int) -> Contribution | None:
    """The part of a deduction contribution whose instants are before ``end_ms`` (None: no
    part; the contribution itself when all of it is)."""
    if contrib[C_OCCURRED] < end_ms:
        return contrib
    periods, period, points = span(contrib)
    first = contrib[C_OCCURRED] - (periods - 1) * period
    if first >= end_ms:
        return None
    kept = (end_ms - first - 1) // period + 1
    last = first + (kept - 1) * period
    return (RULE, kept * points, contrib[C_CATEGORY], last, None, f"{kept}*{period}")


def since(contrib: Contribution, start_ms: int) -> Contribution | None:
    """The part of a deduction contribution whose instants are at or after ``start_ms`` (a new
    epoch keeps only those)."""
    periods, period, points = span(contrib)
    first = contrib[C_OCCURRED] - (periods - 1) * period
    if first >= start_ms:
        return contrib
    if contrib[C_OCCURRED] < start_ms:
        return None
    dropped = (start_ms - first - 1) // period + 1
    kept = periods - dropped
    return (RULE, kept * points, contrib[C_CATEGORY], contrib[C_OCCURRED], None,
            f"{kept}*{period}")  # fmt: skip


def touch(idle: Inactivity, ledger: Ledger, at_ms: int) -> bool:
    """An event at ``at_ms`` is activity: cut the silence it breaks, make the one it starts
    (if a later event ended it already), reschedule. Returns whether the contributions changed.
    """
    active = ledger.active
    i = bisect_left(active, at_ms)
    if i < len(active) and active[i] == at_ms:
        return False  # another event at the same instant: the silences are the same
    if active:
        active.insert(i, at_ms)
    else:  # (a new list: the empty one may be shared, ``state.NO_TIMES``)
        ledger.active = active = [at_ms]
    following = active[i + 1] if i + 1 < len(active) else None
    changed = False
    kept: list[Contribution] = []
    for contrib in ledger.contribs:
        when = contrib[C_OCCURRED]
        if contrib[C_RULE] == RULE and when >= at_ms and (following is None or when < following):
            part = before(contrib, at_ms)  # the broken silence's deductions before the event
            ledger.sums[contrib[C_CATEGORY]] -= contrib[C_POINTS]
            changed = True
            if part is not None:
                kept.append(part)
                ledger.sums[part[C_CATEGORY]] += part[C_POINTS]
        else:
            kept.append(contrib)
    if changed:
        ledger.contribs = tuple(kept)
    if following is not None:  # a late event: its silence until the next event is over
        periods = count(idle, at_ms, following)
        if periods:
            _add(ledger, deduction(idle, at_ms + periods * idle.after_ms, periods))
            changed = True
    schedule(idle, ledger)
    return changed


def _add(ledger: Ledger, contrib: Contribution) -> None:
    """A deduction: no source event (it is the absence of one)."""
    ledger.contribs = appended(ledger.contribs, contrib)
    ledger.sums[contrib[C_CATEGORY]] = ledger.sums.get(contrib[C_CATEGORY], 0) + contrib[C_POINTS]


def due(idle: Inactivity, ledger: Ledger, upto_ms: int) -> int:
    """Every deduction of the current silence from ``ledger.inactive_due_ms`` through
    ``upto_ms``, at once; returns the instant of the last. The silence's contribution grows
    (one per silence), then the next deduction is scheduled."""
    start = ledger.inactive_due_ms
    assert start is not None and start <= upto_ms  # noqa: S101 - called when due
    periods = 1 if idle.once else (upto_ms - start) // idle.after_ms + 1
    last = start + (periods - 1) * idle.after_ms
    previous = start - idle.after_ms
    contribs = ledger.contribs
    for index in range(len(contribs) - 1, -1, -1):
        contrib = contribs[index]
        if contrib[C_RULE] != RULE or contrib[C_OCCURRED] != previous:
            continue
        had, period, points = span(contrib)
        if period == idle.after_ms and points == idle.points and previous > ledger.active[-1]:
            ledger.contribs = without(contribs, index)  # the same silence, same plan: extend it
            ledger.sums[contrib[C_CATEGORY]] -= contrib[C_POINTS]
            periods += had
        break
    _add(ledger, deduction(idle, last, periods))
    schedule(idle, ledger)
    return last


def schedule(idle: Inactivity, ledger: Ledger) -> None:
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


def prune(ledger: Ledger, horizon_ms: int) -> None:
    """Forget event times before ``horizon_ms`` but the newest of them (a silence's start)."""
    active = ledger.active
    i = bisect_left(active, horizon_ms)
    if i > 1:
        ledger.active = active[i - 1 :]
