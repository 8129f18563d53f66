"""Validation of predicted scores (docs/plans.md, Predicted scores): every mistake named."""

from __future__ import annotations

import textwrap
from decimal import Decimal

import pytest
from scoring_helpers import make_plan

from streams.scoring import PlanError
from streams.scoring.model import EQUALS, HITS, NUMBER, SCORE, Feature

OTHERS = """
  - name: engagement
    entity: contact
    rules:
      - {id: pricing, on: page_visit, points: 30}
      - {id: saas, while: {attributes.industry: {eq: saas}}, points: 10}
  - name: deal-health
    entity: deal
    rules: [{id: stage, on: deal.stage_changed, points: 5}]
  - name: deal-members
    entity: deal
    rollup: {from: engagement, aggregate: sum}
  - name: other-prediction
    entity: contact
    predicted:
      model: m0
      intercept: 0
      features: [{name: e, score: engagement, weight: 1}]
"""
GOOD_FEATURES = """
- {name: engagement, score: engagement, weight: 0.0213}
- {name: pricing-14d, score: engagement, rule: pricing, within: 14d, weight: 0.41}
- {name: saas, attribute: industry, equals: saas, weight: 0.8}
- {name: employees, attribute: employees, weight: 0.0003, max: 10000}
"""


def plan_text(features: str = GOOD_FEATURES, *, head: str = "", score: str = "",
              entity: str = "contact", model: str = "conv-1", intercept: str = "-3.2104",
              lateness: str = "60d") -> str:  # fmt: skip
    body = textwrap.indent(textwrap.dedent(features).strip(), " " * 8)
    extra = textwrap.indent(textwrap.dedent(score).strip(), " " * 4)
    return (
        f"version: v1\nlateness: {lateness}\n{head}\nscores:{OTHERS}"
        f"  - name: conversion\n    entity: {entity}\n{extra}\n    predicted:\n"
        f"      model: {model}\n      intercept: {intercept}\n      features:\n{body}\n"
    )


def issues(text: str) -> list[tuple[str | None, str | None, str]]:
    with pytest.raises(PlanError) as caught:
        make_plan(text)
    return [(i.score, i.field, i.message) for i in caught.value.issues]


def test_the_format_compiles() -> None:
    plan = make_plan(plan_text(score="thresholds: [{name: likely, at: 5000}]"))
    score = plan.by_name["conversion"]
    assert score.predicted is not None
    assert (score.predicted.model, score.predicted.intercept) == ("conv-1", Decimal("-3.2104"))
    assert score.predicted.features == (
        Feature("engagement", SCORE, Decimal("0.0213"), score="engagement"),
        Feature("pricing-14d", HITS, Decimal("0.41"), score="engagement", rule="pricing",
                within_ms=14 * 86_400_000),
        Feature("saas", EQUALS, Decimal("0.8"), attribute="industry", equals="saas"),
        Feature("employees", NUMBER, Decimal("0.0003"), attribute="employees",
                low=Decimal(0), high=Decimal(10000)),
    )  # fmt: skip
    assert score.predicted.sources == ("engagement",)
    assert [s.name for s in plan.predicted_by_kind["contact"]] == ["other-prediction", "conversion"]
    assert score.rules == () and plan.predicted_by_kind["deal"] == ()


ONE = "predicted.features[0]"
CASES = [
    # a feature naming a score the plan does not have
    ("- {name: x, score: nope, weight: 1}", {}, f"{ONE}.score",
     "no score named 'nope' in the plan (known: conversion, deal-health, deal-members, "
     "engagement, other-prediction)"),
    # a feature naming a predicted score (no cycles)
    ("- {name: x, score: other-prediction, weight: 1}", {}, f"{ONE}.score",
     "score 'other-prediction' is predicted itself; features read scores that are not"),
    # a feature naming itself is the same mistake
    ("- {name: x, score: conversion, weight: 1}", {}, f"{ONE}.score",
     "score 'conversion' is predicted itself"),
    # a score of another entity
    ("- {name: x, score: deal-health, weight: 1}", {}, f"{ONE}.score",
     "score 'deal-health' is a deal score; this contact score's features read contact scores"),
    # a roll-up: its member updates do not re-evaluate predictions
    ("- {name: x, score: deal-members, weight: 1}", {"entity": "deal"}, f"{ONE}.score",
     "score 'deal-members' is a roll-up"),
    # a rule the score does not have
    ("- {name: x, score: engagement, rule: demo, within: 7d, weight: 1}", {}, f"{ONE}.rule",
     "score 'engagement' has no rule 'demo' (its rules: pricing, saas)"),
    # hits of a state rule
    ("- {name: x, score: engagement, rule: saas, within: 7d, weight: 1}", {}, f"{ONE}.rule",
     "rule 'saas' is a state ('while') rule"),
    # a window beyond the plan's lateness
    ("- {name: x, score: engagement, rule: pricing, within: 90d, weight: 1}", {},
     f"{ONE}.within", "must not exceed the plan's lateness (90d > 60d)"),
    # a rule without its window
    ("- {name: x, score: engagement, rule: pricing, weight: 1}", {}, f"{ONE}.within",
     "is required with 'rule'"),
    # a window without a rule
    ("- {name: x, score: engagement, within: 7d, weight: 1}", {}, f"{ONE}.within",
     "goes with 'rule'"),
    # of: neither count nor points
    ("- {name: x, score: engagement, rule: pricing, within: 7d, of: sum, weight: 1}", {},
     f"{ONE}.of", "must be one of count, points (got 'sum')"),
    # a numeric attribute without max
    ("- {name: x, attribute: employees, weight: 1}", {}, f"{ONE}.max", "is required"),
    # max beyond 10^12
    ("- {name: x, attribute: employees, weight: 1, max: 10000000000000}", {}, f"{ONE}.max",
     "must be a number from -10^12 to 10^12"),
    # min above max
    ("- {name: x, attribute: employees, weight: 1, min: 50, max: 10}", {}, f"{ONE}.min",
     "must not exceed max (50 > 10)"),
    # equals with a bound
    ("- {name: x, attribute: industry, equals: saas, max: 10, weight: 1}", {}, f"{ONE}.max",
     "goes with a numeric attribute, not 'equals'"),
    # equals null
    ("- {name: x, attribute: industry, equals: null, weight: 1}", {}, f"{ONE}.equals",
     "must be a text (at most 1000 characters), a number or a boolean (got null)"),
    # a deal's feature reads a deal property
    ("- {name: x, attribute: industry, equals: saas, weight: 1}", {"entity": "deal"},
     f"{ONE}.attribute", "must be a deal property: stage, pipeline, status, value"),
    # a contact attribute is one name
    ("- {name: x, attribute: attributes.a.b, equals: saas, weight: 1}", {}, f"{ONE}.attribute",
     "must be a contact attribute's name"),
    # neither score nor attribute
    ("- {name: x, weight: 1}", {}, ONE, "needs exactly one of 'score'"),
    # both
    ("- {name: x, score: engagement, attribute: industry, weight: 1}", {}, ONE,
     "needs exactly one of 'score'"),
    # a field of a score feature on an attribute one
    ("- {name: x, attribute: industry, equals: saas, rule: pricing, weight: 1}", {},
     f"{ONE}.rule", "goes with 'score', not 'attribute'"),
    # a weight that is text
    ("- {name: x, score: engagement, weight: '0.5'}", {}, f"{ONE}.weight",
     "must be a decimal number from -1,000,000 to 1,000,000 with at most 20 decimal places "
     "(got '0.5')"),
    # a weight with 21 decimal places
    ("- {name: x, score: engagement, weight: 0.000000000000000000001}", {}, f"{ONE}.weight",
     "at most 20 decimal places"),
    # a weight out of range
    ("- {name: x, score: engagement, weight: 1e7}", {}, f"{ONE}.weight",
     "from -1,000,000 to 1,000,000"),
    # a missing weight
    ("- {name: x, score: engagement}", {}, f"{ONE}.weight", "is required"),
    # a name that is no name
    ("- {name: 'no good', score: engagement, weight: 1}", {}, f"{ONE}.name", "must be a name"),
    # an unknown field
    ("- {name: x, score: engagement, weight: 1, scale: 2}", {}, f"{ONE}.scale",
     "unknown field"),
    # duplicate feature names
    ("- {name: x, score: engagement, weight: 1}\n- {name: x, attribute: a, equals: 1, "
     "weight: 1}", {}, "predicted.features[1].name", "duplicate feature name 'x'"),
    # 65 features
    ("\n".join(f"- {{name: f{i}, score: engagement, weight: 1}}" for i in range(65)), {},
     "predicted.features", "must be a list of 1 to 64 features (got 65 features)"),
    # no features
    ("[]", {}, "predicted.features", "must be a list of 1 to 64 features (got 0 features)"),
    # a model version of 101 characters
    (GOOD_FEATURES, {"model": "m" * 101}, "predicted.model", "must be text of 1-100 characters"),
    # an intercept that is no number
    (GOOD_FEATURES, {"intercept": "high"}, "predicted.intercept",
     "must be a decimal number from -1,000,000 to 1,000,000"),
    # rules on a predicted score
    (GOOD_FEATURES, {"score": "rules: [{id: r, on: page_visit, points: 1}]"}, "rules",
     "a predicted score takes none: its value is the model's probability"),
    # each field a predicted score cannot have
    (GOOD_FEATURES, {"score": "limits: {max: 10}"}, "limits", "a predicted score takes none"),
    (GOOD_FEATURES, {"score": "categories: {a: {max: 1}}"}, "categories",
     "a predicted score takes none"),
    (GOOD_FEATURES, {"score": "decay_granularity: 1d"}, "decay_granularity",
     "a predicted score takes none"),
    (GOOD_FEATURES, {"score": "inactivity: {after: 30d, points: -1}"}, "inactivity",
     "a predicted score takes none"),
    (GOOD_FEATURES, {"score": "quiet_hours: {policy: skip, windows: [{from: '22:00', "
                              "to: '07:00'}]}"}, "quiet_hours", "a predicted score takes none"),
    # thresholds and tiers in basis points
    (GOOD_FEATURES, {"score": "thresholds: [{name: sure, at: 20000}]"}, "thresholds",
     "threshold 'sure' at 20000 is never crossed: a predicted score's value is 0 to 10000"),
    (GOOD_FEATURES, {"score": "tiers: [{name: low, below: 12000}, {name: high}]"}, "tiers",
     "tier 'low' below 12000 is empty or holds every value"),
]  # fmt: skip


@pytest.mark.parametrize(("features", "options", "field", "message"), CASES,
                         ids=[f"{i}-{c[2]}" for i, c in enumerate(CASES)])  # fmt: skip
def test_each_mistake_is_named(
    features: str, options: dict[str, str], field: str, message: str
) -> None:
    found = issues(plan_text(features, **options))
    assert [(score, name) for score, name, _ in found] == [("conversion", field)], found
    assert message in found[0][2]


def test_an_account_score_cannot_be_predicted() -> None:
    found = issues(plan_text("- {name: x, score: engagement, weight: 1}", entity="account"))
    fields = [name for _, name, _ in found]
    assert "predicted" in fields
    assert ("conversion", "predicted", "a predicted score is kept for a contact or a deal, "
            "whose events and properties its features read") in found  # fmt: skip


def test_every_mistake_is_reported_at_once() -> None:
    features = """
    - {name: a, score: nope, weight: 1}
    - {name: b, score: engagement, rule: pricing, within: 90d, weight: x}
    - {name: c, attribute: employees, weight: 1}
    - {name: a, attribute: industry, equals: saas, weight: 1}
    """
    found = issues(plan_text(features, score="rules: []\nlimits: {max: 5}", model="''"))
    assert sorted(name or "" for _, name, _ in found) == sorted([
        "rules", "limits", "predicted.model", "predicted.features[1].weight",
        "predicted.features[2].max", "predicted.features[3].name",
    ])  # fmt: skip


def test_a_message_names_the_file_score_and_field() -> None:
    with pytest.raises(PlanError) as caught:
        make_plan(plan_text("- {name: x, score: engagement, rule: pricing, within: 90d, "
                            "weight: 1}"), source="learned.yaml")  # fmt: skip
    assert str(caught.value.issues[0]) == (
        "learned.yaml: score 'conversion', field 'predicted.features[0].within': must not "
        "exceed the plan's lateness (90d > 60d): older contributions are folded into totals, "
        "their times gone"
    )
