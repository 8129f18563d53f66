"""Capping ``{max: N, per: P}``: no half-open window of length P holds more than N awards.

The award times of a rule for one entity are kept sorted. A new award at ``t`` is allowed iff,
with ``t`` inserted, every run of N+1 consecutive times spans at least P
(``times[i+N] - times[i] >= P``). Only runs that contain ``t`` can break, so the check looks at
N+1 runs around the insertion point. Because the condition is checked against *all* recorded
times, earlier or later, it holds whatever the arrival order.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Final

from streams.scoring.plan.spec import Cap

#: A rule's award times, ascending: a tuple, not a list, so that a ledger's caps hold no object
#: the garbage collector must track (a tuple of ints, and then the dict holding only such
#: tuples, leave its scans); an award makes a new tuple (they are short: at most a few windows'
#: worth of awards).
Times = tuple[int, ...]
NO_AWARDS: Final[Times] = ()


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


def take_slot(caps: dict[str, Times], rule_id: str, cap: Cap, at_ms: int) -> bool:
    """Record an award of ``rule_id`` at ``at_ms`` if its cap allows it; False if capped."""
    times = caps.get(rule_id, NO_AWARDS)
    if not cap_allows(times, at_ms, cap):
        return False
    caps[rule_id] = with_award(times, at_ms)
    return True


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
