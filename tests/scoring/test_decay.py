"""Decay (docs/plans.md): decayed values, decay checks and crossings, plans, explain, properties."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scoring_helpers import T0, D, H, M, Runner, adj, ev, make_plan, one_score, summary, visit

from streams.scoring import EntityKey, PlanError, dumps, explain, loads
from streams.scoring.aggregate import round_half_even
from streams.scoring.compaction import compact
from streams.scoring.decay import decayed_total
from streams.scoring.decay_memo import MICRO, micro_value
from streams.scoring.plan.spec import Decay, Score
from streams.scoring.state import C_CATEGORY, C_OCCURRED, C_POINTS, C_RULE, Ledger

KEY = EntityKey(None, "contact", "c1")
HALF = Decay("half_life", 10 * D)
LINEAR = Decay("linear_to_zero", 10 * D)
STEPS = Decay("steps", 90 * D, ((30 * D, 1, 2), (60 * D, 1, 4), (90 * D, 0, 1)))


@pytest.mark.parametrize(
    ("points", "decay", "age", "micro"),
    [
        (100, HALF, 0, 100 * MICRO),  # at the event: whole
        (100, HALF, -5, 100 * MICRO),  # (an instant before the event: whole)
        (100, HALF, 10 * D, 50 * MICRO),  # one half-life
        (100, HALF, 20 * D, 25 * MICRO),  # two
        (3, HALF, 10 * D, 1_500_000),  # 1.5 points, exact
        (-40, HALF, 10 * D, -20 * MICRO),  # negative points decay toward 0 too
        (100, HALF, 5 * D, 70_710_678),  # 100 / sqrt(2), to the millionth
        (1, HALF, 300 * D, 0),  # 2^-30 of a point rounds to 0 millionths: spent
        (100, LINEAR, 0, 100 * MICRO),
        (100, LINEAR, 5 * D, 50 * MICRO),  # halfway
        (7, LINEAR, 3 * D, 4_900_000),  # 7 * 0.7
        (1, LINEAR, 3 * M, 999_792),  # 1 - 3m/10d = 0.99979166..., rounded half-even
        (100, LINEAR, 10 * D, 0),  # zero at its length
        (100, LINEAR, 11 * D, 0),  # and after
        (100, STEPS, 30 * D - 1, 100 * MICRO),  # before the first step
        (100, STEPS, 30 * D, 50 * MICRO),  # first step: 1/2
        (5, STEPS, 60 * D, 1_250_000),  # second: 1/4
        (100, STEPS, 90 * D, 0),  # last: 0
    ],
)
def test_micro_value(points: int, decay: Decay, age: int, micro: int) -> None:
    assert micro_value(points, decay, age) == micro


@pytest.mark.parametrize(
    "x",
    [0.0, -0.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999999999999994, -0.49999999999999994,
     -0.5000000000000001, -0.25, -0.3, -0.7, -0.9999999999999999, 2.0**52 + 1, -(2.0**53),
     4503599627370495.5, -4503599627370495.5, 123456789.5, 123456790.5, 1e15 + 0.5],
)  # fmt: skip
def test_round_half_even_is_round_at_the_edges(x: float) -> None:
    assert round_half_even(x) == round(x)


@given(st.one_of(st.floats(min_value=-1e15, max_value=1e15, allow_nan=False),
                 st.floats(min_value=-1.0, max_value=1.0)))  # fmt: skip
@settings(max_examples=3000, deadline=None)
def test_round_half_even_is_round(x: float) -> None:
    assert round_half_even(x) == round(x)
    assert round_half_even(math.floor(x) + 0.5) == round(math.floor(x) + 0.5)  # its ties


DECAYING = """
- {id: pricing, on: page_visit, points: 100, decay: {half_life: 10d}}
"""


def test_decay_checks_publish_at_granularity_and_at_crossings() -> None:
    plan = one_score(DECAYING, head="thresholds: [{name: mql, at: 60}]")
    runner = Runner(plan)
    runner.feed(visit("e1", T0))  # Monday 10:00
    changes = runner.walk(T0 + 8 * D)
    # checks at UTC midnights (14 h after the visit, then daily); the value moves each day, so
    # each check publishes; mql (60) is crossed down between two checks and published at the
    # first millisecond the total rounds to 59 (59.5 rounds half-even to 60, so the value must
    # fall below 59.4999995 to count 59 in millionths)
    crossing = T0 + round(10 * D * math.log2(100 / 59.4999995))
    assert summary(changes) == [
        (2, 100, 96, "decay", ("pricing",), 14 * H),
        (3, 96, 90, "decay", ("pricing",), 14 * H + D),
        (4, 90, 84, "decay", ("pricing",), 14 * H + 2 * D),
        (5, 84, 78, "decay", ("pricing",), 14 * H + 3 * D),
        (6, 78, 73, "decay", ("pricing",), 14 * H + 4 * D),
        (7, 73, 68, "decay", ("pricing",), 14 * H + 5 * D),
        (8, 68, 63, "decay", ("pricing",), 14 * H + 6 * D),
        (9, 63, 59, "decay", ("pricing",), changes[7].occurred_at_ms - T0),
        # (the check at 7 d 14 h finds 59.1: no change)
    ]
    assert abs(changes[7].occurred_at_ms - crossing) <= 1
    assert changes[7].thresholds == (("mql", "down"),)
    assert changes[7].source_event_id == ""
    assert changes[7].to_dict()["source_event_id"] is None
    ledger = runner.states[KEY].scores["s"]
    assert decayed_total(plan.by_name["s"], ledger, changes[7].occurred_at_ms - 1) == 60
    assert decayed_total(plan.by_name["s"], ledger, changes[7].occurred_at_ms) == 59


def test_granularity_throttles_changes_but_not_tier_crossings() -> None:
    plan = one_score(
        DECAYING,
        head="""
        decay_granularity: 7d
        tiers: [{name: cold, below: 50}, {name: hot}]
        """,
    )
    runner = Runner(plan)
    runner.feed(visit("e1", T0))
    changes = runner.walk(T0 + 20 * D)
    # checks every 7 days (multiples of 7d from the epoch: Thursdays 00:00 UTC), plus the
    # instant the total falls to 49 (tier cold), about 10 * log2(100 / 49.5) days after the visit
    assert [(c.old_value, c.new_value, str(c.cause), c.tier_before, c.tier_after)
            for c in changes] == [
        (100, 84, "decay", "hot", "hot"),  # Thursday, 2 d 14 h after
        (84, 51, "decay", "hot", "hot"),  # next Thursday
        (51, 49, "decay", "hot", "cold"),  # the crossing, at once
        (49, 49, "tier", "hot", "cold"),  # and its tier record
        (49, 32, "decay", "cold", "cold"),  # the Thursday after
    ]  # fmt: skip
    days = [(c.occurred_at_ms - T0) / D for c in changes]
    assert days[0] == pytest.approx(2 + 14 / 24) and days[1] == pytest.approx(9 + 14 / 24)
    assert days[2] == pytest.approx(10 * math.log2(100 / 49.5), abs=1e-6)
    assert days[4] == pytest.approx(16 + 14 / 24)


def test_events_are_scored_at_the_later_of_their_time_and_the_last_evaluation() -> None:
    plan = one_score(DECAYING)
    runner = Runner(plan)
    runner.feed(visit("e1", T0))
    runner.walk(T0 + 10 * D + 14 * H)  # last check: 50.x after 10 d 14 h
    assert runner.value() == 48
    # a late visit from the day after the first: both decay from their own times, evaluated at
    # the last check (the instant never goes back)
    late = runner.feed(visit("e2", T0 + D), now_ms=T0 + 10 * D + 15 * H)
    at = T0 + 10 * D + 14 * H
    both = 100 * 2 ** (-(at - T0) / (10 * D)) + 100 * 2 ** (-(at - T0 - D) / (10 * D))
    assert summary(late) == [(13, 48, round(both), "rule", ("pricing",), D)]


def test_decay_with_categories_limits_expiry_and_epochs() -> None:
    plan = one_score(
        """
        - {id: pricing, on: page_visit, points: 40, category: interest,
           decay: {linear_to_zero: 10d}}
        - {id: webinar, on: email.click, points: 40, category: interest}
        - {id: trial, on: purchase, points: 30, decay: {steps: [[2d, 0.5], [4d, 0]]},
           expires_after: 3d}
        """,
        head="""
        decay_granularity: 1d
        limits: {max: 100}
        categories: {interest: {max: 60}}
        """,
    )
    runner = Runner(plan)
    runner.feed(
        visit("e1", T0),
        ev("email.click", "e2", T0),
        ev("purchase", "e3", T0, amount=1, order_id="o1", currency="EUR"),
    )
    # interest 40 + 40 = 80, clamped to 60; + trial 30 = 90
    assert runner.value() == 90
    runner.advance(T0 + 5 * D)
    ledger = runner.states[KEY].scores["s"]
    assert [(c.new_value, str(c.cause), (c.occurred_at_ms - T0) / H) for c in
            runner.changes[3:]] == [
        # the trial halves at 2 d (Wednesday 10:00), published at the next check (Thursday
        # 00:00 UTC, 62 h): 15 + interest 40 * (1 - 62/240) + 40 = 69.7, clamped to 60
        (75, "decay", 62.0),
        (60, "expiry", 72.0),  # the trial expires at 3 d
    ]  # fmt: skip
    assert ledger.total == 60
    runner.advance(T0 + 8 * D)  # last check at 7 d 14 h: 40 * (1 - 182/240) + 40 = 49.7
    assert runner.value() == 50
    runner.feed(adj("r1", T0 + 8 * D + H, "set", 10))  # a new epoch: decay of the past is gone
    assert runner.value() == 10
    assert runner.states[KEY].scores["s"].decay_due_ms is None  # nothing left decays
    assert runner.states[KEY].next_due_ms is None


def test_spent_contributions_leave_the_state() -> None:
    plan = one_score(DECAYING)
    runner = Runner(plan)
    runner.feed(visit("e1", T0), visit("e2", T0 + H))
    runner.advance(T0 + 200 * D)
    ledger = runner.states[KEY].scores["s"]
    assert len(ledger.contribs) == 2 and runner.value() == 0  # worth less than half a point
    runner.advance(T0 + 400 * D)  # 100 * 2^-40: below half a millionth
    assert ledger.contribs == () and ledger.sums == {None: 0}
    assert ledger.decay_due_ms is None and runner.states[KEY].next_due_ms is None


def test_compaction_never_folds_a_decaying_contribution() -> None:
    plan = one_score(
        DECAYING + "- {id: visit, on: page_visit, points: 1}", plan_head="lateness: 1d"
    )
    runner = Runner(plan)
    runner.feed(visit("e1", T0), visit("e2", T0 + 3 * D))
    compact(runner.states[KEY], "contact", plan)
    ledger = runner.states[KEY].scores["s"]
    assert ledger.folded == {("visit", None): 1}
    assert sorted((c[C_RULE], c[C_OCCURRED] - T0) for c in ledger.contribs) == [
        ("pricing", 0), ("pricing", 3 * D), ("visit", 3 * D)
    ]  # fmt: skip


def test_explain_shows_each_decayed_value() -> None:
    plan = one_score(DECAYING + "- {id: visit, on: page_visit, points: 1}")
    runner = Runner(plan)
    runner.feed(visit("e1", T0))
    runner.advance(T0 + 10 * D)  # last check at 9 d 14 h
    body = explain(runner.states[KEY], plan, "s").to_dict()
    at = T0 + 9 * D + 14 * H
    assert body["evaluated_at"] == at and body["next_decay_check"] == at + D
    decayed = round(100 * 2 ** (-(9 + 14 / 24) / 10), 6)
    assert [(c["rule"], c["points"], c["decay"], c["value"]) for c in body["contributions"]] == [
        ("pricing", 100, "half_life 10d", decayed), ("visit", 1, None, None)
    ]  # fmt: skip
    assert body["value"] == round(decayed + 1) == runner.value()


def test_state_round_trips_with_decay_fields() -> None:
    runner = Runner(one_score(DECAYING))
    runner.feed(visit("e1", T0))
    runner.advance(T0 + 3 * D)
    state = runner.states[KEY]
    assert state.scores["s"].decayed_ms == T0 + 2 * D + 14 * H
    assert loads(dumps(state)) == state


@pytest.mark.parametrize(
    ("rule", "field", "message"),
    [
        ("decay: 30d", "decay", "must be a mapping with exactly one of half_life"),
        ("decay: {half_life: 30d, linear_to_zero: 9d}", "decay", "exactly one of"),
        ("decay: {half_life: soon}", "decay.half_life", "must be a duration"),
        ("decay: {linear_to_zero: 0d}", "decay.linear_to_zero", "must be a duration"),
        ("decay: {steps: []}", "decay.steps", "must be a list of 1 to 32"),
        ("decay: {steps: [[30d, 0.5]]}", "decay.steps[0][1]", "the last step's factor must be 0"),
        ("decay: {steps: [[30d, 2], [60d, 0]]}", "decay.steps[0][1]", "from 0 to 1"),
        ("decay: {steps: [[30d, 0.2], [60d, 0.5], [90d, 0]]}", "decay.steps[1][1]",
         "factors must not increase"),
        ("decay: {steps: [[30d, 0.5], [30d, 0]]}", "decay.steps[1][0]", "ages must increase"),
        ("decay: {steps: [[30d, 0], 7]}", "decay.steps[1]", "must be a pair [age, factor]"),
    ],
)  # fmt: skip
def test_invalid_decay_names_the_field(rule: str, field: str, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        one_score(f"- {{id: r, on: page_visit, points: 5, {rule}}}")
    issues = [(i.rule, i.field) for i in caught.value.issues]
    assert issues == [("r", field)], caught.value.issues
    assert message in caught.value.issues[0].message


def test_decay_is_refused_on_a_state_rule_and_granularity_is_checked() -> None:
    with pytest.raises(PlanError) as caught:
        one_score(
            "- {id: fit, while: {attributes.industry: {eq: saas}}, points: 5, "
            "decay: {half_life: 30d}}",
            head="decay_granularity: 30s",
        )
    assert sorted((i.rule or "", i.field, i.message) for i in caught.value.issues) == [
        ("", "decay_granularity", "must be at least 1m (got 30s)"),
        ("fit", "decay", "is not allowed on a state ('while') rule"),
    ]


# ----- properties ---------------------------------------------------------------------------

PROPERTY_PLAN = make_plan(
    """
    lateness: 3d
    scores:
      - name: s
        entity: contact
        decay_granularity: 6h
        limits: {min: -50, max: 400}
        categories: {interest: {max: 150}, fit: {min: -20}}
        thresholds: [{name: warm, at: 60}, {name: hot, at: 150}]
        tiers: [{name: c, below: 30}, {name: b, below: 100}, {name: a}]
        rules:
          - {id: half, on: page_visit, points: 30, category: interest, decay: {half_life: 2d}}
          - {id: line, on: email.click, points: 17, decay: {linear_to_zero: 5d}}
          - {id: step, on: email.open, points: 9, category: fit,
             decay: {steps: [[1d, 0.75], [3d, 0.3333], [6d, 0]]}}
          - {id: unsub, on: email.unsubscribe, points: -25, category: fit,
             decay: {half_life: 1d}}
          - {id: flat, on: purchase, points: 11}
          - {id: gone, on: email.reply, points: 13, expires_after: 2d, decay: {half_life: 1d}}
    """
)
_TYPES = ["page_visit", "email.click", "email.open", "email.unsubscribe", "purchase", "email.reply"]


def _event(kind: int, i: int, at: int) -> Any:
    name = _TYPES[kind]
    if name == "page_visit":
        return visit(f"e{i}", at)
    if name == "purchase":
        return ev(name, f"e{i}", at, amount=1, order_id=f"o{i}", currency="EUR")
    return ev(name, f"e{i}", at)


@st.composite
def timelines(draw: Any) -> list[Any]:
    n = draw(st.integers(1, 25))
    times = sorted(draw(st.lists(st.integers(0, 10 * D), min_size=n, max_size=n)))
    return [_event(draw(st.integers(0, len(_TYPES) - 1)), i, T0 + t) for i, t in enumerate(times)]


def brute_force(score: Score, items: list[Any], at_ms: int) -> int:
    """The total at ``at_ms`` from the events alone, in exact fractions (docs/plans.md, Decay)."""
    sums: dict[str | None, Fraction] = {}
    for item in items:
        for rule in score.event_rules.get(item.event_type, ()):
            age = at_ms - item.occurred_at_ms
            if age < 0 or (rule.ttl_ms is not None and age >= rule.ttl_ms):
                continue
            assert isinstance(rule.points, int)
            value = Fraction(rule.points)
            if rule.decay is not None:  # each value in millionths, rounded half-even
                value = Fraction(micro_value(rule.points, rule.decay, age), MICRO)
            sums[rule.category] = sums.get(rule.category, Fraction(0)) + value
    whole = Fraction(0)
    for name, value in sums.items():
        category = score.categories.get(name) if name is not None else None
        whole += value if category is None else _clamp(value, category.min, category.max)
    for name, category in score.categories.items():
        if name not in sums:
            whole += _clamp(Fraction(0), category.min, category.max)
    return int(_clamp(Fraction(round(whole)), score.min, score.max))  # round: half to even


def _clamp(value: Fraction, low: int | None, high: int | None) -> Fraction:
    if low is not None and value < low:
        return Fraction(low)
    if high is not None and value > high:
        return Fraction(high)
    return value


@settings(max_examples=80, deadline=None)
@given(timelines(), st.lists(st.integers(0, 30 * D), min_size=1, max_size=5))
def test_decayed_total_equals_brute_force_at_random_instants(
    items: list[Any], offsets: list[int]
) -> None:
    score = PROPERTY_PLAN.by_name["s"]
    runner = Runner(PROPERTY_PLAN)
    runner.feed(*items)
    last = items[-1].occurred_at_ms
    for offset in sorted(offsets):
        runner.advance(last + offset)
        ledger: Ledger = runner.states[KEY].scores["s"]
        assert ledger.total == brute_force(score, items, ledger.decayed_ms)
        now = last + offset  # (expiries are applied up to here)
        assert decayed_total(score, ledger, now) == brute_force(score, items, now)
        kept = {(c[C_RULE], c[C_OCCURRED], c[C_POINTS], c[C_CATEGORY]) for c in ledger.contribs}
        assert all(
            micro_value(p, score.decays[r], ledger.decayed_ms - o) != 0
            for r, o, p, _ in kept if r in score.decays
        )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(timelines(), st.randoms(use_true_random=False))
def test_any_arrival_order_within_lateness_gives_the_event_time_finals(
    items: list[Any], rnd: Any
) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    end = max(i.occurred_at_ms for i in items)
    first = items[0].occurred_at_ms
    if end - first > PROPERTY_PLAN.lateness_ms:  # keep every item within lateness
        shuffled = [i for i in shuffled if end - i.occurred_at_ms <= PROPERTY_PLAN.lateness_ms]
        items = [i for i in items if end - i.occurred_at_ms <= PROPERTY_PLAN.lateness_ms]
    in_order, arrived = Runner(PROPERTY_PLAN), Runner(PROPERTY_PLAN)
    in_order.feed(*items)
    arrived.feed(*shuffled)
    for runner in (in_order, arrived):
        runner.advance(end + 4 * D)
    a, b = in_order.states[KEY].scores["s"], arrived.states[KEY].scores["s"]
    assert (a.total, a.decayed_ms) == (b.total, b.decayed_ms)
    assert sorted(a.contribs) == sorted(b.contribs)


THRESHOLDS_PLAN = make_plan(
    """
    lateness: 30d
    scores:
      - name: s
        entity: contact
        decay_granularity: 1d
        thresholds: [{name: warm, at: 30}, {name: mql, at: 60}]
        tiers: [{name: cold, below: 20}, {name: warm, below: 70}, {name: hot}]
        rules:
          - {id: pricing, on: page_visit, points: 100, decay: {half_life: 10d}}
          - {id: reply, on: email.reply, points: 25, decay: {linear_to_zero: 20d}}
    """
)


def test_a_long_gap_is_one_decay_evaluation_with_its_crossings() -> None:
    runner = Runner(THRESHOLDS_PLAN)
    runner.feed(visit("e1", T0))
    changes = runner.advance(T0 + 40 * D)
    # the last check by day 40 is the midnight (UTC) of day 39 14:00 after the visit; the one
    # change reports both thresholds crossed down, and the tier record follows it
    at = 39 * D + 14 * H
    value = round(100 * 2 ** (-at / (10 * D)))
    assert [(c.seq, c.old_value, c.new_value, str(c.cause), c.thresholds, c.tier_after,
             c.occurred_at_ms - T0) for c in changes] == [
        (3, 100, value, "decay", (("mql", "down"), ("warm", "down")), "cold", at),
        (4, value, value, "tier", (), "cold", at),
    ]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 20 * D)), min_size=1, max_size=6),
    st.lists(st.integers(0, 60 * D), max_size=3),
)
def test_a_catch_up_ends_where_a_walk_through_every_check_ends(
    visits: list[tuple[bool, int]], evaluations: list[int]
) -> None:
    items = [(visit if pricing else reply_ev)(f"e{i}", T0 + at)
             for i, (pricing, at) in enumerate(sorted(visits, key=lambda v: v[1]))]  # fmt: skip
    end = T0 + 70 * D
    jumped, walked = Runner(THRESHOLDS_PLAN), Runner(THRESHOLDS_PLAN)
    for one in items:
        jumped.feed(one)
        walked.feed(one)
    for at in sorted(evaluations):
        jumped.advance(max(jumped.clock, T0 + at))
    jumped.advance(end)
    walked.walk(end)
    a, b = jumped.states[KEY].scores["s"], walked.states[KEY].scores["s"]
    assert (a.total, a.decay_due_ms) == (b.total, b.decay_due_ms)
    if b.decay_due_ms is not None:  # (once nothing decays, the walk stops where it was spent)
        assert a.decayed_ms == b.decayed_ms
    assert sorted(a.contribs) == sorted(b.contribs)
    # and each evaluation (a feed or an advance) published at most one decay change
    values = [c for c in jumped.changes if str(c.cause) == "decay"]
    assert len(values) <= len(items) + len(evaluations) + 1


def reply_ev(event_id: str, at_ms: int) -> Any:
    return ev("email.reply", event_id, at_ms)
