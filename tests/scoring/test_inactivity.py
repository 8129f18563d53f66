"""Inactivity (docs/plans.md): deductions after silences, re-armed by events, undone when late."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scoring_helpers import T0, D, H, Runner, adj, ev, make_plan, one_score, summary, visit

from streams.scoring import EntityKey, PlanError, dumps, explain, loads
from streams.scoring.inactivity import count, instants
from streams.scoring.plan.spec import Inactivity
from streams.scoring.state import C_OCCURRED, C_POINTS, C_RULE, C_SOURCE

KEY = EntityKey(None, "contact", "c1")
DEAL = EntityKey(None, "deal", "d1")
EVERY = "inactivity: {after: 30d, points: -10}"
REPLY = "- {id: reply, on: email.reply, points: 20}"


def reply(event_id: str, at_ms: int) -> Any:
    return ev("email.reply", event_id, at_ms)


def deductions(runner: Runner, key: EntityKey = KEY) -> list[float]:
    """Days after T0 of the live deductions (compaction may fold old ones)."""
    ledger = runner.states[key].scores["s"]
    return sorted((c[C_OCCURRED] - T0) / D for c in ledger.contribs if c[C_RULE] == "inactivity")


@pytest.mark.parametrize(
    ("once", "start", "end", "expected"),
    [
        (False, 0, 30 * D, []),  # the next event at exactly 30 days: no silence of 30 days
        (False, 0, 30 * D + 1, [30 * D]),
        (False, 0, 95 * D, [30 * D, 60 * D, 90 * D]),  # every further period
        (True, 0, 95 * D, [30 * D]),  # once per silence
        (False, 5, 5 + 61 * D, [5 + 30 * D, 5 + 60 * D]),
    ],
)
def test_instants(once: bool, start: int, end: int, expected: list[int]) -> None:
    assert instants(Inactivity(30 * D, -10, once), start, end) == expected


def test_deductions_after_each_period_of_silence_and_rearm() -> None:
    runner = Runner(one_score(REPLY, head=EVERY, plan_head="lateness: 90d"))
    runner.feed(reply("e1", T0))
    assert summary(runner.walk(T0 + 65 * D)) == [
        (2, 20, 10, "inactivity", ("inactivity",), 30 * D),
        (3, 10, 0, "inactivity", ("inactivity",), 60 * D),
    ]
    # an event re-arms: the next deduction is 30 days after it, not 90 days after T0
    runner.feed(visit("e2", T0 + 70 * D))  # no rule of the score: activity all the same
    assert runner.states[KEY].scores["s"].inactive_due_ms == T0 + 100 * D
    assert summary(runner.advance(T0 + 99 * D)) == []
    assert [c.occurred_at_ms - T0 for c in runner.advance(T0 + 100 * D)] == [100 * D]
    assert runner.value() == -10


def test_once_deducts_once_per_silence() -> None:
    runner = Runner(one_score(REPLY, head="inactivity: {after: 30d, points: -10, repeat: once}"))
    runner.feed(reply("e1", T0))
    runner.advance(T0 + 200 * D)
    assert runner.value() == 10 and runner.states[KEY].scores["s"].inactive_due_ms is None
    runner.feed(reply("e2", T0 + 201 * D))
    runner.advance(T0 + 300 * D)
    assert runner.value() == 20  # 20 + 20 - 10 - 10


def test_a_late_event_inside_a_silence_undoes_its_deductions() -> None:
    runner = Runner(one_score(REPLY, head=EVERY, plan_head="lateness: 90d"))
    runner.feed(reply("e1", T0))
    runner.walk(T0 + 95 * D)  # deductions at 30, 60, 90
    # a visit from day 50 arrives late: the silence broke then; 60 and 90 are undone, and the
    # silence since day 50 deducts at 80 (due by now) and next at 110
    late = runner.feed(visit("e2", T0 + 50 * D), now_ms=T0 + 95 * D)
    assert summary(late) == [
        (5, -10, 10, "inactivity", ("inactivity",), 50 * D),
        (6, 10, 0, "inactivity", ("inactivity",), 80 * D),
    ]
    assert deductions(runner) == [30.0, 80.0]
    assert runner.states[KEY].scores["s"].inactive_due_ms == T0 + 110 * D
    # a late event between two others: the silence it ends is redone up to the next event
    runner.feed(visit("e3", T0 + 100 * D), now_ms=T0 + 100 * D)
    runner.feed(visit("e4", T0 + 10 * D), now_ms=T0 + 100 * D)
    assert deductions(runner) == [40.0, 80.0]  # 30 undone; 10 + 30 = 40 < 50
    assert runner.value() == 0


def test_inactivity_with_scoring_rules_and_epochs() -> None:
    runner = Runner(one_score(REPLY, head=EVERY, plan_head="lateness: 90d"))
    runner.feed(reply("e1", T0))
    runner.walk(T0 + 61 * D)  # -10 at 30 and 60: 0
    # a late reply at day 45 scores 20 and undoes the deduction at 60, in one change
    late = runner.feed(reply("e2", T0 + 45 * D), now_ms=T0 + 61 * D)
    assert summary(late) == [(4, 0, 30, "rule", ("reply", "inactivity"), 45 * D)]
    runner.feed(adj("r1", T0 + 62 * D, "reset"))  # a new epoch drops the deduction at 30
    assert runner.value() == 0
    runner.advance(T0 + 80 * D)  # the silence since day 45 deducts at 75, after the epoch
    assert runner.value() == -10


def test_deal_inactivity_and_explain() -> None:
    plan = one_score(
        "- {id: stage, on: deal.stage_changed, points: 5}",
        head="inactivity: {after: 30d, points: -15, category: stalled}\n"
        "categories: {stalled: {min: -30}}",
        entity="deal",
    )
    runner = Runner(plan)
    runner.feed(ev("deal.stage_changed", "e1", T0, contact=None, deal="d1", pipeline="p",
                   to_stage="proposal", status="open"))  # fmt: skip
    runner.advance(T0 + 125 * D)  # four deductions of 15, the category floors at -30
    assert runner.value("s", "deal", "d1") == 5 - 30
    body = explain(runner.states[DEAL], plan, "s").to_dict()
    assert body["next_inactivity"] == T0 + 150 * D
    assert [(c["rule"], c["kind"]) for c in body["contributions"]][:2] == [
        ("stage", "event"), ("inactivity", "inactivity")
    ]  # fmt: skip
    assert body["categories"] == [{"name": "stalled", "sum": -60, "min": -30, "max": None,
                                   "value": -30}]  # fmt: skip


def test_state_round_trips_and_activity_is_pruned() -> None:
    runner = Runner(one_score(REPLY, head=EVERY, plan_head="lateness: 2d"))
    runner.feed(*(visit(f"e{i}", T0 + i * D) for i in range(20)))
    ledger = runner.states[KEY].scores["s"]
    # compaction keeps the times from the horizon on, and the newest one before it
    assert ledger.active[0] >= T0 + 19 * D - 2 * D - 3 * D and len(ledger.active) <= 6
    state = runner.states[KEY]
    assert loads(dumps(state)) == state


@pytest.mark.parametrize(
    ("head", "field", "message"),
    [
        ("inactivity: 30d", "inactivity", "must be a mapping"),
        ("inactivity: {points: -5}", "inactivity.after", "is required"),
        ("inactivity: {after: soon, points: -5}", "inactivity.after", "must be a duration"),
        ("inactivity: {after: 30d, points: many}", "inactivity.points", "must be an integer"),
        ("inactivity: {after: 30d, points: -5, repeat: twice}", "inactivity.repeat",
         "must be one of every, once"),
        ("inactivity: {after: 30d, points: -5, category: x}", "inactivity.category",
         "category 'x' is not declared"),
        ("inactivity: {after: 30d, points: -5, every: 1d}", "inactivity.every", "unknown field"),
        # a period under an hour could publish a change per silent entity every few minutes
        ("inactivity: {after: 59m, points: -5}", "inactivity.after",
         "must be at least 1h (got 59m)"),
        ("inactivity: {after: 1ms, points: -5}", "inactivity.after",
         "must be at least 1h (got 1ms)"),
    ],
)  # fmt: skip
def test_invalid_inactivity_names_the_field(head: str, field: str, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        one_score(REPLY, head=head)
    assert [(i.score, i.field) for i in caught.value.issues] == [("s", field)]
    assert message in caught.value.issues[0].message


def test_the_rule_id_inactivity_is_reserved() -> None:
    with pytest.raises(PlanError) as caught:
        one_score("- {id: inactivity, on: email.reply, points: 1}")
    assert [(i.rule, i.field) for i in caught.value.issues] == [("inactivity", "id")]


# ----- property -----------------------------------------------------------------------------

PLAN = make_plan(
    """
    lateness: 40d
    scores:
      - name: s
        entity: contact
        inactivity: {after: 7d, points: -3}
        rules:
          - {id: reply, on: email.reply, points: 5}
      - name: t
        entity: contact
        inactivity: {after: 10d, points: -4, repeat: once}
    """
)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 40 * D), min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_any_arrival_order_within_lateness_gives_the_event_time_deductions(
    times: list[int], rnd: Any
) -> None:
    items = [reply(f"e{i}", T0 + t) if i % 2 else visit(f"e{i}", T0 + t) for i, t in
             enumerate(sorted(times))]  # fmt: skip
    shuffled = list(items)
    rnd.shuffle(shuffled)
    end = T0 + 40 * D + 3 * H
    results = []
    for order in (items, shuffled):
        runner = Runner(PLAN)
        for one in order:  # the clock runs ahead of late events: deductions are made, undone
            runner.feed(one, now_ms=max(runner.clock, one.occurred_at_ms) + 9 * D)
        runner.advance(end + 9 * D)
        state = runner.states[KEY]
        results.append({name: (s.total, sorted(s.contribs), s.inactive_due_ms, s.active)
                        for name, s in state.scores.items()})  # fmt: skip
    assert results[0] == results[1]


# ----- closed form --------------------------------------------------------------------------

YEAR = 365 * D


@pytest.mark.parametrize(
    ("once", "start", "end", "expected"),
    [
        (False, 0, 30 * D, 0),  # the next event at exactly one period: no deduction
        (False, 0, 30 * D + 1, 1),
        (False, 0, 90 * D, 2),  # 30 and 60; 90 is the event's own instant
        (False, 0, 90 * D + 1, 3),
        (True, 0, 10 * YEAR, 1),  # once per silence, whatever its length
        (False, 7, 7 + 10 * YEAR + 1, 10 * 365 // 30),
    ],
)
def test_count_is_the_length_of_instants(once: bool, start: int, end: int, expected: int) -> None:
    idle = Inactivity(30 * D, -10, once)
    assert count(idle, start, end) == expected
    if expected < 200:
        assert len(instants(idle, start, end)) == expected


def test_a_silence_of_years_is_one_evaluation_and_one_change() -> None:
    plan = one_score(REPLY, head="inactivity: {after: 1h, points: -1}")
    runner = Runner(plan)
    runner.feed(reply("e1", T0))
    changes = runner.advance(T0 + 10 * YEAR + 30 * 60_000)
    periods = 10 * YEAR // H  # deductions at T0 + k hours, k = 1 .. 87,600
    assert summary(changes) == [(2, 20, 20 - periods, "inactivity", ("inactivity",), 10 * YEAR)]
    ledger = runner.states[KEY].scores["s"]
    assert [(c[C_RULE], c[C_POINTS], c[C_OCCURRED] - T0, c[C_SOURCE])
            for c in ledger.contribs if c[C_RULE] == "inactivity"] == [
        ("inactivity", -periods, 10 * YEAR, f"{periods}*{H}")
    ]  # fmt: skip
    assert ledger.inactive_due_ms == T0 + 10 * YEAR + H
    # the next evaluation extends the same contribution: one per silence
    runner.advance(T0 + 10 * YEAR + 3 * H)
    deducted = [c for c in ledger.contribs if c[C_RULE] == "inactivity"]
    assert [(c[C_POINTS], c[C_SOURCE]) for c in deducted] == [(-periods - 3, f"{periods + 3}*{H}")]
    body = explain(runner.states[KEY], plan, "s").to_dict()
    row = next(c for c in body["contributions"] if c["kind"] == "inactivity")
    assert (row["periods"], row["first_at"], row["source_event_id"]) == (periods + 3, T0 + H, None)
    assert loads(dumps(runner.states[KEY])) == runner.states[KEY]


def test_a_late_event_cuts_a_long_silence_and_an_epoch_splits_it() -> None:
    runner = Runner(one_score(REPLY, head="inactivity: {after: 1d, points: -1}",
                              plan_head="lateness: 90d"))  # fmt: skip
    runner.feed(reply("e1", T0))
    runner.advance(T0 + 10 * D)  # 10 deductions (days 1 .. 10), one contribution
    assert runner.value() == 10
    # a visit from day 4 12:00: the deductions of days 5 .. 10 go; the silence since the
    # visit deducts on days 5.5 .. 9.5 at once
    runner.feed(visit("e2", T0 + 4 * D + 12 * H), now_ms=T0 + 10 * D)
    assert runner.value() == 20 - 4 - 5
    # a reset at day 7 06:00: only the deductions after it count (days 7.5, 8.5, 9.5)
    runner.feed(adj("r1", T0 + 7 * D + 6 * H, "reset"), now_ms=T0 + 10 * D)
    assert runner.value() == -3
    # the same items evaluated at every due time end the same
    walked = Runner(runner.plan)
    walked.feed(reply("e1", T0))
    walked.walk(T0 + 10 * D)
    walked.feed(visit("e2", T0 + 4 * D + 12 * H), now_ms=T0 + 10 * D)
    walked.feed(adj("r1", T0 + 7 * D + 6 * H, "reset"), now_ms=T0 + 10 * D)
    assert walked.value() == -3


def reference(times: list[int], end: int, idle: Inactivity) -> int:
    """Deductions by ``end`` in event-time order, walked one period at a time."""
    points = 0
    active = sorted(set(times))
    for start, stop in zip(active, [*active[1:], end + 1], strict=True):
        at = start + idle.after_ms
        while at < stop:
            points += idle.points
            if idle.once:
                break
            at += idle.after_ms
    return points


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 40 * D), min_size=1, max_size=10),
    st.lists(st.integers(0, 9 * D), min_size=10, max_size=10),
    st.lists(st.integers(0, 50 * D), max_size=4),
    st.randoms(use_true_random=False),
)
def test_closed_form_equals_the_step_by_step_reference(
    times: list[int], lags: list[int], evaluations: list[int], rnd: Any
) -> None:
    items = [reply(f"e{i}", T0 + t) if i % 2 else visit(f"e{i}", T0 + t) for i, t in
             enumerate(sorted(times))]  # fmt: skip
    rnd.shuffle(items)
    end = T0 + 50 * D
    runner = Runner(PLAN)
    for one, lag in zip(items, lags, strict=False):  # arrivals later than their event times
        runner.feed(one, now_ms=max(runner.clock, one.occurred_at_ms) + lag)
    for at in sorted(evaluations):  # evaluations at any instants, then at the end
        runner.advance(max(runner.clock, T0 + at))
    runner.advance(end)
    replies = sum(1 for one in items if one.event_type == "email.reply")
    stamps = [one.occurred_at_ms for one in items]
    s_idle, t_idle = PLAN.by_name["s"].inactivity, PLAN.by_name["t"].inactivity
    assert s_idle is not None and t_idle is not None
    assert runner.value("s") == 5 * replies + reference(stamps, end, s_idle)
    assert runner.value("t") == reference(stamps, end, t_idle)
