"""A decaying ledger's contributions summed between evaluations: ``decay.evaluate`` in O(groups).

An evaluation reads every decaying contribution (its value at ``t`` is ``points * factor(age)``
in millionths, each rounded on its own), yet most evaluations of a busy ledger come after it
only gained contributions. A ``Memo`` keeps, per category and decay (kind and length), sums
that give the values *before* rounding at any instant:

- half-life ``L``: ``sum(points * 2^((occurred - anchor) / L))``, positive and negative terms
  apart; at ``t`` the values sum to that times ``2^((anchor - t) / L)``;
- linear to zero over ``L``: ``sum(points * (L + occurred))`` and ``sum(points)`` (exact
  integers); at ``t`` the values sum to ``(first - t * second) / L``.

Each rounded value is within half a millionth of its unrounded one and the float arithmetic
within a billionth of the magnitudes, so each category's decayed sum lies in a known interval;
clamping is monotone, so the integer total is exact when both ends round to the same whole
number (unless the total is within a few millionths of half a point). Otherwise, or when a
contribution may be worth 0 (it would leave the ledger) or is younger than ``t``, ``evaluate``
makes its full pass, which builds the memo again. ``steps`` contributions are evaluated exactly.

A cache, not state: not serialized, compared or copied. It describes one list object, valid
while the ledger holds that list with its first ``count`` items unchanged (it holds the last of
them, so that identity cannot be reused); items appended since are added to it. Every other
change assigns a new list or removes an item, which the check sees
(``tests/scoring/test_decay_memo.py`` compares answers with the full pass's).
"""

from __future__ import annotations

import math
from typing import Final, cast

from streams.scoring import state
from streams.scoring.aggregate import clamp, div_half_even, round_half_even, scaled_clamp
from streams.scoring.plan.spec import Decay, Score
from streams.scoring.state import (
    C_CATEGORY,
    C_EXPIRES,
    C_OCCURRED,
    C_POINTS,
    C_RULE,
    Ledger,
    Raw,
    raw,
)

MICRO: Final = 1_000_000  # values are counted in millionths of a point
#: ``decay.evaluate``'s factor for the most a half-life value can lose (``ln 2``, rounded up).
LN2_UP: Final = 0.6932
#: The float arithmetic's error, relative to the magnitudes summed (far above what it is).
RELATIVE: Final = 1e-9
#: Half-lives between an anchor and a later contribution beyond which the full pass runs
#: (``2^FAR`` is far inside a float's range).
FAR: Final = 800
NO_ITEMS: Final[list[Raw]] = []  # shared, never changed in place


def micro_value(points: int, decay: Decay, age_ms: int) -> int:
    """The value of ``points`` after ``age_ms`` of ``decay``, in millionths of a point."""
    if age_ms <= 0:
        return points * MICRO
    kind = decay.kind
    if kind == "half_life":
        return round_half_even(points * MICRO * math.pow(2.0, -age_ms / decay.length_ms))
    if kind == "linear_to_zero":
        if age_ms >= decay.length_ms:
            return 0
        return div_half_even(points * MICRO * (decay.length_ms - age_ms), decay.length_ms)
    numerator, denominator = 1, 1
    for step_ms, num, den in decay.steps:
        if age_ms < step_ms:
            break
        numerator, denominator = num, den
    return div_half_even(points * MICRO * numerator, denominator)


HALF, LINEAR, STEPS = 0, 1, 2  # a group's kind


class Group:
    """The decaying contributions of one category with one kind and length of decay (steps:
    the contributions themselves, evaluated exactly)."""

    def __init__(self, category: str | None, kind: int, length: int, anchor: int) -> None:
        self.category = category
        self.kind = kind
        self.length = length
        self.anchor = anchor  # half-life: the terms are the values at this instant
        self.pos = self.neg = 0.0  # half-life: the positive and the negative terms' sums
        self.first_pos = self.first_neg = 0  # linear: points * MICRO * (length + occurred)
        self.second_pos = self.second_neg = 0  # linear: points * MICRO (sums, by sign)
        self.npos = self.nneg = 0
        self.full = 0  # the sum of points * MICRO
        self.magnitude = 0  # the sum of |points * MICRO|
        self.items: list[Raw] = NO_ITEMS  # steps
        self.low = self.high = 0  # ``fast``'s scratch: the decayed sum's bounds, less ``full``

    def add(self, contrib: Raw, full: int, occurred: int) -> None:
        kind = self.kind
        if kind == LINEAR:
            first = full * (self.length + occurred)
            if full > 0:
                self.first_pos += first
                self.second_pos += full
            else:
                self.first_neg += first
                self.second_neg += full
        elif kind == HALF:
            term = full * math.pow(2.0, (occurred - self.anchor) / self.length)
            if full > 0:
                self.pos += term
            else:
                self.neg += term
        elif self.items is NO_ITEMS:
            self.items = [contrib]
        else:
            self.items.append(contrib)
        if full > 0:
            self.npos += 1
        else:
            self.nneg += 1
        self.full += full
        self.magnitude += full if full > 0 else -full


class Memo:
    """What ``decay.evaluate`` needs of one contributions list, summed (see the module)."""

    def __init__(self, decays: dict[str, Decay], anchor: int) -> None:
        self.decays = decays  # the plan's: a new plan builds the memo again
        self.anchor = anchor
        self.contribs: list[Raw] = NO_ITEMS  # the list described (``seal``)
        self.count = 0
        self.last: object = None
        self.groups: list[Group] = []
        self.rules: list[str] = []  # the decaying rules, in first-seen order
        self.newest = -(2**62)  # the latest ``occurred`` of a decaying contribution
        self.spent_from = 2**62  # no decaying contribution is worth 0 before this
        self.soonest: int | None = None  # the earliest expiry of any contribution

    def add(self, contrib: Raw, decay: Decay) -> None:
        """A decaying contribution (one ``decay.evaluate`` keeps, or one appended since)."""
        rule = cast(str, contrib[C_RULE])
        if rule not in self.rules:
            self.rules.append(rule)
        occurred = cast(int, contrib[C_OCCURRED])
        if occurred > self.newest:
            self.newest = occurred
        full = cast(int, contrib[C_POINTS]) * MICRO
        length = decay.length_ms
        kind = HALF if decay.kind == "half_life" else LINEAR if decay.kind != "steps" else STEPS
        if full == 0 or (kind == HALF and occurred - self.anchor > FAR * length):
            self.spent_from = -(2**62)  # worth 0 already; or a term beyond floats: full pass
        elif kind == LINEAR:  # worth 0 once |full| * (L - age) <= L / 2
            spent = occurred + length - length // (2 * (full if full > 0 else -full)) - 1
            self.spent_from = min(self.spent_from, spent)
        elif kind == HALF:  # worth 0 once |full| * 2^(-age / L) <= 1/2: not before 20 L,
            self.spent_from = min(self.spent_from, occurred + 20 * length)  # |full| >= MICRO
        category = cast("str | None", contrib[C_CATEGORY])
        at = len(self.groups)
        for i, group in enumerate(self.groups):
            if group.category == category:
                at = i + 1  # (a new group goes after its category's: they stay together)
                if group.kind == kind and group.length == length:
                    group.add(contrib, full, occurred)
                    return
        group = Group(category, kind, length, self.anchor)
        group.add(contrib, full, occurred)
        self.groups.insert(at, group)

    def expiry(self, expires: object) -> None:
        if expires is not None and (self.soonest is None or cast(int, expires) < self.soonest):
            self.soonest = cast(int, expires)

    def seal(self, contribs: list[Raw]) -> None:
        """The memo describes ``contribs`` as it is now."""
        self.contribs = contribs
        self.count = len(contribs)
        self.last = contribs[-1] if contribs else None


def current(score: Score, ledger: Ledger) -> Memo | None:
    """The ledger's memo if it still describes its contributions (those appended since are
    added to it), else None."""
    if ledger.memo is None:
        return None
    memo = cast(Memo, ledger.memo)
    contribs = raw(ledger.contribs)
    if memo.decays is not score.decays or contribs is not memo.contribs:
        return None
    count, size = memo.count, len(contribs)
    if size < count or (count and contribs[count - 1] is not memo.last):
        return None
    if size > count:
        decays = score.decays
        for i in range(count, size):
            contrib = contribs[i]
            decay = decays.get(cast(str, contrib[C_RULE]))
            if decay is not None:
                memo.add(contrib, decay)
            memo.expiry(contrib[C_EXPIRES])
        memo.seal(contribs)
    return memo


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
    for group in memo.groups:
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
            continue
        if kind == LINEAR:
            positive = (group.first_pos - at_ms * group.second_pos) / length
            negative = (group.first_neg - at_ms * group.second_neg) / length
            down += group.second_pos * delta // length + 3 * npos + 1
            up += -group.second_neg * delta // length + 3 * nneg + 1
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
    low, high = _bounds(score, ledger.sums, memo.groups)
    value = div_half_even(low, MICRO)
    if value != div_half_even(high, MICRO):
        return None
    return clamp(value + ledger.rolled, score.min, score.max), down, up, memo.soonest


def _bounds(score: Score, sums: dict[str | None, int], groups: list[Group]) -> tuple[int, int]:
    """The unlimited total's lowest and highest possible value in millionths
    (``aggregate.unlimited_total`` with each category's decayed sum in its interval)."""
    categories = score.categories
    low = high = 0
    for name, points in sums.items():
        base = points * MICRO
        below = above = base
        for group in groups:
            if group.category == name:
                below += group.low
                above += group.high
        category = categories.get(name) if name is not None else None
        if category is not None:
            below = scaled_clamp(below, category.min, category.max, MICRO)
            above = scaled_clamp(above, category.min, category.max, MICRO)
        low += below
        high += above
    for name, category in categories.items():
        if name not in sums:
            empty = scaled_clamp(0, category.min, category.max, MICRO)
            low += empty
            high += empty
    return low, high
