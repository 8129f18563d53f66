"""Points of an award: a constant, or value-weighted from a numeric field (exact decimals)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from streams.scoring.conditions import to_number
from streams.scoring.plan.spec import MAX_POINTS, Points

_CONTEXT = Context(prec=60)
#: Values weighted: as event amounts, below 10^18 in magnitude (a text attribute could hold
#: ``1e999999``, whose product would overflow the exact arithmetic).
_MAX_VALUE = Decimal(10) ** 18


def award_points(points: Points, fields: dict[str, Any]) -> int | None:
    """Points for an item with these fields; None if a value-weighted field has no number (or
    one of 10^18 or more in magnitude).

    ``round_half_even(value * multiply + add)``, then clamped to ``min``/``max`` and to
    +/- ``MAX_POINTS``.
    """
    if type(points) is int:
        return points
    assert not isinstance(points, int)  # noqa: S101 - narrowing for mypy
    value = to_number(points.get(fields))
    if value is None or value.copy_abs() >= _MAX_VALUE:
        return None
    try:
        raw = _CONTEXT.add(_CONTEXT.multiply(value, points.multiply), points.add)
        whole = int(raw.to_integral_value(rounding=ROUND_HALF_EVEN, context=_CONTEXT))
    except ArithmeticError:  # pragma: no cover - values and factors are bounded
        return None
    if points.min is not None and whole < points.min:
        whole = points.min
    if points.max is not None and whole > points.max:
        whole = points.max
    return max(-MAX_POINTS, min(MAX_POINTS, whole))


def round_half_even(value: Decimal) -> int:
    """Round a Decimal half-to-even to an int (exposed for tests and docs)."""
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN, context=_CONTEXT))
