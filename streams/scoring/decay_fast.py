"""``decay.evaluate``'s fast path: the answer from a ledger's memo (``decay_memo``).

``current`` checks that the memo still describes the ledger's contributions (adding those
appended since); ``fast`` answers from it when the interval around the total decides it;
``expire`` takes expired contributions out of the ledger and out of its memo, which stays
current; ``event_due`` reads the earliest expiry from it.
"""

from __future__ import annotations

import math
from typing import cast

from streams.scoring import ledger as ledgers
from streams.scoring import state
from streams.scoring.aggregate import clamp, div_half_even, scaled_clamp
from streams.scoring.contribs import raw, raw_list
from streams.scoring.decay_memo import (
    LINEAR,
    LN2_UP,
    MICRO,
    RELATIVE,
    STEPS,
    Group,
    Memo,
    micro_value,
)
from streams.scoring.plan.spec import Score
from streams.scoring.state import C_EXPIRES, C_OCCURRED, C_POINTS, C_RULE, Contribution, Ledger


def current(score: Score, ledger: Ledger) -> Memo | None:
    """The ledger's memo if it still describes its contributions (those appended since are
    added to it), else None."""
    if ledger.memo is None:
        return None
    memo = cast(Memo, ledger.memo)
    contribs = raw(ledger.contribs)
    if memo.decays is not score.decays:
        return None
    # contributions are only ever appended or taken out (never re-ordered, and never the same
    # object twice), each change a new tuple: while the one the memo saw last is still at its
    # place, everything before it is too, and only appended ones are new. (An inactivity
    # deduction may be replaced at its place by a part of itself, ``inactivity``: it never
    # decays or expires, so nothing the memo sums changes.)
    count, size = memo.count, len(contribs)
    if size < count or (count and contribs[count - 1] is not memo.last):
        return None
    if size > count:
        decays = score.decays
        for i in range(count, size):
            contrib = contribs[i]
            decay = decays.get(cast(str, contrib[C_RULE]))
            if decay is not None:
                memo.put(contrib, decay)
            memo.expiry(contrib[C_EXPIRES])
        memo.seal(contribs)
    return memo


def expire(score: Score, ledger: Ledger, due_ms: int) -> list[Contribution]:
    """``ledger.expire``, keeping a current memo current (no full pass at the next evaluation)."""
    memo = current(score, ledger) if score.decays else None
    gone = ledgers.expire(ledger, due_ms)
    if gone and memo is not None:
        memo.expired(raw_list(gone), raw(ledger.contribs))
    return gone


def event_due(score: Score, ledger: Ledger) -> int | None:
    """``state.event_due`` (the earliest expiry or deferred award), from the memo if current."""
    memo = current(score, ledger)
    if memo is None:
        return state.event_due(ledger)
    return state.pending_due(ledger, memo.soonest)


def fast(score: Score, ledger: Ledger, at_ms: int) -> tuple[int, int, int, int | None] | None:
    """``decay.evaluate``'s answer at ``at_ms`` from the memo, when it decides it (see the
    module): nothing is spent by then, so the ledger stays as it is. ``down`` and ``up`` are
    bounds at least as wide as the full pass's (``next_check`` finds the same instant with
    either). None: make the full pass."""
    memo = current(score, ledger)
    if memo is None or at_ms < memo.newest or at_ms >= memo.spent_from:
        return None
    step = score.decay_granularity_ms
    delta = (at_ms // step + 1) * step - at_ms  # until the next check of the granularity
    down = up = 0
    group = memo.first()
    while group is not None:
        length, kind = group.length, group.kind
        npos, nneg = group.npos, group.nneg
        if kind == STEPS:  # exactly
            change = 0
            for contrib in group.items:
                points = cast(int, contrib[C_POINTS])
                decay = score.decays[cast(str, contrib[C_RULE])]
                value = micro_value(points, decay, at_ms - cast(int, contrib[C_OCCURRED]))
                if value == 0:
                    return None  # spent: the full pass drops it
                change += value - points * MICRO
                if value > 0:
                    down += value
                else:
                    up -= value
            group.low = group.high = change
            group = group.next
            continue
        if kind == LINEAR:
            elapsed = float(at_ms - group.anchor)
            positive = (group.first_pos - elapsed * group.second_pos) / length
            negative = (group.first_neg - elapsed * group.second_neg) / length
            down += int(group.second_pos * delta / length) + 3 * npos + 2  # (+2: the floats)
            up += int(-group.second_neg * delta / length) + 3 * nneg + 2
        else:
            factor = math.pow(2.0, (group.anchor - at_ms) / length)
            positive, negative = group.pos * factor, group.neg * factor
            share = delta * LN2_UP / length
            slack = 1.5 + group.magnitude * RELATIVE
            down += int((positive + (slack * npos + 1)) * share) + 3 * npos + 1
            up += int((-negative + (slack * nneg + 1)) * share) + 3 * nneg + 1
        err = 0.5 * (npos + nneg) + group.magnitude * RELATIVE + 2
        decayed = positive + negative
        group.low = math.floor(decayed - err) - group.full
        group.high = math.ceil(decayed + err) - group.full
        group = group.next
    low, high = _bounds(score, ledger.sums, memo.first())
    value = div_half_even(low, MICRO)
    if value != div_half_even(high, MICRO):
        return None
    return clamp(value + ledger.rolled, score.min, score.max), down, up, memo.soonest


def _bounds(score: Score, sums: dict[str | None, int], first: Group | None) -> tuple[int, int]:
    """The unlimited total's lowest and highest possible value in millionths
    (``aggregate.unlimited_total`` with each category's decayed sum in its interval)."""
    categories = score.categories
    low = high = 0
    for name, points in sums.items():
        below = above = points * MICRO
        group = first
        while group is not None:
            if group.category is name or group.category == name:
                below += group.low
                above += group.high
            group = group.next
        category = categories.get(name) if name is not None else None
        if category is not None:  # (``scaled_clamp`` of both, inline)
            if category.min is not None:
                bound = category.min * MICRO
                below = bound if below < bound else below
                above = bound if above < bound else above
            if category.max is not None:
                bound = category.max * MICRO
                below = bound if below > bound else below
                above = bound if above > bound else above
        low += below
        high += above
    for name, category in categories.items():
        if name not in sums:
            empty = scaled_clamp(0, category.min, category.max, MICRO)
            low += empty
            high += empty
    return low, high
