"""Capping ``{max: N, per: P}``: no half-open window of length P holds more than N awards.

The award times of a rule for one entity are kept sorted. A new award at ``t`` is allowed iff,
with ``t`` inserted, every run of N+1 consecutive times spans at least P
(``times[i+N] - times[i] >= P``). Only runs that contain ``t`` can break, so the check looks at
N+1 runs around the insertion point. Because the condition is checked against *all* recorded
times, earlier or later, it holds whatever the arrival order.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from typing import Final, cast

from streams.scoring.plan.spec import Cap
from streams.scoring.state import NO_CAPS, CapHistory

#: A rule's award times, ascending (short: at most a few windows' worth of awards).
Times = tuple[int, ...]
NO_AWARDS: Final[Times] = ()
#: A ledger's cap histories (``state.CapHistory``) are one flat tuple: for each capped rule, in
#: rule id order, its id, the number of its award times, then those times:
#: ``("a", 2, t1, t2, "b", 1, t3)``. Flat, so that the collector stops tracking it at the first
#: collection that sees it (strings and ints only), and an award (a new tuple) leaves no tracked
#: object behind: a dict of rule -> times was tracked again by every new tuple of times put into
#: it, and went back through the collector's generations once per full collection.


def histories(caps: CapHistory) -> Iterator[tuple[str, Times]]:
    """Each capped rule's id and award times, in rule id order."""
    i, size = 0, len(caps)
    while i < size:
        count = cast(int, caps[i + 1])
        yield cast(str, caps[i]), cast(Times, caps[i + 2 : i + 2 + count])
        i += 2 + count


def times_of(caps: CapHistory, rule_id: str) -> Times:
    """The award times of ``rule_id`` (none if it has no history)."""
    i, size = 0, len(caps)
    while i < size:
        count = cast(int, caps[i + 1])
        if caps[i] == rule_id:
            return cast(Times, caps[i + 2 : i + 2 + count])
        i += 2 + count
    return NO_AWARDS


def with_times(caps: CapHistory, rule_id: str, times: Times) -> CapHistory:
    """``caps`` with the history of ``rule_id`` set to ``times`` (a new tuple)."""
    out: list[object] = []
    placed = False
    i, size = 0, len(caps)
    while i < size:
        rule = cast(str, caps[i])
        end = i + 2 + cast(int, caps[i + 1])
        if not placed and rule >= rule_id:
            out += (rule_id, len(times), *times)
            placed = True
            if rule == rule_id:
                i = end
                continue
        out += caps[i:end]
        i = end
    if not placed:
        out += (rule_id, len(times), *times)
    return tuple(out)


def flat(caps: dict[str, Times]) -> CapHistory:
    """The flat form of the stored rule -> award times (``stored``)."""
    if not caps:
        return NO_CAPS
    out: list[object] = []
    for rule_id in sorted(caps):
        times = caps[rule_id]
        out += (rule_id, len(times), *times)
    return tuple(out)


def stored(caps: CapHistory) -> dict[str, Times]:
    """Rule id -> award times, as states store a ledger's cap histories (a shared empty map if
    there are none: it is only written)."""
    if not caps:
        return _NONE_STORED
    out: dict[str, Times] = {}
    i, size = 0, len(caps)
    while i < size:
        end = i + 2 + cast(int, caps[i + 1])
        out[cast(str, caps[i])] = cast(Times, caps[i + 2 : end])
        i = end
    return out


_NONE_STORED: Final[dict[str, Times]] = {}


def cap_allows(times: Times, at_ms: int, cap: Cap) -> bool:
    """Whether an award at ``at_ms`` keeps every window of ``cap.per_ms`` within ``cap.max``."""
    n = cap.max
    size = len(times)
    if size < n:
        return True
    i = bisect_right(times, at_ms)
    per = cap.per_ms
    # the run times[lo:i] + [at_ms] + times[i:hi], read in place (no list built per award):
    # its k-th element is times[lo + k] before ``at``, at_ms at ``at``, times[lo + k - 1] after
    lo = i - n if i > n else 0
    hi = i + n if i + n < size else size
    at = i - lo
    for k in range(hi - lo + 1 - n):
        first = times[lo + k] if k < at else at_ms if k == at else times[lo + k - 1]
        j = k + n
        last = times[lo + j] if j < at else at_ms if j == at else times[lo + j - 1]
        if last - first < per:
            return False
    return True


def with_award(times: Times, at_ms: int) -> Times:
    """``times`` with an award at ``at_ms`` (kept sorted)."""
    i = bisect_right(times, at_ms)
    return (*times[:i], at_ms, *times[i:])


def take_slot(caps: CapHistory, rule_id: str, cap: Cap, at_ms: int) -> CapHistory | None:
    """``caps`` with an award of ``rule_id`` at ``at_ms`` recorded if its cap allows it; None if
    capped."""
    times = times_of(caps, rule_id)
    if not cap_allows(times, at_ms, cap):
        return None
    return with_times(caps, rule_id, with_award(times, at_ms))


def without_award(times: Times, at_ms: int) -> Times | None:
    """``times`` less one award at ``at_ms`` (its award went to another event); None if there
    is none."""
    i = bisect_left(times, at_ms)
    if i < len(times) and times[i] == at_ms:
        return times[:i] + times[i + 1 :]
    return None


def prune(times: Times, before_ms: int) -> Times:
    """Times at or after ``before_ms`` (older ones can no longer share a window with a new
    award that is not too late)."""
    i = bisect_right(times, before_ms - 1)
    return times[i:] if i else times
