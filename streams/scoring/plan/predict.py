"""Validation of a predicted score (``predicted``: its model; see ``model`` and ``predict``)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from streams.scoring.conditions import plan_number
from streams.scoring.durations import format_duration
from streams.scoring.model import EQUALS, HITS, NUMBER, SCORE, Feature, Operand, Predicted
from streams.scoring.plan.checks import Context, duration, fields_of, plain, text
from streams.scoring.plan.spec import Score
from streams.scoring.predict import SCALE

PREDICTED_FIELDS: Final = ("model", "intercept", "features")
FEATURE_FIELDS: Final = (
    "name", "weight", "score", "rule", "within", "of", "attribute", "equals", "min", "max",
)  # fmt: skip
#: Score fields a predicted score cannot have: its value is computed, not a fold of points.
NOT_PREDICTED: Final = (
    "rules", "decay_granularity", "inactivity", "quiet_hours", "limits", "categories", "rollup",
)  # fmt: skip
MAX_FEATURES: Final = 64
MAX_MODEL: Final = 100
MAX_WEIGHT: Final = Decimal(10) ** 6
WEIGHT_PLACES: Final = 20
MAX_BOUND: Final = Decimal(10) ** 12
BOUND_PLACES: Final = 6
MAX_EQUALS: Final = 1000
#: The deal properties a feature can read (a contact's: any attribute).
DEAL_PROPERTIES: Final = ("stage", "pipeline", "status", "value")


def predicted_of(
    ctx: Context, raw: object, spec: Mapping[str, Any], entity: str | None
) -> Predicted | None:
    """``predicted: {model, intercept, features: [...]}``; also refuses the score's fields a
    predicted score cannot have."""
    for name in NOT_PREDICTED:
        if name in spec:
            ctx.report(name, "a predicted score takes none: its value is the model's "
                             "probability, computed from its features")  # fmt: skip
    if entity == "account":
        ctx.report("predicted", "a predicted score is kept for a contact or a deal, whose "
                                "events and properties its features read")  # fmt: skip
    body = fields_of(ctx, raw, "predicted", allowed=PREDICTED_FIELDS, required=PREDICTED_FIELDS)
    if body is None:
        return None
    failed = len(ctx.issues)
    model = body.get("model")
    if "model" in body and (not isinstance(model, str) or not 0 < len(model) <= MAX_MODEL):
        ctx.report("predicted.model", f"must be text of 1-{MAX_MODEL} characters, the model's "
                                      f"version (got {plain(model)})")  # fmt: skip
    intercept = _number(ctx, body["intercept"], "predicted.intercept") if "intercept" in body \
        else None  # fmt: skip
    raw_features = body.get("features")
    features: list[Feature] = []
    if "features" in body:
        if not isinstance(raw_features, list) or not 0 < len(raw_features) <= MAX_FEATURES:
            count = f"{len(raw_features)} features" if isinstance(raw_features, list) else \
                plain(raw_features)  # fmt: skip
            ctx.report("predicted.features", f"must be a list of 1 to {MAX_FEATURES} features "
                                             f"(got {count})")  # fmt: skip
        else:
            names: set[str] = set()
            for i, item in enumerate(raw_features):
                where = f"predicted.features[{i}]"
                feature = _feature(ctx, item, where, entity or "contact")
                if feature is None:
                    continue
                if feature.name in names:
                    ctx.report(f"{where}.name", f"duplicate feature name {plain(feature.name)} "
                                                "in this score")  # fmt: skip
                names.add(feature.name)
                features.append(feature)
    if len(ctx.issues) != failed or not isinstance(model, str) or intercept is None:
        return None
    sources: list[str] = []
    for feature in features:
        if feature.score and feature.score not in sources:
            sources.append(feature.score)
    return Predicted(model, intercept, tuple(features), tuple(sources))


def _feature(ctx: Context, raw: object, where: str, entity: str) -> Feature | None:
    spec = fields_of(ctx, raw, where, allowed=FEATURE_FIELDS, required=("name", "weight"))
    if spec is None:
        return None
    failed = len(ctx.issues)
    name = text(ctx, spec["name"], f"{where}.name") if "name" in spec else None
    weight = _number(ctx, spec["weight"], f"{where}.weight") if "weight" in spec else None
    if ("score" in spec) == ("attribute" in spec):
        ctx.report(where, "needs exactly one of 'score' (a score's value, or with 'rule' its "
                          "hits) or 'attribute' (a property's value)")  # fmt: skip
        return None
    if "score" in spec:
        feature = _score_feature(ctx, spec, where)
    else:
        feature = _attribute_feature(ctx, spec, where, entity)
    if len(ctx.issues) != failed or feature is None or name is None or weight is None:
        return None
    return Feature(name, feature.kind, weight, feature.score, feature.rule, feature.within_ms,
                   feature.points, feature.attribute, feature.equals, feature.low,
                   feature.high)  # fmt: skip


def _only(ctx: Context, spec: Mapping[str, Any], where: str, names: tuple[str, ...],
          why: str) -> None:  # fmt: skip
    for name in names:
        if name in spec:
            ctx.report(f"{where}.{name}", why)


def _score_feature(ctx: Context, spec: Mapping[str, Any], where: str) -> Feature | None:
    _only(ctx, spec, where, ("equals", "min", "max"), "goes with 'attribute', not 'score'")
    score = text(ctx, spec["score"], f"{where}.score")
    if "rule" not in spec:
        _only(ctx, spec, where, ("within", "of"), "goes with 'rule' (a rule's hits)")
        return None if score is None else Feature("", SCORE, Decimal(0), score=score)
    rule = text(ctx, spec["rule"], f"{where}.rule")
    within = None
    if "within" not in spec:
        ctx.report(f"{where}.within", "is required with 'rule': how far back from the "
                                      "entity's latest event hits count, e.g. 14d")  # fmt: skip
    else:
        within = duration(ctx, spec["within"], f"{where}.within")
    of = text(ctx, spec.get("of", "count"), f"{where}.of", choices=("count", "points"))
    if score is None or rule is None or within is None or of is None:
        return None
    return Feature("", HITS, Decimal(0), score=score, rule=rule, within_ms=within,
                   points=of == "points")  # fmt: skip


def _attribute_feature(
    ctx: Context, spec: Mapping[str, Any], where: str, entity: str
) -> Feature | None:
    _only(ctx, spec, where, ("rule", "within", "of"), "goes with 'score', not 'attribute'")
    attribute = _attribute(ctx, spec["attribute"], f"{where}.attribute", entity)
    if "equals" in spec:
        _only(ctx, spec, where, ("min", "max"), "goes with a numeric attribute, not 'equals'")
        equals = _operand(ctx, spec["equals"], f"{where}.equals")
        if attribute is None or equals is None:
            return None
        return Feature("", EQUALS, Decimal(0), attribute=attribute, equals=equals)
    low = _bound(ctx, spec["min"], f"{where}.min") if "min" in spec else Decimal(0)
    high = None
    if "max" not in spec:
        ctx.report(f"{where}.max", "is required for a numeric attribute (its value is clamped "
                                   "to [min, max]), or give 'equals' to compare it")  # fmt: skip
    else:
        high = _bound(ctx, spec["max"], f"{where}.max")
    if low is not None and high is not None and low > high:
        ctx.report(f"{where}.min", f"must not exceed max ({low} > {high})")
        return None
    if attribute is None or low is None or high is None:
        return None
    return Feature("", NUMBER, Decimal(0), attribute=attribute, low=low, high=high)


def _attribute(ctx: Context, raw: object, where: str, entity: str) -> str | None:
    if entity == "deal":
        if raw in DEAL_PROPERTIES:
            return str(raw)
        ctx.report(where, f"must be a deal property: {', '.join(DEAL_PROPERTIES)} "
                          f"(got {plain(raw)})")  # fmt: skip
        return None
    name = raw[len("attributes."):] if isinstance(raw, str) and raw.startswith("attributes.") \
        else raw  # fmt: skip
    if isinstance(name, str) and 0 < len(name) <= 256 and "." not in name:
        return name
    ctx.report(
        where,
        "must be a contact attribute's name (e.g. industry, or "
        f"attributes.industry), 1-256 characters without '.' (got {plain(raw)})",
    )
    return None


def _operand(ctx: Context, raw: object, where: str) -> Operand | None:
    if type(raw) is bool or (type(raw) is str and len(raw) <= MAX_EQUALS):
        return raw
    number = plan_number(raw)
    if number is not None:
        return number
    ctx.report(where, f"must be a text (at most {MAX_EQUALS} characters), a number or a "
                      f"boolean (got {plain(raw)})")  # fmt: skip
    return None


def _number(ctx: Context, raw: object, where: str) -> Decimal | None:
    """A weight or the intercept: a decimal within +-10^6, at most 20 decimal places."""
    number = plan_number(raw)
    if number is not None and abs(number) <= MAX_WEIGHT and _places(number) <= WEIGHT_PLACES:
        return number
    ctx.report(where, f"must be a decimal number from -1,000,000 to 1,000,000 with at most "
                      f"{WEIGHT_PLACES} decimal places (got {plain(raw)})")  # fmt: skip
    return None


def _bound(ctx: Context, raw: object, where: str) -> Decimal | None:
    number = plan_number(raw)
    if number is not None and abs(number) <= MAX_BOUND and _places(number) <= BOUND_PLACES:
        return number
    ctx.report(where, f"must be a number from -10^12 to 10^12 with at most {BOUND_PLACES} "
                      f"decimal places (got {plain(raw)})")  # fmt: skip
    return None


def _places(number: Decimal) -> int:
    exponent = number.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def check_predicted(ctx: Context, scores: Mapping[str, Score], lateness_ms: int) -> None:
    """What a predicted score's features name exists, on the same entity, and is not
    predicted (so there are no cycles); a hits window fits the plan's lateness; its
    thresholds and tiers lie within 0-10000 basis points."""
    for score in scores.values():
        spec = score.predicted
        if spec is None:
            continue
        here = ctx.within(score=score.name)
        for i, feature in enumerate(spec.features):
            where = f"predicted.features[{i}]"
            if feature.kind in (SCORE, HITS):
                _source(here, scores, score, feature, where)
            if feature.kind == HITS and feature.within_ms > lateness_ms:
                here.report(f"{where}.within", f"must not exceed the plan's lateness "
                            f"({format_duration(feature.within_ms)} > "
                            f"{format_duration(lateness_ms)}): older contributions are folded "
                            "into totals, their times gone")  # fmt: skip
        _bands(here, score)


def _source(ctx: Context, scores: Mapping[str, Score], score: Score, feature: Feature,
            where: str) -> None:  # fmt: skip
    source = scores.get(feature.score)
    if source is None:
        ctx.report(f"{where}.score", f"no score named {plain(feature.score)} in the plan "
                                     f"(known: {', '.join(sorted(scores))})")  # fmt: skip
    elif source.entity != score.entity:
        ctx.report(f"{where}.score", f"score {plain(source.name)} is a {source.entity} score; "
                                     f"this {score.entity} score's features read "
                                     f"{score.entity} scores")  # fmt: skip
    elif source.predicted is not None:
        ctx.report(f"{where}.score", f"score {plain(source.name)} is predicted itself; features "
                                     "read scores that are not")  # fmt: skip
    elif source.rollup is not None:
        ctx.report(f"{where}.score", f"score {plain(source.name)} is a roll-up: its members' "
                                     "updates do not re-evaluate predictions")  # fmt: skip
    elif feature.kind == HITS:
        rule = source.rule_by_id.get(feature.rule)
        if rule is None:
            known = ", ".join(source.rule_by_id) or "none"
            ctx.report(f"{where}.rule", f"score {plain(source.name)} has no rule "
                                        f"{plain(feature.rule)} (its rules: {known})")  # fmt: skip
        elif rule.is_state_rule:
            ctx.report(f"{where}.rule", f"rule {plain(feature.rule)} is a state ('while') rule: "
                                        "hits count the awards of event rules")  # fmt: skip


def _bands(ctx: Context, score: Score) -> None:
    for threshold in score.thresholds:
        if not 0 < threshold.at <= SCALE:
            ctx.report("thresholds", f"threshold {plain(threshold.name)} at {threshold.at} is "
                                     "never crossed: a predicted score's value is 0 to 10000 "
                                     "basis points")  # fmt: skip
    for tier in score.tiers:
        if tier.below is not None and not 0 < tier.below <= SCALE:
            ctx.report("tiers", f"tier {plain(tier.name)} below {tier.below} is empty or holds "
                                "every value: a predicted score's value is 0 to 10000 basis "
                                "points")  # fmt: skip
