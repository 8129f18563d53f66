"""A decaying ledger's contributions summed between evaluations: ``decay.evaluate`` in O(groups).

An evaluation reads every decaying contribution (its value at ``t`` is ``points * factor(age)``
in millionths, each rounded on its own), yet most evaluations of a busy ledger come after it
only gained contributions. A ``Memo`` keeps, per category and decay (kind and length), sums
that give the values *before* rounding at any instant:

- half-life ``L``: ``sum(points * 2^((occurred - anchor) / L))``, positive and negative terms
  apart; at ``t`` the values sum to that times ``2^((anchor - t) / L)``;
- linear to zero over ``L``: ``sum(points * (L + occurred - anchor))`` and ``sum(points)``;
  at ``t`` the values sum to ``(first - (t - anchor) * second) / L``.

Each rounded value is within half a millionth of its unrounded one and the float arithmetic
within a billionth of the magnitudes, so each category's decayed sum lies in a known interval;
clamping is monotone, so the integer total is exact when both ends round to the same whole
number (unless the total is within a few millionths of half a point). Otherwise, or when a
contribution may be worth 0 (it would leave the ledger) or is younger than ``t``, ``evaluate``
makes its full pass, which builds the memo again. ``steps`` contributions are evaluated exactly.

A cache, not state: not serialized, compared or copied. It describes the ledger's first
``count`` contributions, valid while the last of them is still at its place (the memo holds it,
so that identity cannot be reused): contributions are only appended or taken out, never
re-ordered, so the ones before it are unchanged too (inactivity deductions may be replaced at
their place by a part of themselves, but they never decay or expire: the memo sums none of
them). Those appended since are added to it, and an expiry takes its contributions out of it
(``decay_fast.expire``). Taking out any other one moves the last out of its place, which the
check sees (``tests/scoring/test_decay_memo.py`` compares the answers with the full pass's).
``decay_fast`` reads it.
"""

from __future__ import annotations

import math
from typing import Final, cast

from streams.scoring.aggregate import div_half_even, round_half_even
from streams.scoring.plan.spec import Decay
from streams.scoring.state import (
    C_CATEGORY,
    C_EXPIRES,
    C_OCCURRED,
    C_POINTS,
    C_RULE,
    Raw,
)

MICRO: Final = 1_000_000  # values are counted in millionths of a point
#: ``decay.evaluate``'s factor for the most a half-life value can lose (``ln 2``, rounded up).
LN2_UP: Final = 0.6932
#: The float arithmetic's error, relative to the magnitudes summed (far above what it is).
RELATIVE: Final = 1e-9
#: Lengths of decay between an anchor and a later contribution beyond which the full pass runs
#: (``2^FAR`` is far inside a float's range, and the linear sums' float error stays tiny).
FAR: Final = 800
NEVER_BEFORE: Final = -(2**62)  # (the extremes of a compiled int that is not boxed)
NEVER_AFTER: Final = 2**62 - 1
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


HALF: Final = 0  # a group's kind
LINEAR: Final = 1
STEPS: Final = 2
EMPTY: Final = -1  # a memo's kind while it holds no group


def kind_of(decay: Decay) -> int:
    return HALF if decay.kind == "half_life" else LINEAR if decay.kind != "steps" else STEPS


class Group:
    """The decaying contributions of one category with one kind and length of decay (steps:
    the contributions themselves, evaluated exactly); ``next``: the memo's next group."""

    def __init__(self, category: str | None, kind: int, length: int, anchor: int) -> None:
        self.category = category
        self.kind = kind
        self.length = length
        self.anchor = anchor  # half-life: the terms are the values at this instant
        self.pos = self.neg = 0.0  # half-life: the positive and the negative terms' sums
        #: linear: sums of points * MICRO * (length + occurred - anchor), and of points * MICRO,
        #: by sign (floats: compiled, a product of ints past 2^30 is a call on boxed ints)
        self.first_pos = self.first_neg = self.second_pos = self.second_neg = 0.0
        self.npos = self.nneg = 0
        self.full = 0  # the sum of points * MICRO
        self.magnitude = 0  # the sum of |points * MICRO|
        self.items: list[Raw] = NO_ITEMS  # steps
        self.low = self.high = 0  # ``fast``'s scratch: the decayed sum's bounds, less ``full``
        self.next: Group | None = None

    def add(self, contrib: Raw, full: int, occurred: int, term: float) -> None:
        kind = self.kind
        if kind == LINEAR:
            first = full * float(self.length + occurred - self.anchor)
            if full > 0:
                self.first_pos += first
                self.second_pos += full
            else:
                self.first_neg += first
                self.second_neg += full
        elif kind == HALF:
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

    def remove(self, contrib: Raw, full: int, occurred: int) -> None:
        """Take out a contribution ``add`` added (``magnitude`` keeps it: the float error's
        bound still covers what the subtraction leaves)."""
        kind = self.kind
        if kind == LINEAR:
            if full > 0:
                self.first_pos -= full * float(self.length + occurred - self.anchor)
                self.second_pos -= full
            else:
                self.first_neg -= full * float(self.length + occurred - self.anchor)
                self.second_neg -= full
        elif kind == HALF:
            term = full * math.pow(2.0, (occurred - self.anchor) / self.length)
            if full > 0:
                self.pos -= term
            else:
                self.neg -= term
        else:
            self.items = [item for item in self.items if item is not contrib]
        if full > 0:
            self.npos -= 1
        else:
            self.nneg -= 1
        self.full -= full


class Memo(Group):
    """What ``decay.evaluate`` needs of one contributions list, summed (see the module).

    The memo is its own first group (kind ``EMPTY`` until one is added) and chains the others
    by ``next``: one object for most ledgers, for the collector to scan (and no cycle)."""

    def __init__(self, decays: dict[str, Decay], anchor: int) -> None:
        super().__init__(None, EMPTY, 1, anchor)
        self.decays = decays  # the plan's: a new plan builds the memo again
        self.count = 0  # how many contributions it describes (``seal``), the last of them:
        self.last: object = None
        #: the decaying rules, in first-seen order (a tuple of strings: the collector drops it)
        self.rules: tuple[str, ...] = ()
        self.newest = NEVER_BEFORE  # the latest ``occurred`` of a decaying contribution
        self.spent_from = NEVER_AFTER  # no decaying contribution is worth 0 before this
        self.rule = ""  # the last rule added
        self.soonest: int | None = None  # the earliest expiry of any contribution

    def first(self) -> Group | None:
        """The first group (then each group's ``next``); None: the memo holds none."""
        return self if self.kind != EMPTY else None

    def put(self, contrib: Raw, decay: Decay, term: float = 0.0) -> None:
        """A decaying contribution (one ``decay.evaluate`` keeps, or one appended since);
        ``term``: a half-life contribution's value at the anchor before rounding, if known."""
        rule = cast(str, contrib[C_RULE])
        if rule is not self.rule and rule not in self.rules:
            self.rules += (rule,)
        self.rule = rule
        occurred = cast(int, contrib[C_OCCURRED])
        if occurred > self.newest:
            self.newest = occurred
        full = cast(int, contrib[C_POINTS]) * MICRO
        length = decay.length_ms
        kind = kind_of(decay)
        if full == 0 or (kind != STEPS and (occurred - self.anchor) / length > FAR):
            self.spent_from = NEVER_BEFORE  # worth 0 already; or a term beyond floats
        elif kind == LINEAR:  # worth 0 once |full| * (L - age) <= L / 2
            spent = occurred + length - length // (2 * (full if full > 0 else -full)) - 1
            self.spent_from = spent if spent < self.spent_from else self.spent_from
        elif kind == HALF:  # worth 0 once |full| * 2^(-age / L) <= 1/2: not before 20 L,
            spent = occurred + int(length * 20.0)  # (|full| >= MICRO; exact: below 2^53)
            self.spent_from = spent if spent < self.spent_from else self.spent_from
            if term == 0.0:
                term = full * math.pow(2.0, (occurred - self.anchor) / length)
        category = cast("str | None", contrib[C_CATEGORY])
        group = self.group(category, kind, length)
        if group is None:
            if self.kind == EMPTY:
                self.category, self.kind, self.length = category, kind, length
                group = self
            else:
                group = Group(category, kind, length, self.anchor)
                group.next, self.next = self.next, group
        group.add(contrib, full, occurred, term)

    def group(self, category: str | None, kind: int, length: int) -> Group | None:
        """The group of a category and decay (None: there is none)."""
        group = self.first()
        while group is not None:
            if group.kind == kind and group.length == length and group.category == category:
                return group
            group = group.next
        return None

    def expired(self, gone: list[Raw], contribs: tuple[Raw, ...]) -> None:
        """``gone`` (expired) left the contributions the memo describes, now ``contribs``."""
        for contrib in gone:
            decay = self.decays.get(cast(str, contrib[C_RULE]))
            if decay is None:
                continue
            category = cast("str | None", contrib[C_CATEGORY])
            group = self.group(category, kind_of(decay), decay.length_ms)
            if group is not None:
                full = cast(int, contrib[C_POINTS]) * MICRO
                group.remove(contrib, full, cast(int, contrib[C_OCCURRED]))
        self.soonest = None
        self.rules = ()
        for contrib in contribs:  # (no value is computed)
            self.expiry(contrib[C_EXPIRES])
            rule = cast(str, contrib[C_RULE])
            if rule in self.decays and rule not in self.rules:
                self.rules += (rule,)
        self.seal(contribs)

    def expiry(self, expires: object) -> None:
        if expires is not None and (self.soonest is None or cast(int, expires) < self.soonest):
            self.soonest = cast(int, expires)

    def seal(self, contribs: tuple[Raw, ...]) -> None:
        """The memo describes ``contribs`` as it is now."""
        self.count = len(contribs)
        self.last = contribs[-1] if contribs else None


NO_MEMO: Final = Memo({}, 0)  # ``decay.evaluate``'s for an empty ledger: never added to or kept
