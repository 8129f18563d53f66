"""Predicted scores (docs/plans.md, Predicted scores): a conversion probability, live.

The value is the probability in basis points (0..10000) of a logistic model over the entity's
features: ``z = intercept + sum(weight * x)``, ``p = 1 / (1 + e^-z)``, value = ``p * 10000``
rounded half-even. Everything is ``Decimal``, never a float, so the compiled and pure builds,
the service, the offline scorer and replays give the same value to the unit:

- ``z`` is exact: weights and the intercept are the plan's decimals (at most 20 decimal
  places), features are integers or decimals of at most six places, and the sum runs in a
  context of unbounded precision (``decimal.MAX_PREC``: exact sums and products);
- ``z`` is clamped to [-60, 60] (the value is 0 or 10000 long before), then ``p`` is computed
  in a fixed context (34 digits, half-even): ``exp`` is correctly rounded, and so are the
  addition and the division.

Features are read from the entity's state (nothing of them is stored): another score's value,
hits of one of its rules within a window before the entity's watermark (its newest event
time, never the clock), a contact attribute or deal property. The value is kept in the
score's ledger as ``rolled`` (see ``model``), and re-evaluated by ``refresh`` after each item
applied to the entity and each time step (``engine``).
"""

from __future__ import annotations

from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal
from typing import Any, Final

from streams.scoring.adjust import apply_adjustment
from streams.scoring.aggregate import total
from streams.scoring.conditions import to_number
from streams.scoring.emit import emit
from streams.scoring.events import Adjustment, EntityKey
from streams.scoring.model import EQUALS, HITS, NUMBER, SCORE, Feature, Predicted
from streams.scoring.outcomes import Cause, ScoreChange, ScoreResult, score_result
from streams.scoring.plan.spec import Plan, Score
from streams.scoring.state import C_OCCURRED, C_POINTS, C_RULE, EntityState, Ledger

#: The rule id of a predicted score's changes.
RULE: Final = "predicted"
#: Basis points: the value of a probability of 1.
SCALE: Final = 10_000
#: ``z`` is clamped to [-Z_BOUND, Z_BOUND] before ``exp`` (e^-60 is far below a basis point).
Z_BOUND: Final = Decimal(60)
#: Numeric attributes count to this many decimal places (so ``z`` stays short).
NUMBER_PLACES: Final = Decimal("0.000001")

_EXACT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, rounding=ROUND_HALF_EVEN)
_FIXED: Final = Context(prec=34, Emax=999_999, Emin=-999_999, rounding=ROUND_HALF_EVEN)
_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
#: Basis points by logit, for the live path: ``exp`` at 34 digits costs tens of microseconds,
#: and the same logits recur (small integer features). Cleared when full; a pure function's
#: results, so it changes no value.
_MEMO: dict[Decimal, int] = {}
MEMO_SIZE: Final = 4096


def feature_values(
    entity: EntityState | None, kind: str, spec: Predicted, plan: Plan
) -> tuple[Decimal, ...]:
    """The value of each feature of ``spec`` (``plan.by_name[name].predicted``, a
    ``model.Predicted``) for an entity of ``kind`` (``contact`` or ``deal``), in the order of
    ``spec.features``; ``entity`` None is an entity with no state yet (every feature at its
    empty value). The live path and the learner both call this.
    """
    values: list[Decimal] = []
    for feature in spec.features:
        values.append(_feature(entity, feature, spec, plan))
    return tuple(values)


def _feature(entity: EntityState | None, feature: Feature, spec: Predicted, plan: Plan) -> Decimal:
    kind_of = feature.kind
    if kind_of == SCORE:
        ledger = entity.scores.get(feature.score) if entity is not None else None
        if ledger is not None:
            return Decimal(ledger.total)
        empty = spec.empty.get(feature.score)  # (a score the entity has no ledger of yet)
        if empty is None:
            empty = spec.empty[feature.score] = Decimal(total(plan.by_name[feature.score], {}))
        return empty
    if kind_of == HITS:
        return Decimal(_hits(entity, feature))
    value = entity.props.get(feature.attribute) if entity is not None else None
    current = value[0] if value is not None else None
    if kind_of == EQUALS:
        return _ONE if _equal(current, feature.equals) else _ZERO
    assert kind_of == NUMBER  # noqa: S101 - the four kinds are closed
    number = to_number(current)  # (None for a boolean, a text that is no number, or missing)
    if number is None:
        number = _ZERO
    if number < feature.low:
        number = feature.low
    elif number > feature.high:
        number = feature.high
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -6:  # (more than six places: rounded)
        return number.quantize(NUMBER_PLACES, rounding=ROUND_HALF_EVEN, context=_EXACT)
    return number


def _hits(entity: EntityState | None, feature: Feature) -> int:
    """Live contributions of the rule in ``[watermark - within, watermark]`` (count or points)."""
    if entity is None or entity.watermark_ms is None:
        return 0
    ledger = entity.scores.get(feature.score)
    if ledger is None:
        return 0
    until = entity.watermark_ms
    since = until - feature.within_ms
    rule = feature.rule
    points = feature.points
    hits = 0
    for contrib in ledger.contribs:
        if contrib[C_RULE] == rule and since <= contrib[C_OCCURRED] <= until:
            hits += contrib[C_POINTS] if points else 1
    return hits


def _equal(value: object, operand: object) -> bool:
    """As the plan's ``eq`` condition: booleans equal booleans, text equals text, a number
    equals a number or a text holding it."""
    if type(operand) is bool:
        return value is operand
    if type(operand) is str:
        return type(value) is str and value == operand
    if type(value) is bool or value is None:
        return False
    number = to_number(value)
    return number is not None and number == operand


def logit(spec: Predicted, values: tuple[Decimal, ...]) -> Decimal:
    """``intercept + sum(weight * value)``, exact."""
    z = spec.intercept
    for feature, value in zip(spec.features, values, strict=True):
        if value:
            z = _EXACT.add(z, _EXACT.multiply(feature.weight, value))
    return z


def probability(z: Decimal) -> Decimal:
    """``1 / (1 + e^-z)`` with ``z`` clamped to [-60, 60], in the fixed 34-digit context."""
    if z > Z_BOUND:
        z = Z_BOUND
    elif z < -Z_BOUND:
        z = -Z_BOUND
    return _FIXED.divide(_ONE, _FIXED.add(_ONE, _FIXED.exp(_FIXED.minus(z))))


def basis_points(p: Decimal) -> int:
    """``p * 10000`` rounded half-even to an integer."""
    return int(_FIXED.multiply(p, Decimal(SCALE)).quantize(_ONE, rounding=ROUND_HALF_EVEN))


def value_of(entity: EntityState | None, kind: str, spec: Predicted, plan: Plan) -> int:
    """The predicted score's value for the entity now, in basis points: ``basis_points(
    probability(logit(spec, feature_values(...))))``, remembered by logit."""
    z = logit(spec, feature_values(entity, kind, spec, plan))
    value = _MEMO.get(z)
    if value is None:
        if len(_MEMO) >= MEMO_SIZE:
            _MEMO.clear()
        value = _MEMO[z] = basis_points(probability(z))
    return value


def refresh(
    entity: EntityState,
    key: EntityKey,
    scores: tuple[Score, ...],
    plan: Plan,
    changes: list[ScoreChange],
    source_id: str,
    at_ms: int,
) -> None:
    """Re-evaluate the entity's predicted ``scores``; a change (cause ``predicted``, rule id
    ``predicted``) for each whose value moved, through ``emit`` (thresholds and tiers)."""
    for score in scores:
        spec = score.predicted
        if spec is None:
            continue
        ledger = entity.scores.get(score.name)
        if ledger is None:  # it starts at the prior (no feature yet): its first change is news
            ledger = entity.scores[score.name] = Ledger()
            ledger.rolled = ledger.total = value_of(None, key.kind, spec, plan)
        ledger.rolled = value_of(entity, key.kind, spec, plan)
        emit(changes, ledger, score, key, plan, Cause.PREDICTED, (RULE,), source_id, at_ms)


def step_source(changes: list[ScoreChange], start: int, due_ms: int) -> tuple[str, int]:
    """What a time step's predicted changes carry: the source and instant of its last change
    (from ``start``; the changes of a step are in time order), else none and ``due_ms``."""
    if len(changes) > start:
        last = changes[-1]
        return last.source_event_id, last.occurred_at_ms
    return "", due_ms


def adjust(
    entity: EntityState,
    key: EntityKey,
    command: Adjustment,
    trigger: int,
    plan: Plan,
    now_ms: int,
    changes: list[ScoreChange],
) -> tuple[ScoreResult, ...]:
    """An adjustment; one of a predicted score is refused as for a score the entity does not
    have (its value is computed: there is nothing to add to)."""
    score = plan.by_name.get(command.score)
    if score is None or score.predicted is None:
        return apply_adjustment(entity, key, command, trigger, plan, now_ms, changes)
    nowhere = command._replace(score="")  # (no score has an empty name)
    results = apply_adjustment(entity, key, nowhere, trigger, plan, now_ms, changes)
    return tuple(score_result(command.score, r.verdict, r.awards) for r in results)


def explain_view(entity: EntityState | None, score: Score, plan: Plan) -> dict[str, Any] | None:
    """A predicted score's model and features for explain (None for other scores): the
    logit, probability and value, each feature's value, weight and contribution (exact
    decimals as text), and the three largest contributions of each sign."""
    spec = score.predicted
    if spec is None:
        return None
    values = feature_values(entity, score.entity, spec, plan)
    z = logit(spec, values)
    p = probability(z)
    parts = [_EXACT.multiply(f.weight, v) for f, v in zip(spec.features, values, strict=True)]
    rows = [
        {"name": f.name, "value": str(v), "weight": str(f.weight), "contribution": str(part),
         **_source(f)}
        for f, v, part in zip(spec.features, values, parts, strict=True)
    ]  # fmt: skip
    named = list(zip(parts, [f.name for f in spec.features], strict=True))
    positive = sorted((c for c in named if c[0] > 0), key=lambda c: -c[0])  # (stable: plan order)
    negative = sorted((c for c in named if c[0] < 0), key=lambda c: c[0])
    return {
        "model": spec.model,
        "intercept": str(spec.intercept),
        "logit": str(z),
        "probability": str(p),
        "basis_points": basis_points(p),
        "features": rows,
        "top_positive": [name for _, name in positive[:3]],
        "top_negative": [name for _, name in negative[:3]],
    }


def _source(feature: Feature) -> dict[str, Any]:
    if feature.kind == SCORE:
        return {"score": feature.score}
    if feature.kind == HITS:
        return {"score": feature.score, "rule": feature.rule, "within_ms": feature.within_ms,
                "of": "points" if feature.points else "count"}  # fmt: skip
    if feature.kind == EQUALS:
        equals = feature.equals
        return {"attribute": feature.attribute,
                "equals": str(equals) if type(equals) is Decimal else equals}  # fmt: skip
    return {"attribute": feature.attribute, "min": str(feature.low), "max": str(feature.high)}


__all__ = ["RULE", "basis_points", "feature_values", "logit", "probability", "refresh",
           "value_of"]  # fmt: skip
