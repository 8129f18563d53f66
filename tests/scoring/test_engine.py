"""The engine, step by step (docs/plans.md, Evaluation order): table-driven cases, exact values."""

from __future__ import annotations

import uuid

import pytest
from scoring_helpers import T0, D, H, M, Runner, adj, ev, one_score, summary, visit

from streams.scoring import EntityKey, Verdict, apply, dumps, route
from streams.scoring.outcomes import CHANGE_NAMESPACE

PRICING = """
- id: pricing
  on: page_visit
  where: {url: {glob: "*/pricing*"}}
  points: 30
"""


@pytest.mark.parametrize(
    ("rules", "items", "expected"),
    [
        # a matching event awards its points
        (PRICING, [visit("e1", T0)], 30),
        # a non-matching url awards nothing
        (PRICING, [visit("e1", T0, url="https://example.com/blog")], 0),
        # every (default repeat) awards each time
        (PRICING, [visit("e1", T0), visit("e2", T0 + H)], 60),
        # a duplicate event id is ignored
        (PRICING, [visit("e1", T0), visit("e1", T0)], 30),
        # repeat: once awards only the first time
        (PRICING + "  repeat: once\n", [visit("e1", T0), visit("e2", T0 + H)], 30),
        # negative points subtract
        (
            "- {id: unsub, on: email.unsubscribe, points: -40}",
            [ev("email.unsubscribe", "e1", T0)],
            -40,
        ),
        # any-of event types: one rule, several activities
        (
            "- {id: any, on: [email.open, page_visit], points: 10}",
            [ev("email.open", "e1", T0), visit("e2", T0 + 1)],
            20,
        ),
        # two rules matching one event both award
        (PRICING + "- {id: any-visit, on: page_visit, points: 5}", [visit("e1", T0)], 35),
        # value-weighted: 125.50 * 0.1 = 12.55 -> 13 (half even rounds .55 up)
        (
            "- {id: buy, on: purchase, points: {field: amount, multiply: 0.1}}",
            [ev("purchase", "e1", T0, order_id="o", amount="125.50", currency="EUR")],
            13,
        ),
        # value-weighted: 12.5 -> 12 (half to even)
        (
            "- {id: buy, on: purchase, points: {field: amount, multiply: 0.1}}",
            [ev("purchase", "e1", T0, order_id="o", amount="125", currency="EUR")],
            12,
        ),
        # value-weighted clamps to max
        (
            "- {id: buy, on: purchase, points: {field: amount, max: 100}}",
            [ev("purchase", "e1", T0, order_id="o", amount="5000", currency="EUR")],
            100,
        ),
        # value-weighted clamps to min
        (
            "- {id: buy, on: purchase, points: {field: amount, multiply: 0.001, min: 1}}",
            [ev("purchase", "e1", T0, order_id="o", amount="3", currency="EUR")],
            1,
        ),
        # value-weighted deal value, with add
        (
            "- {id: v, on: deal.stage_changed, points: {field: value, multiply: 0.01, add: 5}}",
            [
                ev(
                    "deal.stage_changed",
                    "e1",
                    T0,
                    contact=None,
                    deal="d1",
                    pipeline="p",
                    to_stage="won",
                    value=1000,
                )
            ],
            0,
        ),  # deal score: contact c1 untouched
    ],
)
def test_event_rules(rules: str, items: list, expected: int) -> None:
    runner = Runner(one_score(rules))
    runner.feed(*items)
    assert runner.value() == expected


def test_value_weighted_deal_score() -> None:
    plan = one_score(
        "- {id: v, on: deal.stage_changed, points: {field: value, multiply: 0.01, add: 5}}",
        entity="deal",
    )
    runner = Runner(plan)
    runner.feed(
        ev(
            "deal.stage_changed",
            "e1",
            T0,
            contact=None,
            deal="d1",
            pipeline="p",
            to_stage="won",
            value=1000,
        )
    )
    assert runner.value(kind="deal", entity_id="d1") == 15


def test_missing_value_field_is_no_value() -> None:
    plan = one_score("- {id: v, on: deal.stage_changed, points: {field: value}}", entity="deal")
    runner = Runner(plan)
    runner.feed(
        ev("deal.stage_changed", "e1", T0, contact=None, deal="d1", pipeline="p", to_stage="won")
    )
    assert runner.last.results[0].verdict is Verdict.NO_VALUE
    assert runner.value(kind="deal", entity_id="d1") == 0


def test_change_record_fields() -> None:
    runner = Runner(one_score(PRICING, head="thresholds: [{name: warm, at: 30}]"))
    (change,) = runner.feed(visit("e1", T0))
    assert change.to_dict() == {
        "change_id": change.change_id,
        "tenant_id": None,
        "entity": "contact",
        "entity_id": "c1",
        "score": "s",
        "seq": 1,
        "old_value": 0,
        "new_value": 30,
        "delta": 30,
        "cause": "rule",
        "rule_ids": ["pricing"],
        "source_event_id": "e1",
        "occurred_at": T0,
        "thresholds": [{"name": "warm", "direction": "up"}],
        "plan_version": runner.plan.version,
        "tier_before": None,
        "tier_after": None,
    }
    assert change.change_id == str(uuid.uuid5(CHANGE_NAMESPACE, "\x1fcontact\x1fc1\x1fs\x1f1"))


def test_a_duplicate_changes_nothing_and_publishes_nothing() -> None:
    # The shell commits a state with the changes it caused in one transaction: a duplicate item
    # (a producer retry, or a replay after an aborted transaction) has nothing to republish.
    runner = Runner(one_score(PRICING))
    first = runner.feed(visit("e1", T0))
    before = dumps(next(iter(runner.states.values())))
    again = runner.feed(visit("e1", T0))
    assert first and again == []
    assert runner.last.results[0].verdict is Verdict.DUPLICATE
    assert dumps(next(iter(runner.states.values()))) == before


def test_seq_is_contiguous_and_only_on_change() -> None:
    runner = Runner(one_score(PRICING + "- {id: zero, on: email.open, points: 0}"))
    runner.feed(visit("e1", T0), ev("email.open", "e2", T0 + 1), visit("e3", T0 + 2))
    assert [c.seq for c in runner.changes] == [1, 2]
    assert runner.outcomes[1].results[0].verdict is Verdict.SCORED  # 0 points still "scored"


@pytest.mark.parametrize(
    ("offsets", "awarded"),
    [
        # in order: the second visit within 24h is capped, the one 24h later is not
        ([0, 1 * H, 24 * H], [True, False, True]),
        # out of order: a late visit inside the window of an earlier award is capped
        ([24 * H, 0, 12 * H], [True, True, False]),
        # exactly P apart: the half-open window [t, t+P) holds only one
        ([0, 24 * H - 1, 24 * H], [True, False, True]),
    ],
)
def test_cap_one_per_day(offsets: list[int], awarded: list[bool]) -> None:
    runner = Runner(one_score(PRICING + "  cap: {max: 1, per: 24h}\n"))
    verdicts = []
    for i, offset in enumerate(offsets):
        runner.feed(visit(f"e{i}", T0 + offset))
        verdicts.append(runner.last.results[0].verdict is Verdict.SCORED)
    assert verdicts == awarded


def test_expiry_emits_change_at_due_time() -> None:
    runner = Runner(one_score(PRICING + "  expires_after: 30d\n"))
    runner.feed(visit("e1", T0), visit("e2", T0 + D))
    assert runner.advance(T0 + 30 * D - 1) == []
    changes = runner.advance(T0 + 40 * D)
    assert summary(changes) == [
        (3, 60, 30, "expiry", ("pricing",), 30 * D),
        (4, 30, 0, "expiry", ("pricing",), 31 * D),
    ]
    assert changes[0].source_event_id == "e1"
    assert runner.advance(T0 + 40 * D) == []  # idempotent


def test_event_older_than_its_expiry_scores_nothing() -> None:
    runner = Runner(one_score(PRICING + "  expires_after: 1d\n"))
    runner.feed(visit("e1", T0 - 2 * D), now_ms=T0)
    assert runner.last.results[0].verdict is Verdict.EXPIRED
    assert runner.value() == 0


def test_apply_advances_first() -> None:
    runner = Runner(one_score(PRICING + "  expires_after: 1h\n"))
    runner.feed(visit("e1", T0))
    changes = runner.feed(visit("e2", T0 + 2 * H))
    assert summary(changes) == [
        (2, 30, 0, "expiry", ("pricing",), H),
        (3, 0, 30, "rule", ("pricing",), 2 * H),
    ]


def test_too_late_beyond_lateness() -> None:
    runner = Runner(one_score(PRICING, plan_head="lateness: 1d"))
    runner.feed(visit("e1", T0 + 10 * D), visit("e2", T0 + 9 * D), visit("e3", T0 + 8 * D))
    verdicts = [o.results[0].verdict for o in runner.outcomes]
    assert verdicts == [Verdict.SCORED, Verdict.SCORED, Verdict.TOO_LATE]
    assert runner.value() == 60


@pytest.mark.parametrize(
    ("head", "items", "expected"),
    [
        # a category caps its sum
        ("categories: {interest: {max: 50}}", [visit(f"e{i}", T0 + i) for i in range(3)], 50),
        # the limits clamp the total
        ("limits: {min: 0, max: 40}", [visit(f"e{i}", T0 + i) for i in range(3)], 40),
        # the floor holds below zero
        ("limits: {min: 0}", [ev("email.unsubscribe", "u", T0)], 0),
    ],
)
def test_categories_and_limits(head: str, items: list, expected: int) -> None:
    rules = PRICING + "  category: interest\n- {id: unsub, on: email.unsubscribe, points: -40}"
    if "categories" not in head:
        head += "\ncategories: {interest: {}}"
    runner = Runner(one_score(rules, head=head))
    runner.feed(*items)
    assert runner.value() == expected


def test_floor_then_recovery_is_a_fold_not_a_counter() -> None:
    # total = clamp(sum) so points lost below the floor still count when others expire
    rules = "- {id: unsub, on: email.unsubscribe, points: -40}\n" + PRICING
    runner = Runner(one_score(rules, head="limits: {min: 0}"))
    runner.feed(ev("email.unsubscribe", "u", T0), visit("e1", T0 + 1), visit("e2", T0 + 2))
    assert [c.new_value for c in runner.changes] == [20]


def test_thresholds_up_and_down_rearm() -> None:
    head = "thresholds: [{name: mql, at: 50}, {name: sql, at: 60}]"
    rules = PRICING + "  expires_after: 1h\n"
    runner = Runner(one_score(rules, head=head))
    runner.feed(visit("e1", T0), visit("e2", T0 + 1))  # 30, 60
    runner.advance(T0 + H + 1)  # 30 at T0+1h, 0 at T0+1h+1ms: two due times, two changes
    runner.feed(visit("e3", T0 + 2 * H), visit("e4", T0 + 2 * H + 1))  # 30, 60
    assert [(c.new_value, c.thresholds) for c in runner.changes] == [
        (30, ()),
        (60, (("mql", "up"), ("sql", "up"))),
        (30, (("sql", "down"), ("mql", "down"))),
        (0, ()),
        (30, ()),
        (60, (("mql", "up"), ("sql", "up"))),
    ]


TIERS = "tiers: [{name: cold, below: 30}, {name: warm, below: 60}, {name: hot}]"


def test_a_tier_change_is_also_a_record_of_its_own() -> None:
    rules = PRICING + "  expires_after: 1h\n"
    runner = Runner(one_score(rules, head=TIERS + "\nthresholds: [{name: mql, at: 60}]"))
    runner.feed(visit("e1", T0), visit("e2", T0 + 1), visit("e3", T0 + 2))  # 30, 60, 90
    runner.advance(T0 + H + 2)  # all three expire: 60, 30, 0
    got = [(c.seq, c.old_value, c.new_value, str(c.cause), c.tier_before, c.tier_after,
            c.thresholds) for c in runner.changes]  # fmt: skip
    assert got == [
        (1, 0, 30, "rule", "cold", "warm", ()),
        (2, 30, 30, "tier", "cold", "warm", ()),
        (3, 30, 60, "rule", "warm", "hot", (("mql", "up"),)),
        (4, 60, 60, "tier", "warm", "hot", ()),
        (5, 60, 90, "rule", "hot", "hot", ()),  # no tier change: no tier record
        (6, 90, 60, "expiry", "hot", "hot", ()),
        (7, 60, 30, "expiry", "hot", "warm", (("mql", "down"),)),
        (8, 30, 30, "tier", "hot", "warm", ()),
        (9, 30, 0, "expiry", "warm", "cold", ()),
        (10, 0, 0, "tier", "warm", "cold", ()),
    ]
    tier_record = runner.changes[1]
    assert tier_record.rule_ids == ("pricing",) and tier_record.source_event_id == "e1"
    assert tier_record.change_id != runner.changes[0].change_id  # its own seq, its own id


def test_a_score_without_tiers_reports_none() -> None:
    runner = Runner(one_score(PRICING))
    (change,) = runner.feed(visit("e1", T0))
    assert (change.tier_before, change.tier_after) == (None, None)


def test_tenants_are_isolated() -> None:
    runner = Runner(one_score(PRICING))
    runner.feed(visit("e1", T0, account="a"), visit("e1", T0, account="b"), visit("e1", T0))
    assert runner.value(account="a") == 30
    assert runner.value(account="b") == 30
    assert runner.value() == 30
    assert len({c.change_id for c in runner.changes}) == 3


def test_contact_event_with_deal_feeds_both() -> None:
    plan = one_score(PRICING)
    event = visit("e1", T0, deal="d1")
    assert route(event) == (EntityKey(None, "contact", "c1"), EntityKey(None, "deal", "d1"))
    outcome = apply(None, EntityKey(None, "deal", "d1"), event, plan, now_ms=T0)
    assert outcome.results == ()  # the plan has no deal scores


def test_deal_score_from_contact_event() -> None:
    text = """
    scores:
      - name: c
        entity: contact
        rules: [{id: v, on: page_visit, points: 1}]
      - name: d
        entity: deal
        rules: [{id: v, on: page_visit, points: 7}]
    """
    from scoring_helpers import make_plan

    runner = Runner(make_plan(text))
    runner.feed(visit("e1", T0, deal="d1"))
    assert runner.value("c") == 1
    assert runner.value("d", kind="deal", entity_id="d1") == 7


STATE_RULES = """
- id: industry
  while: {attributes.industry: {in: [saas, fintech]}}
  points: 25
"""


def profile(event_id: str, at_ms: int, **attributes: object) -> object:
    return ev("contact.updated", event_id, at_ms, attributes=attributes)


@pytest.mark.parametrize(
    ("updates", "expected", "causes"),
    [
        # entering the match awards the points
        ([{"industry": "saas"}], 25, ["state"]),
        # staying in the match changes nothing
        ([{"industry": "saas"}, {"industry": "fintech"}], 25, ["state"]),
        # leaving the match gives the points back
        ([{"industry": "saas"}, {"industry": "retail"}], 0, ["state", "state"]),
        # a null deletes the attribute: the points go back
        ([{"industry": "saas"}, {"industry": None}], 0, ["state", "state"]),
        # an unrelated attribute does not move the rule
        ([{"industry": "saas"}, {"region": "eu"}], 25, ["state"]),
    ],
)
def test_state_rules(updates: list[dict], expected: int, causes: list[str]) -> None:
    runner = Runner(one_score(STATE_RULES))
    for i, attributes in enumerate(updates):
        runner.feed(profile(f"p{i}", T0 + i, **attributes))
    assert runner.value() == expected
    assert [str(c.cause) for c in runner.changes] == causes


def test_state_rule_last_writer_wins_by_event_time() -> None:
    runner = Runner(one_score(STATE_RULES))
    runner.feed(profile("p2", T0 + 10, industry="saas"), profile("p1", T0, industry="retail"))
    assert runner.value() == 25


def test_deal_state_rules_stage_status_value() -> None:
    rules = """
    - {id: proposal, while: {stage: {eq: proposal}}, points: 10}
    - {id: big, while: {value: {gte: 10000}}, points: 20}
    - {id: won, while: {status: {eq: won}}, points: 100}
    - {id: weighted, while: {stage: {exists: true}}, points: {field: value, multiply: 0.001}}
    """
    runner = Runner(one_score(rules, entity="deal"))

    def stage(event_id: str, at_ms: int, **fields: object) -> object:
        return ev(
            "deal.stage_changed",
            event_id,
            at_ms,
            contact=None,
            deal="d1",
            pipeline="sales",
            **fields,
        )

    runner.feed(stage("s1", T0, to_stage="proposal", value=12000))
    assert runner.value(kind="deal", entity_id="d1") == 10 + 20 + 12
    runner.feed(stage("s2", T0 + H, to_stage="closed", status="won", value=8000))
    assert runner.value(kind="deal", entity_id="d1") == 100 + 8
    assert runner.changes[-1].rule_ids == ("proposal", "big", "won", "weighted")


ADJUSTABLE = PRICING + "  expires_after: 10d\n- {id: once, on: email.open, points: 5, repeat: once}"


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        # add is a manual contribution
        ([adj("a1", T0, "add", 7)], 7),
        # subtract removes points
        ([visit("e1", T0), adj("a1", T0 + 1, "subtract", 10)], 20),
        # add is idempotent by command id
        ([adj("a1", T0, "add", 7), adj("a1", T0, "add", 7)], 7),
        # set starts a new epoch: earlier points stop counting
        ([visit("e1", T0), adj("a1", T0 + 1, "set", 100)], 100),
        # events after the set count on top of it
        ([visit("e1", T0), adj("a1", T0 + 1, "set", 100), visit("e2", T0 + 2)], 130),
        # a late event from before the epoch scores nothing
        ([adj("a1", T0 + 5, "reset"), visit("e1", T0)], 0),
        # an event after the reset that arrives before it still counts
        ([visit("e1", T0 + 10), adj("a1", T0 + 5, "reset")], 30),
        # an older reset is superseded by a newer set
        ([adj("a2", T0 + 10, "set", 50), adj("a1", T0 + 5, "reset")], 50),
        # a second set replaces the first base
        ([adj("a1", T0, "set", 50), adj("a2", T0 + 1, "set", 20)], 20),
        # reset re-arms repeat: once rules
        (
            [
                ev("email.open", "o1", T0),
                adj("a1", T0 + 1, "reset"),
                ev("email.open", "o2", T0 + 2),
            ],
            5,
        ),
    ],
)
def test_adjustments(items: list, expected: int) -> None:
    runner = Runner(one_score(ADJUSTABLE))
    runner.feed(*items)
    assert runner.value() == expected


def test_adjustment_verdicts() -> None:
    runner = Runner(one_score(ADJUSTABLE))
    runner.feed(adj("a2", T0 + 10, "set", 50), adj("a1", T0 + 5, "reset"))
    runner.feed(adj("a3", T0, "add", 5, score="nope"))
    runner.feed(adj("a2", T0 + 10, "set", 50))
    verdicts = [o.results[0].verdict for o in runner.outcomes]
    assert verdicts == [
        Verdict.ADJUSTED,
        Verdict.SUPERSEDED,
        Verdict.UNKNOWN_SCORE,
        Verdict.DUPLICATE,
    ]


def test_expiring_adjustment() -> None:
    runner = Runner(one_score(ADJUSTABLE))
    runner.feed(adj("a1", T0, "add", 7, expires_after="2h"))
    assert summary(runner.advance(T0 + 3 * H)) == [(2, 7, 0, "expiry", ("adjustment:add",), 2 * H)]


def test_reset_suppresses_state_rule_until_it_stops_matching() -> None:
    runner = Runner(one_score(STATE_RULES))
    runner.feed(profile("p1", T0, industry="saas"), adj("r", T0 + 1, "reset"))
    assert runner.value() == 0
    runner.feed(profile("p2", T0 + 2, industry="fintech"))  # still matching: no re-award
    assert runner.value() == 0
    runner.feed(profile("p3", T0 + 3, industry="retail"), profile("p4", T0 + 4, industry="saas"))
    assert runner.value() == 25


def test_cap_history_survives_reset() -> None:
    runner = Runner(one_score(PRICING + "  cap: {max: 1, per: 24h}\n"))
    runner.feed(visit("e1", T0), adj("r", T0 + 1, "reset"), visit("e2", T0 + 2))
    assert runner.last.results[0].verdict is Verdict.CAPPED
    assert runner.value() == 0


QUIET = """
timezone: Europe/Warsaw
quiet_hours:
  policy: {policy}
  windows: [{{days: [mon, tue, wed, thu, fri], from: "22:00", to: "07:00"}}]
"""


@pytest.mark.parametrize(
    ("local", "verdict"),
    [
        # Monday 21:59 Warsaw (CEST, UTC+2) is before the window
        ("2024-05-06T21:59:00+02:00", Verdict.SCORED),
        # Monday 22:00 starts it
        ("2024-05-06T22:00:00+02:00", Verdict.QUIET),
        # Tuesday 06:59 is inside the window that started Monday
        ("2024-05-07T06:59:00+02:00", Verdict.QUIET),
        # Tuesday 07:00 is after it
        ("2024-05-07T07:00:00+02:00", Verdict.SCORED),
        # Saturday 23:00: no window starts on Saturday
        ("2024-05-11T23:00:00+02:00", Verdict.SCORED),
        # Saturday 03:00 is inside Friday's window
        ("2024-05-11T03:00:00+02:00", Verdict.QUIET),
        # Monday 03:00: Sunday starts no window
        ("2024-05-13T03:00:00+02:00", Verdict.SCORED),
    ],
)
def test_quiet_hours_skip(local: str, verdict: Verdict) -> None:
    from streams.scoring.durations import parse_instant

    at = parse_instant(local)
    assert at is not None
    runner = Runner(one_score(PRICING, head=QUIET.format(policy="skip")))
    runner.feed(visit("e1", at))
    assert runner.last.results[0].verdict is verdict


def test_quiet_hours_defer_applies_at_window_end() -> None:
    from streams.scoring.durations import parse_instant

    at = parse_instant("2024-05-06T23:30:00+02:00")
    end = parse_instant("2024-05-07T07:00:00+02:00")
    assert at is not None and end is not None
    runner = Runner(
        one_score(PRICING + "  cap: {max: 1, per: 24h}\n", head=QUIET.format(policy="defer"))
    )
    assert runner.feed(visit("e1", at)) == []
    assert runner.last.results[0].verdict is Verdict.DEFERRED
    runner.feed(visit("e2", at + M))  # the cap slot was reserved at event time
    assert runner.last.results[0].verdict is Verdict.CAPPED
    state = runner.states[EntityKey(None, "contact", "c1")]
    assert state.next_due_ms == end
    changes = runner.advance(end)
    assert [(c.cause, c.occurred_at_ms, c.new_value, c.source_event_id) for c in changes] == [
        ("deferred", end, 30, "e1")
    ]


def test_deferred_award_already_expired_at_window_end_is_dropped() -> None:
    from streams.scoring.durations import parse_instant

    at = parse_instant("2024-05-06T23:30:00+02:00")
    assert at is not None
    runner = Runner(one_score(PRICING + "  expires_after: 1h\n", head=QUIET.format(policy="defer")))
    runner.feed(visit("e1", at))
    assert runner.advance(at + D) == []
    assert runner.value() == 0


def test_adjustments_ignore_quiet_hours() -> None:
    from streams.scoring.durations import parse_instant

    at = parse_instant("2024-05-06T23:30:00+02:00")
    assert at is not None
    runner = Runner(one_score(PRICING, head=QUIET.format(policy="skip")))
    runner.feed(adj("a", at, "add", 3))
    assert runner.value() == 3
