"""Arrival order does not change final scores (docs/plans.md, Arrival order).

A plan shaped like the service test plan, minus everything that depends on the clock (expiry),
plus quiet hours with ``defer``: however the events and adjustments of an entity arrive (all
within lateness), its final totals and category sums are those of event-time order.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scoring_helpers import T0, D, H, M, Runner, adj, ev, make_plan, one_score, summary

from streams.scoring import Adjustment, EntityKey, Event, Verdict

PLAN = make_plan(
    """
    lateness: 2d
    scores:
      - name: engagement
        entity: contact
        limits: {min: 0, max: 500}
        categories: {interest: {max: 200}, conversion: {max: 300}}
        rules:
          - {id: pricing, on: page_visit, where: {url: {glob: "*/pricing*"}}, points: 30,
             category: interest}
          - {id: features, on: page_visit, where: {url: {contains: features}}, points: 10,
             category: interest}
          - {id: any-page, on: page_visit, points: 1, category: interest}
          - {id: engaged, on: [email.open, email.click, email.reply], points: 10, repeat: once}
          - {id: click, on: email.click, points: 5}
          - {id: unsubscribed, on: email.unsubscribe, points: -40}
          - {id: purchase-value, on: purchase, category: conversion,
             points: {field: amount, multiply: 0.1, min: 1, max: 100}}
      - name: fit
        entity: contact
        limits: {min: 0, max: 100}
        rules:
          - {id: industry, while: {attributes.industry: {in: [saas, fintech]}}, points: 25}
          - {id: size, while: {attributes.employees: {gte: 100}}, points: 20}
          - {id: student, while: {attributes.title: {eq: student}}, points: -30}
          - {id: saas-size, while: {all: [{attributes.industry: {eq: saas}},
                                          {attributes.employees: {gte: 100}}]},
             points: {field: attributes.employees, multiply: 0.01}}
      - name: nights
        entity: contact
        timezone: UTC
        quiet_hours:
          policy: defer
          windows: [{from: "20:00", to: "08:00"}]
        rules:
          - {id: first-open, on: [email.open, email.click], points: 7, repeat: once}
          - {id: visit, on: page_visit, points: 3}
      - name: deal-health
        entity: deal
        rules:
          - {id: late-stage, while: {stage: {in: [proposal, negotiation]}}, points: 40}
          - {id: won, on: deal.stage_changed, where: {status: {eq: won}}, points: 100,
             repeat: once}
          - {id: lost, on: deal.stage_changed, where: {status: {eq: lost}}, points: -50}
          - {id: deal-visit, on: page_visit, points: 2}
    """
)
LATENESS = 2 * D
_URLS = ("/pricing", "/features", "/", "/pricing/features")
_INDUSTRIES = ("saas", "fintech", "retail", None)
_EMPLOYEES = (50, 150, 900, None)
_TITLES = ("student", "cto", None)
_STAGES = ("qualified", "proposal", "negotiation", "closed")
_SCORES = ("engagement", "fit", "nights", "deal-health")
_OPS = ("set", "reset", "reset", "add", "subtract")
#: Item kinds by code; e-mails, profile updates and adjustments weigh double (once rules,
#: state rules and epochs are where arrival order could matter).
_KINDS = (0, 1, 1, 2, 3, 4, 4, 5, 6, 6)


def item(name: str, at: int, code: int) -> Event | Adjustment:
    """The item an integer stands for (cheap to draw; 0 is the simplest: a page visit)."""
    kind, n = _KINDS[code % len(_KINDS)], code // len(_KINDS)

    def pick(options: tuple[Any, ...]) -> Any:
        nonlocal n
        n, index = divmod(n, len(options))
        return options[index]

    if kind == 0:
        deal = pick((None, "d1"))
        return ev("page_visit", name, at, deal=deal, url=f"https://x.test{pick(_URLS)}")
    if kind == 1:
        return ev(f"email.{pick(('open', 'click', 'reply'))}", name, at)
    if kind == 2:
        return ev("email.unsubscribe", name, at)
    if kind == 3:
        amount = str(1 + n % 2000)
        return ev("purchase", name, at, order_id="o", amount=amount, currency="EUR")
    if kind == 4:
        values = {"industry": _INDUSTRIES, "employees": _EMPLOYEES, "title": _TITLES}
        attributes = {key: pick(options) for key, options in values.items() if pick((0, 1))}
        return ev("contact.updated", name, at, attributes=attributes)
    if kind == 5:
        stage, status = pick(_STAGES), pick(("open", "won", "lost"))
        return ev("deal.stage_changed", name, at, contact=None, deal="d1", pipeline="p",
                  to_stage=stage, status=status)  # fmt: skip
    score, op = pick(_SCORES), pick(_OPS)
    entity, entity_id = ("deal", "d1") if score == "deal-health" else ("contact", "c1")
    points = None if op == "reset" else (0 if op == "set" else 1) + n % 60
    return adj(name, at, op, points, score=score, entity=entity, entity_id=entity_id)


_CODES = st.integers(0, 10**7)


def _timed(draw: Any, first: int, last: int, size: int) -> list[tuple[int, int]]:
    """``size`` (minute, item code) pairs at distinct minutes in ``[first, last]``."""
    minutes = draw(st.lists(st.integers(first, last), min_size=size, max_size=size, unique=True))
    return [(minute, draw(_CODES)) for minute in minutes]


@st.composite
def history(draw: Any) -> tuple[list[Any], list[Any]]:
    """(old items in event-time order, recent items in some arrival order).

    Old items span a few lateness periods (so compaction folds, prunes and anchors); recent
    items all lie within lateness of the newest, so any arrival order accepts them all. Event
    times are distinct: at equal times the later arrival wins, which is order by definition.
    """
    end = T0 + 8 * D
    recent_from = end - LATENESS + H
    old = _timed(draw, T0 // M, recent_from // M - 1, draw(st.integers(0, 12)))
    recent = _timed(draw, recent_from // M, end // M, draw(st.integers(2, 24)))
    olds = [item(f"o{i}", t * M, code) for i, (t, code) in enumerate(sorted(old))]
    recents = [item(f"r{i}", t * M, code) for i, (t, code) in enumerate(recent)]
    return olds, draw(st.permutations(recents))


def finals(items: list[Any]) -> dict[tuple[str, str], tuple[int, dict[str | None, int]]]:
    runner = Runner(PLAN)
    runner.feed(*items)
    runner.advance(T0 + 30 * D)  # every deferred award released (nothing here expires)
    scores = {
        (key.entity_id, name): (ledger.total, {c: v for c, v in ledger.sums.items() if v})
        for key, state in runner.states.items()
        for name, ledger in state.scores.items()
    }
    return {key: value for key, value in scores.items() if value != (0, {})}


def by_time(items: list[Any]) -> list[Any]:
    return sorted(items, key=lambda one: one.occurred_at_ms)


@settings(max_examples=80, deadline=None)
@given(history())
def test_final_scores_do_not_depend_on_arrival_order(streams: tuple[list[Any], list[Any]]) -> None:
    old, recent = streams
    assert finals(old + recent) == finals(old + by_time(recent))


# --- regression cases: each in the arrival order given, and in event-time order -------------

ONCE = one_score(
    """
    - {id: engaged, on: [email.open, email.click], points: 10, repeat: once}
    - {id: first-buy, on: purchase, points: {field: amount, multiply: 0.1}, repeat: once}
    """
)
STATE = one_score(
    """
    - {id: industry, while: {attributes.industry: {in: [saas, fintech]}}, points: 25}
    - {id: saas-size, while: {all: [{attributes.industry: {eq: saas}},
                                    {attributes.employees: {gte: 100}}]}, points: 5}
    - {id: size, while: {attributes.employees: {gte: 100}},
       points: {field: attributes.employees, multiply: 0.1}}
    """
)


def click(event_id: str, at_ms: int) -> Event:
    return ev("email.click", event_id, at_ms)


def buy(event_id: str, at_ms: int, amount: int) -> Event:
    return ev("purchase", event_id, at_ms, order_id="o", amount=str(amount), currency="EUR")


def profile(event_id: str, at_ms: int, **attributes: object) -> Event:
    return ev("contact.updated", event_id, at_ms, attributes=attributes)


@pytest.mark.parametrize(
    ("plan", "items", "expected"),
    [
        # c-38: a click awards, a later click is refused (static), then a set between them
        # arrives: its epoch drops the first award, so the later click awards after all
        (ONCE, [click("e1", T0), click("e2", T0 + 10), adj("s", T0 + 5, "set", 29)], 39),
        # the same with reset
        (ONCE, [click("e1", T0), click("e2", T0 + 10), adj("r", T0 + 5, "reset")], 10),
        # the refused click occurred before the reset too: nothing after the epoch awards
        (ONCE, [click("e1", T0), click("e2", T0 + 3), adj("r", T0 + 5, "reset")], 0),
        # an earlier click arriving late takes the award over; the reset then drops it and the
        # later click (now standing by) awards
        (ONCE, [click("e2", T0 + 10), click("e1", T0), adj("r", T0 + 5, "reset")], 10),
        # the award is after the epoch: it keeps counting (and the stand-by waits)
        (ONCE, [click("e2", T0 + 6), click("e3", T0 + 10), adj("r", T0 + 5, "reset")], 10),
        # ... until a later reset drops it: then the stand-by awards
        (
            ONCE,
            [
                click("e2", T0 + 6),
                click("e3", T0 + 10),
                adj("r1", T0 + 5, "reset"),
                adj("r2", T0 + 8, "reset"),
            ],
            10,
        ),
        # value-weighted once: the earliest purchase's points count, whatever arrives first
        (ONCE, [buy("b2", T0 + 10, 500), buy("b1", T0, 100)], 10),
        (ONCE, [buy("b1", T0, 100), buy("b2", T0 + 10, 500)], 10),
        # a late update between two matching ones: the rule stopped matching after the reset,
        # so it matched again afterwards and holds its points
        (
            STATE,
            [
                profile("p1", T0, industry="saas"),
                profile("p3", T0 + 30, industry="saas"),
                adj("r", T0 + 10, "reset"),
                profile("p2", T0 + 20, industry="retail"),
            ],
            25,
        ),
        # a match that begins, in event time, after the reset counts, though the late update
        # that completes it is older than the reset (industry: since T0, suppressed;
        # saas-size and size: since T0 + 30)
        (
            STATE,
            [
                profile("p2", T0 + 30, employees=150),
                profile("p1", T0, industry="saas"),
                adj("r", T0 + 10, "reset"),
            ],
            5 + 15,
        ),
        # an update older than the reset, arriving after it: its match began before the epoch
        (STATE, [adj("r", T0 + 10, "reset"), profile("p1", T0, industry="saas")], 0),
        # a value change after the reset does not re-time a match that began before it
        (
            STATE,
            [
                profile("p1", T0, employees=150),
                profile("p2", T0 + 20, employees=900),
                adj("r", T0 + 10, "reset"),
            ],
            0,
        ),
        # a late update that makes the rule begin matching earlier, before the reset
        (
            STATE,
            [
                adj("r", T0 + 10, "reset"),
                profile("p2", T0 + 20, industry="saas"),
                profile("p1", T0, industry="fintech"),
            ],
            0,
        ),
    ],
)
def test_late_items_score_as_in_event_time_order(
    plan: Any, items: list[Any], expected: int
) -> None:
    arrived, in_time = Runner(plan), Runner(plan)
    arrived.feed(*items)
    in_time.feed(*by_time(items))
    assert (arrived.value(), in_time.value()) == (expected, expected)


def test_reopened_rule_is_reported_with_the_adjustment() -> None:
    runner = Runner(ONCE)
    runner.feed(click("e1", T0), click("e2", T0 + 10))
    assert runner.last.results[0].verdict is Verdict.STATIC
    runner.feed(adj("s", T0 + 5, "set", 29))
    assert summary(runner.changes[-1:]) == [
        (2, 10, 39, "adjustment", ("adjustment:set", "engaged"), 5)
    ]
    assert runner.last.results[0].awards == (("adjustment:set", 29), ("engaged", 10))
    assert runner.states[KEY].scores["s"].statics == {"engaged": T0 + 10}
    assert runner.states[KEY].scores["s"].standby == {}


def test_take_over_reports_the_award_taken_back() -> None:
    runner = Runner(ONCE)
    runner.feed(buy("b2", T0 + 10, 500), buy("b1", T0, 100))
    assert summary(runner.changes) == [
        (1, 0, 50, "rule", ("first-buy",), 10),
        (2, 50, 10, "rule", ("first-buy",), 0),
    ]
    assert runner.last.results[0].awards == (("first-buy", 10), ("first-buy", -50))
    ledger = runner.states[KEY].scores["s"]
    assert ledger.standby == {"first-buy": ("first-buy", 50, None, T0 + 10, None, "b2")}


def test_reopened_award_in_quiet_hours_is_deferred() -> None:
    # quiet 22:00-07:00 Warsaw; T0 is Monday 12:00 Warsaw
    plan = one_score(
        "- {id: engaged, on: email.click, points: 10, repeat: once}",
        head="""
        timezone: Europe/Warsaw
        quiet_hours: {policy: defer, windows: [{from: "22:00", to: "07:00"}]}
        """,
    )
    night = T0 + 11 * H  # 23:00 Warsaw
    runner = Runner(plan)
    runner.feed(click("e1", T0), click("e2", night), adj("r", T0 + H, "reset"), now_ms=night)
    assert runner.value() == 0  # the stand-by click is held until the quiet period ends
    assert summary(runner.advance(T0 + 20 * H)) == [(3, 0, 10, "deferred", ("engaged",), 19 * H)]


def test_reopen_respects_expiry_and_cap() -> None:
    plan = one_score(
        """
        - {id: expiring, on: email.open, points: 10, repeat: once, expires_after: 1h}
        - {id: capped, on: email.click, points: 10, repeat: once, cap: {max: 1, per: 1d}}
        """
    )
    runner = Runner(plan)
    runner.feed(ev("email.open", "o1", T0), ev("email.open", "o2", T0 + 10))
    runner.feed(click("c1", T0), click("c2", T0 + 10))
    # an hour later, the stand-by open has expired; the stand-by click would break the cap
    runner.feed(adj("r", T0 + 5, "reset"), now_ms=T0 + 2 * H)
    assert runner.value() == 0
    assert runner.states[KEY].scores["s"].statics == {}


def test_compaction_keeps_when_a_match_began() -> None:
    # lateness 1d: compaction every 3h drops history older than a day; the match of
    # "industry" began at T0, before the reset at T0 + 1h, so it stays suppressed when a late
    # update makes the rule be re-evaluated from the (pruned) history
    plan = one_score(STATE_RULE_TEXT, plan_head="lateness: 1d")
    runner = Runner(plan)
    runner.feed(profile("p0", T0, industry="saas"), adj("r", T0 + H, "reset"))
    runner.feed(*(profile(f"p{i}", T0 + i * H, region=f"r{i}") for i in range(2, 40)))
    state = runner.states[KEY]
    assert state.floor_ms > T0 + H  # the history from before the reset is gone
    assert state.scores["s"].anchors == {"industry": T0}
    runner.feed(profile("late", T0 + 37 * H + 1, region="x"))  # out of order: re-evaluated
    assert state.scores["s"].holds == {"industry": None}
    assert runner.value() == 0


STATE_RULE_TEXT = "- {id: industry, while: {attributes.industry: {eq: saas}}, points: 25}"
KEY = EntityKey(None, "contact", "c1")
