"""Mutations of one score's ledger: record, hold, defer, expire, release, start an epoch."""

from __future__ import annotations

from typing import cast

from streams.scoring import inactivity
from streams.scoring.contribs import appended, cooked, cooked_list, raw, without
from streams.scoring.state import (
    C_CATEGORY,
    C_EXPIRES,
    C_OCCURRED,
    C_POINTS,
    C_RULE,
    NO_FOLDED,
    NO_HOLDS,
    NO_PENDING,
    Contribution,
    Ledger,
    Pending,
    Raw,
)

SET_RULE = "adjustment:set"


def record(ledger: Ledger, contrib: Contribution) -> None:
    """Add a live contribution (O(1): the category sum is kept incrementally)."""
    ledger.contribs = appended(ledger.contribs, contrib)
    category = contrib[C_CATEGORY]
    ledger.sums[category] = ledger.sums.get(category, 0) + contrib[C_POINTS]
    expires = contrib[C_EXPIRES]
    if expires is not None and (ledger.next_due_ms is None or expires < ledger.next_due_ms):
        ledger.next_due_ms = expires


def hold(ledger: Ledger, rule_id: str, contrib: Contribution | None) -> None:
    """Set (or with None: suppress) the points a state rule holds while it matches."""
    _unhold(ledger, ledger.holds.get(rule_id))
    if ledger.holds is NO_HOLDS:  # (never added to: shared, ``state.NO_HOLDS``)
        ledger.holds = {}
    ledger.holds[rule_id] = contrib
    if contrib is not None:
        category = contrib[C_CATEGORY]
        ledger.sums[category] = ledger.sums.get(category, 0) + contrib[C_POINTS]


def release_hold(ledger: Ledger, rule_id: str) -> Contribution | None:
    """The state rule stopped matching: give its points back; returns what it held."""
    held = ledger.holds.pop(rule_id, None)
    _unhold(ledger, held)
    return held


def _unhold(ledger: Ledger, held: Contribution | None) -> None:
    if held is not None:
        category = held[C_CATEGORY]
        ledger.sums[category] = ledger.sums.get(category, 0) - held[C_POINTS]


def defer(ledger: Ledger, pending: Pending) -> None:
    """Hold awards until a quiet window ends at ``pending[0]``."""
    if ledger.pending:
        ledger.pending.append(pending)
    else:  # (a new list: the empty one may be shared, ``state.NO_PENDING``)
        ledger.pending = [pending]
    if ledger.next_due_ms is None or pending[0] < ledger.next_due_ms:
        ledger.next_due_ms = pending[0]


def expire(ledger: Ledger, due_ms: int) -> list[Contribution]:
    """Remove contributions expiring at or before ``due_ms``; returns them, oldest first."""
    gone = _take_expired(ledger, due_ms)
    if gone:
        forget(ledger, gone)
        gone.sort(key=lambda c: (c[C_OCCURRED], c[C_RULE]))
    return gone


def _expired(contrib: Raw, due_ms: int) -> bool:
    """Whether the contribution expires at or before ``due_ms``."""
    expires = contrib[C_EXPIRES]
    return expires is not None and cast(int, expires) <= due_ms


def _take_expired(ledger: Ledger, due_ms: int) -> list[Contribution]:
    """Take the contributions expiring at or before ``due_ms`` out of the ledger (the sums
    as they were); returns them in ledger order. Each stays the tuple it was (``state.Raw``)."""
    contribs = raw(ledger.contribs)
    for contrib in contribs:
        if _expired(contrib, due_ms):
            break
    else:
        return []  # (the common case: nothing expires, no new list)
    kept: list[Raw] = []
    gone: list[Raw] = []
    for contrib in contribs:
        if _expired(contrib, due_ms):
            gone.append(contrib)
        else:
            kept.append(contrib)
    ledger.contribs = cooked(kept)
    return cooked_list(gone)


def expire_through(ledger: Ledger, now_ms: int) -> list[list[Contribution]]:
    """Remove every contribution expiring at or before ``now_ms`` in one pass.

    Returns them grouped by expiry time, in time order; ``sums`` are *not* yet adjusted:
    the caller calls ``forget`` per group so each due time gets its own change.
    """
    gone = _take_expired(ledger, now_ms)
    if not gone:
        return []
    gone.sort(key=lambda c: (c[C_EXPIRES], c[C_OCCURRED], c[C_RULE]))
    groups: list[list[Contribution]] = [[gone[0]]]
    for contrib in gone[1:]:
        if contrib[C_EXPIRES] == groups[-1][0][C_EXPIRES]:
            groups[-1].append(contrib)
        else:
            groups.append([contrib])
    return groups


def forget(ledger: Ledger, contribs: list[Contribution]) -> None:
    """Take removed contributions out of the category sums."""
    sums = ledger.sums
    for c in contribs:
        sums[c[C_CATEGORY]] -= c[C_POINTS]


def release(ledger: Ledger, due_ms: int) -> list[Pending]:
    """Deferred groups due at or before ``due_ms`` (removed from the ledger), in due order."""
    due = [p for p in ledger.pending if p[0] <= due_ms]
    if due:
        kept = [p for p in ledger.pending if p[0] > due_ms]
        ledger.pending = kept if kept else NO_PENDING  # (no empty list of its own to track)
    return due


def take_back(ledger: Ledger, rule_id: str, occurred_ms: int) -> Contribution | None:
    """Remove the award of ``rule_id`` made for an event at ``occurred_ms``, live or deferred;
    returns it (None if there is none, e.g. a 0-point award)."""
    for i, c in enumerate(ledger.contribs):
        if c[C_RULE] == rule_id and c[C_OCCURRED] == occurred_ms:
            ledger.contribs = without(ledger.contribs, i)
            forget(ledger, [c])
            ledger.refresh_due()
            return c
    for i, (due, source, contribs) in enumerate(ledger.pending):
        for j, c in enumerate(contribs):
            if c[C_RULE] == rule_id and c[C_OCCURRED] == occurred_ms:
                # by position, not identity: compiled code unboxes tuples, so ``is`` between
                # two contributions says nothing there
                kept = contribs[:j] + contribs[j + 1 :]
                if kept:
                    ledger.pending[i] = (due, source, kept)
                elif len(ledger.pending) > 1:
                    del ledger.pending[i]
                else:
                    ledger.pending = NO_PENDING
                ledger.refresh_due()
                return c
    return None


def start_epoch(ledger: Ledger, epoch_ms: int) -> None:
    """A set/reset at ``epoch_ms``: everything that occurred earlier stops counting.

    Earlier contributions, folded totals, repeat-once flags, stand-by matches and deferred awards
    go; earlier state-rule holds are suppressed until the rule stops matching; a previous
    ``set`` base is replaced. Cap history is kept (it is a rate limit, not points). A once rule
    whose flag went may now award its stand-by match (``once.reopen``, called next).
    """
    ledger.epoch_ms = epoch_ms
    live: list[Contribution] = []
    for c in ledger.contribs:
        if c[C_RULE] == inactivity.RULE:  # one contribution may span the epoch's start
            part = inactivity.since(c, epoch_ms)
            if part is not None:
                live.append(part)
        elif c[C_OCCURRED] >= epoch_ms and c[C_RULE] != SET_RULE:
            live.append(c)
    ledger.contribs = tuple(live)
    ledger.folded = NO_FOLDED
    ledger.statics = {rule: at for rule, at in ledger.statics.items() if at >= epoch_ms}
    ledger.standby = {
        rule: match for rule, match in ledger.standby.items() if match[C_OCCURRED] >= epoch_ms
    }
    ledger.holds = {
        rule: (h if h is not None and h[C_OCCURRED] >= epoch_ms else None)
        for rule, h in ledger.holds.items()
    }
    pending: list[Pending] = []
    for due, source, contribs in ledger.pending:
        kept = tuple(c for c in contribs if c[C_OCCURRED] >= epoch_ms)
        if kept:
            pending.append((due, source, kept))
    ledger.pending = pending if pending else NO_PENDING
    ledger.rebuild_sums()
