"""Predicted scores (docs/plans.md, Predicted scores): the value, when it moves, what it carries.

Expected basis points are written out, each from an independent computation (``math.exp`` on
the case's logit, far from a rounding boundary), and checked against that computation too; the
properties compare the core with an exact ``Fraction``/``Decimal`` reference. The repository
runs these tests in the compiled and the pure build alike.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scoring_helpers import T0, D, H, Runner, adj, ev, make_plan, visit

from streams.commands.offline import OfflineScorer
from streams.scoring import EntityKey, dumps, loads
from streams.scoring.explain import explain
from streams.scoring.predict import basis_points, feature_values, logit, probability, value_of

PLAN_TEXT = """
lateness: 30d
scores:
  - name: engagement
    entity: contact
    rules:
      - {id: pricing, on: page_visit, where: {url: {contains: pricing}}, points: 30,
         expires_after: 20d}
      - {id: visit, on: page_visit, points: 1}
  - name: fit
    entity: contact
    tiers: [{name: poor, below: 20}, {name: good}]
    rules: [{id: saas, while: {attributes.industry: {eq: saas}}, points: 40}]
  - name: weekend
    entity: contact
    quiet_hours: {policy: defer, windows: [{days: [sat], from: "00:00", to: "24:00"}]}
    rules: [{id: demo, on: page_visit, where: {url: {contains: demo}}, points: 50}]
  - name: conversion
    entity: contact
    predicted:
      model: conv-test-1
      intercept: -3.2104
      features:
        - {name: engagement, score: engagement, weight: 0.0213}
        - {name: pricing-14d, score: engagement, rule: pricing, within: 14d, weight: 0.41}
        - {name: saas, attribute: industry, equals: saas, weight: 0.8}
        - {name: employees, attribute: attributes.employees, weight: 0.0003, max: 10000}
        - {name: demos, score: weekend, rule: demo, within: 7d, weight: 0.5}
        - {name: visits-1d, score: engagement, rule: visit, within: 1d, of: points,
           weight: -0.2}
    thresholds: [{name: likely, at: 5000}]
    tiers: [{name: unlikely, below: 1000}, {name: possible, below: 5000}, {name: likely}]
  - name: best-contact
    entity: account
    rollup: {from: conversion, aggregate: max}
matrices:
  - {name: grade, entity: contact, rows: fit, cols: conversion,
     labels: [[C, B, A2], [B2, A, A1]]}
"""
PLAN = make_plan(PLAN_TEXT)
KEY = EntityKey(None, "contact", "c1")
SPEC = PLAN.by_name["conversion"].predicted
assert SPEC is not None


def profile(event_id: str, at_ms: int, **attributes: Any) -> Any:
    return ev("contact.updated", event_id, at_ms, attributes=attributes)


def reference(z: float) -> float:
    """Basis points by floating point, independently of the core (for cases far from .5)."""
    return 10_000 / (1 + math.exp(-z))


PRICING = "https://example.com/pricing"
CASES = [
    # a profile update that no feature reads: only the intercept (the cold start)
    ("cold start", [profile("p0", T0, city="Oslo")], -3.2104, 388),
    # a pricing visit: engagement 31, one pricing hit, 1 visit point within a day
    ("one pricing visit", [visit("e1", T0, PRICING)], -3.2104 + 0.0213 * 31 + 0.41 - 0.2, 879),
    # then a SaaS company of 5,000 employees: + 0.8 + 0.0003 * 5000
    ("and the profile", [visit("e1", T0, PRICING),
                         profile("p1", T0 + H, industry="saas", employees=5000)],
     -3.2104 + 0.0213 * 31 + 0.41 - 0.2 + 0.8 + 1.5, 4900),
    # 50,000 employees count as max (10,000); no visit
    ("employees clamped to max", [profile("p1", T0, industry="saas", employees=50000)],
     -3.2104 + 0.8 + 3.0, 6433),
    # a number written as text counts as that number
    ("numeric text", [profile("p1", T0, employees="2500")], -3.2104 + 0.75, 787),
    # a text that is no number counts as 0, as does another industry
    ("not a number", [profile("p1", T0, employees="many", industry="retail")], -3.2104, 388),
    # 15 days later the pricing hit is out of its 14-day window (still live: expires at 20d),
    # and only the later visit's point is within a day
    ("hit out of its window", [visit("e1", T0, PRICING),
                               visit("e2", T0 + 15 * D, "https://example.com/")],
     -3.2104 + 0.0213 * 32 - 0.2, 613),
]  # fmt: skip


@pytest.mark.parametrize(("items", "z", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_value_equals_a_hand_computation(items: list[Any], z: float, expected: int) -> None:
    runner = Runner(PLAN)
    runner.feed(*items)
    assert runner.value("conversion") == expected
    assert abs(reference(z) - expected) < 0.45  # far from a rounding boundary
    assert round(reference(z)) == expected


def test_value_equals_an_exact_decimal_reference() -> None:
    # one pricing visit and a profile of 1,234.5 employees: z = -1.96975 exactly
    runner = Runner(PLAN)
    runner.feed(visit("e1", T0, PRICING), profile("p1", T0 + H, employees="1234.5"))
    z = Fraction("-3.2104") + Fraction("0.0213") * 31 + Fraction("0.41") + Fraction("-0.2") \
        + Fraction("0.0003") * Fraction("1234.5")  # fmt: skip
    assert z == Fraction("-1.96975")
    wide = Context(prec=80)
    p = wide.divide(1, wide.add(1, wide.exp(Decimal("1.96975"))))
    assert str(p)[:14] == "0.122415741819"
    assert runner.value("conversion") == 1224  # 1224.1574...
    state = runner.states[KEY]
    assert feature_values(state, "contact", SPEC, PLAN) == (
        Decimal(31),
        Decimal(1),
        Decimal(0),
        Decimal("1234.5"),
        Decimal(0),
        Decimal(1),
    )
    assert logit(SPEC, feature_values(state, "contact", SPEC, PLAN)) == Decimal("-1.96975")


def test_the_changes_thresholds_tiers_and_matrix() -> None:
    runner = Runner(PLAN)
    runner.feed(visit("e1", T0, PRICING))
    runner.feed(profile("p1", T0 + H, industry="saas", employees=8000))
    rows = [(c.score, c.seq, c.old_value, c.new_value, str(c.cause), c.rule_ids,
             c.source_event_id, c.occurred_at_ms - T0, c.thresholds, c.tier_before,
             c.tier_after) for c in runner.changes]  # fmt: skip
    # z after the profile: -3.2104 + 0.6603 + 0.41 - 0.2 + 0.8 + 2.4 = 0.8599
    assert round(reference(-3.2104)) == 388
    assert round(reference(0.8599)) == 7026
    assert rows == [
        ("engagement", 1, 0, 31, "rule", ("pricing", "visit"), "e1", 0, (), None, None),
        # a new entity's predicted score starts at the prior, the intercept alone (388 bp)
        ("conversion", 1, 388, 879, "predicted", ("predicted",), "e1", 0, (), "unlikely",
         "unlikely"),
        ("fit", 1, 0, 40, "state", ("saas",), "p1", H, (), "poor", "good"),
        ("fit", 2, 40, 40, "tier", ("saas",), "p1", H, (), "poor", "good"),
        ("grade", 1, 0, 3, "tier", ("saas",), "p1", H, (), "C", "B2"),
        ("conversion", 2, 879, 7026, "predicted", ("predicted",), "p1", H, (("likely", "up"),),
         "unlikely", "likely"),
        ("conversion", 3, 7026, 7026, "tier", ("predicted",), "p1", H, (), "unlikely",
         "likely"),
        ("grade", 2, 3, 5, "tier", ("predicted",), "p1", H, (), "B2", "A1"),
    ]  # fmt: skip


def test_a_time_step_moves_it_with_the_steps_source_and_instant() -> None:
    runner = Runner(PLAN)
    runner.feed(visit("e1", T0, PRICING))
    assert runner.advance(T0 + 19 * D) == []  # nothing due
    step = runner.advance(T0 + 21 * D)  # the pricing points expired at 20 days
    # engagement 1, no live pricing hit, the visit's point (the watermark is still T0)
    assert round(reference(-3.2104 + 0.0213 - 0.2)) == 326
    assert [
        (
            c.score,
            c.old_value,
            c.new_value,
            str(c.cause),
            c.rule_ids,
            c.source_event_id,
            c.occurred_at_ms - T0,
        )
        for c in step
    ] == [
        ("engagement", 31, 1, "expiry", ("pricing",), "e1", 20 * D),
        ("conversion", 879, 326, "predicted", ("predicted",), "e1", 20 * D),
    ]


def test_a_deferred_award_is_no_hit_until_released() -> None:
    saturday = T0 + 5 * D + H  # Saturday 11:00 UTC: the weekend score's quiet day
    runner = Runner(PLAN)
    runner.feed(visit("e1", saturday, "https://example.com/demo"))
    # engagement 1 (the visit), its point within a day; the demo award is held
    assert runner.value("conversion") == 326
    released = runner.advance(saturday + 14 * H)  # Sunday 00:00
    assert round(reference(-3.2104 + 0.0213 - 0.2 + 0.5)) == 527
    assert [
        (c.score, c.new_value, str(c.cause), c.source_event_id, c.occurred_at_ms - saturday)
        for c in released
    ] == [
        ("weekend", 50, "deferred", "e1", 13 * H),
        ("conversion", 527, "predicted", "e1", 13 * H),
    ]


def test_adjustments() -> None:
    runner = Runner(PLAN)
    runner.feed(visit("e1", T0, PRICING))
    # a predicted score takes no adjustment: refused as for a score the entity does not have
    assert runner.feed(adj("a1", T0 + H, "add", 10, score="conversion")) == []
    assert [(r.score, str(r.verdict)) for r in runner.last.results] == [
        ("conversion", "unknown_score")
    ]
    # an adjustment of a score a feature reads moves it, with the command's id and time
    moved = runner.feed(adj("a2", T0 + 2 * H, "add", 100, score="engagement"))
    assert round(reference(-3.2104 + 0.0213 * 131 + 0.41 - 0.2)) == 4477
    assert [
        (c.score, c.new_value, str(c.cause), c.source_event_id, c.occurred_at_ms - T0)
        for c in moved
    ] == [
        ("engagement", 131, "adjustment", "a2", 2 * H),
        ("conversion", 4477, "predicted", "a2", 2 * H),
        ("conversion", 4477, "tier", "a2", 2 * H),
        ("grade", 1, "tier", "a2", 2 * H),
    ]


def test_a_rollup_follows_a_predicted_contact_score() -> None:
    runner = Runner(PLAN)
    runner.feed(profile("p1", T0, account_id="acme", industry="saas"))
    runner.feed(ev("contact.updated", "p2", T0 + H, contact="c2",
                   attributes={"account_id": "acme"}))  # fmt: skip
    # c1: -3.2104 + 0.8 = -2.4104 -> 824 (823.83); c2: the intercept alone -> 388
    assert (runner.value("conversion"), runner.value("conversion", entity_id="c2")) == (824, 388)
    assert runner.value("best-contact", "account", "acme") == 824


def test_explain_shows_the_model_and_its_top_factors() -> None:
    runner = Runner(PLAN)
    runner.feed(visit("e1", T0, PRICING), profile("p1", T0 + H, industry="saas", employees=100))
    shown = explain(runner.states[KEY], PLAN, "conversion").to_dict()
    model = shown.pop("predicted")
    assert shown["value"] == model["basis_points"] == 1809  # z = -1.5101
    assert round(reference(-1.5101)) == 1809
    assert model["model"] == "conv-test-1"
    assert (model["intercept"], model["logit"]) == ("-3.2104", "-1.5101")
    assert model["probability"].startswith("0.18092397")
    assert [(f["name"], f["value"], f["weight"], f["contribution"]) for f in model["features"]] == [
        ("engagement", "31", "0.0213", "0.6603"),
        ("pricing-14d", "1", "0.41", "0.41"),
        ("saas", "1", "0.8", "0.8"),
        ("employees", "100", "0.0003", "0.0300"),
        ("demos", "0", "0.5", "0.0"),
        ("visits-1d", "1", "-0.2", "-0.2"),
    ]
    assert model["top_positive"] == ["saas", "engagement", "pricing-14d"]
    assert model["top_negative"] == ["visits-1d"]
    parts = sum((Decimal(f["contribution"]) for f in model["features"]), Decimal(0))
    assert Decimal(model["intercept"]) + parts == Decimal(model["logit"])
    # the other scores' explanations keep their shape
    assert "predicted" not in explain(runner.states[KEY], PLAN, "engagement").to_dict()
    # an entity with no state yet: its model at the cold start
    cold = explain(None, PLAN, "conversion").to_dict()["predicted"]
    assert (cold["logit"], cold["basis_points"], cold["top_positive"]) == ("-3.2104", 388, [])


def test_state_round_trips_and_scoring_goes_on_the_same() -> None:
    items = [visit("e1", T0, PRICING), profile("p1", T0 + H, industry="saas", employees=100)]
    straight, restored = Runner(PLAN), Runner(PLAN)
    straight.feed(*items)
    restored.feed(*items)
    blob = dumps(restored.states[KEY])
    restored.states[KEY] = loads(blob)
    assert restored.states[KEY] == straight.states[KEY]
    assert restored.states[KEY].scores["conversion"].total == 1809
    later = visit("e2", T0 + 3 * D, PRICING)
    assert straight.feed(later) == restored.feed(later)
    assert value_of(restored.states[KEY], "contact", SPEC, PLAN) == restored.value("conversion")


def test_the_offline_scorer_agrees() -> None:
    items = [visit("e1", T0, PRICING), profile("p1", T0 + H, industry="saas"),
             visit("e2", T0 + 15 * D, PRICING), visit("e3", T0 + 40 * D)]  # fmt: skip
    runner, scorer = Runner(PLAN), OfflineScorer(PLAN)
    for one in items:
        runner.feed(one)
        scorer.feed(one)
    scorer.advance_to(T0 + 90 * D)
    runner.advance(T0 + 90 * D)
    finals = {r["score"]: r["value"] for r in scorer.finals()
              if r["kind"] == "score" and r["entity_id"] == "c1"}  # fmt: skip
    assert finals["conversion"] == runner.value("conversion")


# -- properties ------------------------------------------------------------------------------

_WIDE = Context(prec=80, rounding=ROUND_HALF_EVEN)


def exact_basis_points(z: Fraction) -> int | None:
    """The value from an exact logit at 80 digits; None within 10^-30 of a .5 boundary."""
    zd = _WIDE.divide(Decimal(z.numerator), Decimal(z.denominator))
    scaled = _WIDE.multiply(_WIDE.divide(1, _WIDE.add(1, _WIDE.exp(-zd))), 10_000)
    fraction = scaled - scaled.to_integral_value(rounding="ROUND_FLOOR")
    if abs(fraction - Decimal("0.5")) < Decimal("1e-30"):
        return None
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


decimals = st.decimals(min_value=-8, max_value=8, places=4, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(intercept=decimals, weights=st.lists(decimals, min_size=1, max_size=6),
       values=st.lists(st.integers(-5000, 5000), min_size=6, max_size=6))  # fmt: skip
def test_the_computation_equals_an_exact_reference(
    intercept: Decimal, weights: list[Decimal], values: list[int]
) -> None:
    from streams.scoring.model import SCORE, Feature, Predicted

    spec = Predicted("m", intercept, tuple(Feature(f"f{i}", SCORE, w, score="s")
                                           for i, w in enumerate(weights)))  # fmt: skip
    xs = tuple(Decimal(v) / 100 for v in values[: len(weights)])
    z = Fraction(intercept) + sum(
        Fraction(w) * Fraction(x) for w, x in zip(weights, xs, strict=True)
    )
    assert logit(spec, xs) == Decimal(z.numerator) / Decimal(z.denominator)
    expected = exact_basis_points(z)
    assume(expected is not None)
    assert basis_points(probability(logit(spec, xs))) == expected


@st.composite
def histories(draw: Any) -> list[Any]:
    """Visits and profile updates of one contact at distinct times over 40 days, shuffled."""
    n = draw(st.integers(1, 25))
    slots = draw(st.lists(st.integers(0, 40 * 24 * 4), min_size=n, max_size=n, unique=True))
    items: list[Any] = []
    for i, slot in enumerate(slots):
        at = T0 + slot * 15 * 60_000
        kind = draw(st.sampled_from(["pricing", "other", "profile"]))
        if kind == "profile":
            attributes = {}
            if draw(st.booleans()):
                attributes["industry"] = draw(st.sampled_from(["saas", "retail", None]))
            if draw(st.booleans()):
                attributes["employees"] = draw(st.sampled_from(
                    [None, 7, 120, 64000, "2500", "12.3456789", "many", True]))  # fmt: skip
            items.append(profile(f"p{i}", at, **attributes))
        else:
            url = PRICING if kind == "pricing" else "https://example.com/about"
            items.append(visit(f"e{i}", at, url))
    return draw(st.permutations(items))


PROPERTY_PLAN = """
lateness: 60d
scores:
  - name: engagement
    entity: contact
    rules:
      - {{id: pricing, on: page_visit, where: {{url: {{contains: pricing}}}}, points: 30}}
      - {{id: visit, on: page_visit, points: 1}}
  - name: conversion
    entity: contact
    predicted:
      model: m
      intercept: {intercept}
      features:
        - {{name: engagement, score: engagement, weight: {w0}}}
        - {{name: pricing-14d, score: engagement, rule: pricing, within: 14d, weight: {w1}}}
        - {{name: saas, attribute: industry, equals: saas, weight: {w2}}}
        - {{name: employees, attribute: employees, weight: {w3}, min: 10, max: 10000}}
        - {{name: visits-1d, score: engagement, rule: visit, within: 1d, of: points,
            weight: {w4}}}
"""


def reference_logit(items: list[Any], intercept: Decimal, weights: list[Decimal]) -> Fraction:
    """The logit from the history alone (event-time order, last writer wins)."""
    ordered = sorted(items, key=lambda i: i.occurred_at_ms)
    watermark = ordered[-1].occurred_at_ms
    visits = [i for i in ordered if i.event_type == "page_visit"]
    pricing = [i for i in visits if "pricing" in i.fields["url"]]
    attributes: dict[str, Any] = {}
    for update in (i for i in ordered if i.event_type == "contact.updated"):
        attributes.update(update.fields["attributes"])
    employees = attributes.get("employees")  # None: missing or deleted
    try:
        number = Fraction(0) if employees is None or employees is True else Fraction(str(employees))
    except ValueError:  # a text that is no number
        number = Fraction(0)
    number = min(max(number, Fraction(10)), Fraction(10_000))
    number = Fraction(round(number * 10**6), 10**6)  # six places, half-even
    xs = [
        Fraction(30 * len(pricing) + len(visits)),
        Fraction(sum(1 for i in pricing if watermark - 14 * D <= i.occurred_at_ms)),
        Fraction(1 if attributes.get("industry") == "saas" else 0),
        number,
        Fraction(sum(1 for i in visits if watermark - D <= i.occurred_at_ms)),
    ]
    return Fraction(intercept) + sum(Fraction(w) * x for w, x in zip(weights, xs, strict=True))


@settings(max_examples=150, deadline=None)
@given(items=histories(),
       intercept=st.decimals(min_value=-4, max_value=2, places=4),
       weights=st.tuples(st.decimals(min_value="-0.05", max_value="0.05", places=4),
                         *[st.decimals(min_value=-2, max_value=2, places=4)] * 2,
                         st.decimals(min_value="-0.001", max_value="0.001", places=6),
                         st.decimals(min_value=-1, max_value=1, places=3)))  # fmt: skip
def test_any_history_in_any_arrival_order_gives_the_reference_value(
    items: list[Any], intercept: Decimal, weights: tuple[Decimal, ...]
) -> None:
    names = {f"w{i}": f"{w:f}" for i, w in enumerate(weights)}
    plan = make_plan(PROPERTY_PLAN.format(intercept=f"{intercept:f}", **names))
    spec = plan.by_name["conversion"].predicted
    assert spec is not None
    runner = Runner(plan)
    for one in items:
        changes = runner.feed(one)
        assert sum(1 for c in changes if str(c.cause) == "predicted") <= 1  # one per item
    z = reference_logit(items, intercept, list(weights))
    state = runner.states[KEY]
    model = explain(state, plan, "conversion").to_dict()["predicted"]
    assert Fraction(Decimal(model["logit"])) == z
    parts = sum((Decimal(f["contribution"]) for f in model["features"]), Decimal(0))
    assert Decimal(model["intercept"]) + parts == Decimal(model["logit"])
    expected = exact_basis_points(z)
    assume(expected is not None)
    assert runner.value("conversion") == model["basis_points"] == expected
