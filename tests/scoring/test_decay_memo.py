"""``decay_memo``: ``decay.evaluate`` from the memo gives the full pass's answers.

Two copies of a ledger go through the same history (contributions appended, taken back from
the middle, expired, lists replaced, holds and roll-up parts changed); one keeps its memo, the
other's is dropped before each evaluation, so it always makes the full pass. The totals,
earliest expiries and the ledgers themselves must agree at every step, and the memo's spread
bounds must be at least the full pass's (``next_check`` relies on them being bounds).
"""

from __future__ import annotations

import copy
import random
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from scoring_helpers import T0, D, H, Runner, one_score, visit

from streams.scoring import ledger as ledgers
from streams.scoring.decay import evaluate
from streams.scoring.decay_fast import expire, fast
from streams.scoring.plan.spec import Category, Decay, Score
from streams.scoring.state import Contribution, Ledger

DECAYS = {
    "h14": Decay("half_life", 14 * D),
    "h1": Decay("half_life", 1 * H),
    "h14b": Decay("half_life", 14 * D),  # the same decay as h14: one group
    "lin": Decay("linear_to_zero", 30 * D),
    "lin3": Decay("linear_to_zero", 3 * D),
    "steps": Decay("steps", 90 * D, ((30 * D, 1, 2), (90 * D, 0, 1))),
}
RULES = [*DECAYS, "plain"]
CATEGORIES = (None, "interest", "email")


def make_score(limits: tuple[int | None, int | None], cap: int | None) -> Score:
    return Score(
        name="engagement",
        entity="contact",
        timezone="UTC",
        zone=ZoneInfo("UTC"),
        rules=(),
        min=limits[0],
        max=limits[1],
        categories={
            "interest": Category("interest", 0, cap),
            "email": Category("email", None, 40),
        },
        decays=DECAYS,
    )


def contribution(rule: str, points: int, category: str | None, at: int, expires: int | None,
                 i: int) -> Contribution:  # fmt: skip
    return (rule, points, category, at, expires, f"e{i}")


STEPS = st.one_of(
    st.tuples(
        st.just("add"),
        st.sampled_from(RULES),
        st.integers(-60, 200),
        st.sampled_from(CATEGORIES),
        st.integers(-2 * D, D),
        st.one_of(st.none(), st.integers(1, 40 * D)),
    ),
    st.tuples(st.just("evaluate"), st.integers(0, 3 * D), st.booleans()),
    st.tuples(st.just("evaluate"), st.integers(0, 2 * H), st.booleans()),
    st.tuples(st.just("take_back"), st.integers(0, 1000)),
    st.tuples(st.just("expire"), st.integers(0, 10 * D)),
    st.tuples(st.just("new_tuple"), st.booleans()),
    st.tuples(st.just("hold"), st.sampled_from(CATEGORIES), st.integers(-30, 30)),
    st.tuples(st.just("rolled"), st.integers(-50, 50)),
)


def run(score: Score, steps: list[Any]) -> int:
    """Apply ``steps`` to two ledgers; returns how many evaluations the memo decided."""
    memo, full = Ledger(), Ledger()
    now, decided = T0, 0
    for i, step in enumerate(steps):
        for ledger in (memo, full):
            if step[0] == "add":
                _, rule, points, category, back, life = step
                at = now + back
                expires = None if life is None else at + life
                ledgers.record(ledger, contribution(rule, points, category, at, expires, i))
            elif step[0] == "take_back" and ledger.contribs:
                victim = ledger.contribs[step[1] % len(ledger.contribs)]
                ledgers.take_back(ledger, victim[0], victim[3])
            elif step[0] == "expire" and ledger is memo:
                expire(score, ledger, now + step[1])  # (the memo kept current)
            elif step[0] == "expire":
                ledgers.expire(ledger, now + step[1])
            elif step[0] == "new_tuple" and ledger.contribs:
                # a new tuple of the same contributions (the memo stays valid), or of copies
                # (equal, other objects: the memo must see them as new)
                items = [(*c,) for c in ledger.contribs] if step[1] else [*ledger.contribs]
                ledger.contribs = tuple(items)
            elif step[0] == "hold":
                ledger.sums[step[1]] = ledger.sums.get(step[1], 0) + step[2]
            elif step[0] == "rolled":
                ledger.rolled = step[1]
        if step[0] != "evaluate":
            continue
        now += step[1]
        decided += fast(score, copy.copy(memo), now) is not None  # (a copy: no side effects)
        answer = evaluate(score, memo, now, drop=step[2])
        full.memo = None
        expected = evaluate(score, full, now, drop=step[2])
        assert (answer[0], answer[3]) == (expected[0], expected[3]), step
        assert answer[1] >= expected[1] and answer[2] >= expected[2], step
        assert memo == full
    return decided


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([(None, None), (0, 100), (-20, 500)]),
    st.sampled_from([None, 50, 300]),
    st.lists(STEPS, min_size=8, max_size=60),
)
def test_the_memo_answers_as_the_full_pass(
    limits: tuple[int | None, int | None], cap: int | None, steps: list[Any]
) -> None:
    run(make_score(limits, cap), steps)


def test_the_memo_decides_after_appends_and_not_after_a_removal() -> None:
    score = make_score((0, 1000), 300)
    steps: list[Any] = [
        ("add", "h14", 30, "interest", 0, None),
        ("add", "lin", 5, "email", 0, 30 * D),
        ("evaluate", 1 * H, True),  # the full pass: builds the memo
        ("add", "h14b", 20, "interest", 0, 20 * D),
        ("add", "steps", 60, None, 0, None),
        ("evaluate", 2 * D, True),  # appended since: decided by the memo
        ("evaluate", 5 * D, False),  # again
    ]
    assert run(score, steps) == 2
    removed: list[Any] = [*steps[:3], ("take_back", 0), ("evaluate", 1 * H, True)]
    assert run(score, removed) == 0
    # one out of the middle and one appended: the same length, another list
    swapped: list[Any] = [*steps[:3], ("take_back", 0), steps[3], ("evaluate", 1 * H, True)]
    assert run(score, swapped) == 0
    copied: list[Any] = [*steps[:3], ("new_tuple", True), ("evaluate", 1 * H, True)]
    assert run(score, copied) == 0  # equal contributions, other objects
    same: list[Any] = [*steps[:3], ("new_tuple", False), ("evaluate", 1 * H, True)]
    assert run(score, same) == 1  # a new tuple of the same contributions
    spent: list[Any] = [*steps[:3], ("evaluate", 31 * D, True)]  # the linear one is spent
    assert run(score, spent) == 0
    expiring: list[Any] = [
        ("add", "h14", 30, "interest", 0, None),
        ("add", "plain", 3, None, 0, 5 * H),  # (the earliest expiry after the others')
        ("add", "h1", 7, "interest", 0, 2 * H),
        ("add", "steps", 9, "interest", -31 * D, 31 * D + 2 * H),  # (past its first step)
        ("add", "lin", -4, "email", 0, 2 * H),
        ("evaluate", 1 * H, True),
        ("expire", 1 * H),  # (at 2 hours: all but the first leave)
        ("evaluate", 2 * H, True),  # decided by the memo, which the expiry kept current
    ]
    assert run(score, expiring) == 1


class _NoMemo(Runner):
    """The same feed with every memo dropped first: each evaluation is the full pass."""

    def feed(self, *items: Any, now_ms: int | None = None) -> list[Any]:
        self._drop()
        return super().feed(*items, now_ms=now_ms)

    def advance(self, now_ms: int) -> list[Any]:
        self._drop()
        return super().advance(now_ms)

    def _drop(self) -> None:
        for state in self.states.values():
            for ledger in state.scores.values():
                ledger.memo = None


def test_the_memo_stays_valid_when_a_late_event_splits_an_inactivity_deduction() -> None:
    """A late event replaces an inactivity deduction by its part before the event, at its
    place among the contributions: the memo (which sums no deduction) must still answer as the
    full pass, with decaying and expiring awards around it."""
    plan = one_score(
        """
        - {id: v, on: page_visit, points: 20, decay: {half_life: 3d}}
        - {id: w, on: page_visit, where: {url: {contains: pricing}}, points: 7,
           expires_after: 4d}
        """,
        head="inactivity: {after: 1d, points: -2, repeat: every}\nlimits: {min: -1000, max: 1000}",
        plan_head="lateness: 20d",
    )
    for seed in range(60):
        rng = random.Random(seed)  # (deterministic: the same sequences every run)
        with_memo, full = Runner(plan), _NoMemo(plan)
        now = T0
        for i in range(rng.randint(3, 25)):
            if rng.random() < 0.3:
                at = now - rng.randint(0, 6 * D)  # late: may fall inside a silence
            else:
                now += rng.randint(0, 3 * D)
                at = now
            url = "https://x/pricing" if rng.random() < 0.5 else "https://x/other"
            if rng.random() < 0.5:
                with_memo.walk(now)
                full.walk(now)
            with_memo.feed(visit(f"e{i}", at, url=url))
            full.feed(visit(f"e{i}", at, url=url))
        with_memo.walk(now + 30 * D)
        full.walk(now + 30 * D)
        got = [(c.seq, c.new_value, c.occurred_at_ms) for c in with_memo.changes]
        assert got == [(c.seq, c.new_value, c.occurred_at_ms) for c in full.changes], seed
