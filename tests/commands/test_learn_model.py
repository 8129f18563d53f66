"""``leadscore learn``'s pure parts against hand computations: cutoffs, the time split, labels,
conversions, AUC, Brier score, deciles, the F1 threshold, the weights' conversion back to raw
units, and the candidate plan's text."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from streams.commands.calibrate import Conversions
from streams.commands.learn import (
    Feature,
    _decimal,
    best_f1_threshold,
    candidate_text,
    cutoffs,
    fit,
    label_of,
    parse_attribute,
    plain,
    predicted_entry,
    predicted_value,
    probability,
    propose,
    split,
)
from streams.commands.measures import auc, brier, deciles
from streams.scoring import Event, load_plan, parse_input
from streams.scoring.plan.reader import read_yaml

DAY = 86_400_000
PLAN = """\
version: hand-1
lateness: 10d
scores:
  - name: engagement
    entity: contact
    thresholds: [{name: mql, at: 60}]
    rules:
      - {id: pricing, on: page_visit, where: {url: {glob: "*/pricing*"}}, points: 20}
      - {id: reply, on: email.reply, points: 30}
      - {id: saas, while: {attributes.industry: {eq: saas}}, points: 5}
"""


def test_cutoffs_run_from_since_while_the_label_window_fits() -> None:
    assert cutoffs(0, 100 * DAY, 7 * DAY, 30 * DAY) == [d * DAY for d in range(0, 71, 7)]
    assert cutoffs(0, 30 * DAY, 7 * DAY, 30 * DAY) == [0]  # exactly fits
    assert cutoffs(0, 29 * DAY, 7 * DAY, 30 * DAY) == []


def test_the_split_holds_out_the_last_cutoffs_and_trains_on_windows_that_end_before() -> None:
    cuts = [d * DAY for d in range(0, 71, 7)]  # 11 cutoffs: 0, 7, ..., 70
    train, held = split(cuts, 0.3, 30 * DAY)
    # round(3.3) = 3 held out: 56, 63, 70; training labels must end by day 56: 0..21 + 30 <= 56
    assert held == [56 * DAY, 63 * DAY, 70 * DAY]
    assert train == [0, 7 * DAY, 14 * DAY, 21 * DAY]
    assert split(cuts[:1], 0.3, 30 * DAY) == ([], [0])  # at least one held out
    assert split([], 0.3, DAY) == ([], [])


def test_a_label_is_a_conversion_within_the_horizon_after_the_cutoff() -> None:
    horizon = 30 * DAY
    assert label_of([], 10 * DAY, horizon) is False
    assert label_of([10 * DAY + 1], 10 * DAY, horizon) is True
    assert label_of([40 * DAY], 10 * DAY, horizon) is True  # the window's end counts
    assert label_of([40 * DAY + 1], 10 * DAY, horizon) is False
    assert label_of([10 * DAY], 10 * DAY, horizon) is None  # converted already: no longer a lead
    assert label_of([5 * DAY, 20 * DAY], 10 * DAY, horizon) is None


def _event(kind: str, **fields: object) -> Event:
    item = parse_input({"type": kind, "event_id": "e", "occurred_at": 1, "contact_id": "c-1",
                        "deal_id": "d-1", **fields})  # fmt: skip
    assert isinstance(item, Event)
    return item


def test_conversions_count_purchases_won_deals_and_named_stages() -> None:
    buy = _event("purchase", order_id="o", amount="1.00", currency="EUR")
    won = _event("deal.stage_changed", pipeline="p", to_stage="Closed", status="won")
    stage = _event("deal.stage_changed", pipeline="p", to_stage="Signed", status="open")
    default = Conversions()
    assert default.of(buy, "contact") == ["c-1"] and default.of(buy, "deal") == []
    assert default.of(won, "contact") == ["c-1"] and default.of(won, "deal") == ["d-1"]
    assert default.of(stage, "deal") == []
    signed = Conversions.parse(["deal-won:Signed"])
    assert signed == Conversions(purchase=False, won=False, stages=("Signed",))
    assert isinstance(signed, Conversions)
    assert signed.of(stage, "deal") == ["d-1"] and signed.of(buy, "contact") == []
    assert signed.of(won, "deal") == []
    assert Conversions.parse(["purchase"]) == Conversions(purchase=True, won=False)
    assert Conversions.parse(None) == Conversions.parse([]) == default
    assert "expected purchase, deal-won or deal-won:STAGE (got 'sale')" in str(
        Conversions.parse(["sale"]))  # fmt: skip
    assert default.describe() == "a purchase or a deal won"


def test_auc_is_the_share_of_converter_other_pairs_ranked_right_ties_a_half() -> None:
    # converters 0.9, 0.4, 0.4; others 0.4, 0.2: pairs (9 vs 4) 1, (9 vs 2) 1, (4 vs 4) 1/2
    # twice, (4 vs 2) 1 twice: (1 + 1 + 0.5 + 0.5 + 1 + 1) / 6
    scores = [0.9, 0.4, 0.4, 0.4, 0.2]
    labels = [True, True, True, False, False]
    assert auc(scores, labels) == pytest.approx(5 / 6)
    from sklearn.metrics import roc_auc_score

    assert auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert auc([1, 2], [True, True]) is None


def test_brier_is_the_mean_squared_error_of_the_probabilities() -> None:
    assert brier([0.8, 0.1, 0.5], [True, False, False]) == pytest.approx((0.04 + 0.01 + 0.25) / 3)
    assert brier([], []) is None


def test_deciles_share_tied_entities_in_proportion() -> None:
    # 20 entities: 10 at score 5 (4 converted), 10 at score 1 (1 converted). Deciles of 2 from
    # the top: the first five take the 5s (0.8 converters each), the last five the 1s.
    scores = [5.0] * 10 + [1.0] * 10
    labels = [True] * 4 + [False] * 6 + [True] + [False] * 9
    got = deciles(scores, labels, probabilities=[0.3] * 10 + [0.1] * 10)
    assert [d["entities"] for d in got] == pytest.approx([2.0] * 10)
    assert [d["converters"] for d in got] == pytest.approx([0.8] * 5 + [0.2] * 5)
    assert got[0]["lift"] == pytest.approx(0.4 / 0.25)
    assert got[0]["mean_predicted"] == pytest.approx(0.3)
    # a run of ties across a boundary: 3 entities at 9 (1 converted) and 17 below
    below = [i / 10 for i in range(17)]
    three = deciles([9.0] * 3 + below, [True, False, False] + [False] * 17)
    assert three[0]["entities"] == pytest.approx(2) and three[0]["converters"] == pytest.approx(
        2 / 3
    )
    assert three[1]["converters"] == pytest.approx(1 / 3)
    assert "mean_predicted" not in three[0]


def test_the_f1_threshold_is_the_value_with_the_best_f1() -> None:
    # 4 converters of 8: at >= 90: 2 of 2 (F1 2*2/(2+4) = 0.667); >= 50: 3 of 4 (6/8 = 0.75);
    # >= 10: 4 of 8 (8/12 = 0.667)
    values = [90, 90, 50, 50, 10, 10, 10, 10]
    labels = [True, True, True, False, True, False, False, False]
    assert best_f1_threshold(values, labels) == 50
    assert best_f1_threshold(values, [False] * 8) is None


def test_weights_in_raw_units_give_the_fitted_probabilities() -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rnd = np.random.default_rng(3)
    x = np.column_stack([rnd.integers(0, 6, 400), rnd.normal(500, 200, 400),
                         np.full(400, 7.0), rnd.integers(0, 2, 400)])  # fmt: skip
    x = np.column_stack([x, x[:, 0]])  # the last column repeats the first
    y = rnd.random(400) < 1 / (1 + np.exp(-(-2 + 0.6 * x[:, 0] + 0.002 * x[:, 1])))
    model = fit(x.tolist(), y.tolist(), 1.0)
    assert model.used == [True, True, False, True, False]  # constant, then a repeat: left out
    assert model.weights[2] == model.weights[4] == 0.0
    used = [0, 1, 3]
    z = (x[:, used] - x[:, used].mean(axis=0)) / x[:, used].std(axis=0)
    reference = LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000).fit(z, y)
    assert model.standardised[1] == pytest.approx(reference.coef_[0][1])
    expected = reference.predict_proba(z)[:, 1]
    got = [probability(model.intercept, model.weights, row) for row in x.tolist()]
    assert got == pytest.approx(expected.tolist(), abs=1e-9)
    assert model.weights[0] == pytest.approx(model.standardised[0] / x[:, 0].std())


def test_weights_are_written_to_six_significant_digits_without_exponents() -> None:
    assert _decimal(0.0213456789) == Decimal("0.0213457")
    assert _decimal(-3.21049999) == Decimal("-3.2105")
    assert _decimal(4.6924e-05) == Decimal("0.000046924")
    assert _decimal(1234567.8) == Decimal("1234568")
    assert _decimal(1e-25) == Decimal(0)  # below the 20 decimal places a weight may have
    assert _decimal(0.0) == Decimal(0) and _decimal(math.nan) == Decimal(0)
    assert plain(_decimal(1.5e-7)) == "0.00000015"  # (as the plan and the report write it)


def test_features_are_proposed_from_the_score_and_its_rules() -> None:
    plan = load_plan(PLAN, source="p")
    score = plan.by_name["engagement"]
    features, notes = propose(plan, score, windows_ms=(7 * DAY, 14 * DAY),
                              attributes=[("industry", "saas"), ("employees", None)],
                              numeric_max={"employees": 500})  # fmt: skip
    assert [f.name for f in features] == ["engagement", "pricing-7d", "reply-7d",
                                          "industry-saas", "employees"]  # fmt: skip
    assert features[1] == Feature("pricing-7d", score="engagement", rule="pricing",
                                  within_ms=7 * DAY)  # fmt: skip
    assert features[4].max == 500 and features[3].equals == "saas"
    assert any("window 14d left out: longer than the plan's lateness (10d)" in n for n in notes)
    assert any("rule saas left out: a state rule has no hits" in n for n in notes)
    assert parse_attribute("size=10") == ("size", "10") and parse_attribute("size") == (
        "size",
        None,
    )
    assert "expected NAME or NAME=VALUE" in str(parse_attribute("size="))


def test_the_candidate_is_the_plan_plus_the_predicted_score_and_reads_back() -> None:
    plan = load_plan(PLAN, source="p")
    features, _ = propose(plan, plan.by_name["engagement"], windows_ms=(7 * DAY,),
                          attributes=[("industry", "saas"), ("employees", None)],
                          numeric_max={"employees": 500})  # fmt: skip
    weights = [Decimal("0.0213"), Decimal("0.41"), Decimal("1.5"), Decimal("0.8"),
               Decimal("0.000046924")]  # fmt: skip
    weighted = list(zip(features, weights, strict=True))
    entry = predicted_entry("conversion", "contact", "conv-1", Decimal("-3.2104"), weighted,
                            [("likely", 5000)])  # fmt: skip
    text = candidate_text(PLAN, "hand-1+learned", entry, "a header\nof two lines")
    assert text.startswith("# a header\n# of two lines\nversion: hand-1+learned\n")
    before, _ = read_yaml(PLAN)
    after, _ = read_yaml(text)
    assert after["scores"][0] == before["scores"][0] and after["lateness"] == "10d"
    assert after["scores"][1]["predicted"]["features"][1] == {
        "name": "pricing-7d", "score": "engagement", "rule": "pricing", "within": "7d",
        "weight": Decimal("0.41")}  # fmt: skip
    candidate = load_plan(text, source="candidate")
    spec = candidate.by_name["conversion"].predicted
    assert spec is not None and spec.model == "conv-1" and spec.intercept == Decimal("-3.2104")
    assert [f.weight for f in spec.features] == weights
    assert candidate.by_name["conversion"].thresholds[0].at == 5000
    # the core's own value: z = -3.2104 + 0.0213 * 50 + 0.41 * 2 + 1.5 * 1 = 0.1746: 5435 bp
    values = [Decimal(50), Decimal(2), Decimal(1), Decimal(0), Decimal(0)]
    z = -3.2104 + 0.0213 * 50 + 0.41 * 2 + 1.5
    assert predicted_value(candidate, "conversion", values) == round(10_000 / (1 + math.exp(-z)))
    assert predicted_value(candidate, "conversion", values) == 5435
