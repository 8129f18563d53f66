"""Aggregation (categories clamped, total clamped to limits) and threshold crossings."""

from __future__ import annotations

import math

from streams.scoring.plan.spec import Score


def clamp(value: int, low: int | None, high: int | None) -> int:
    if low is not None and value < low:
        return low
    if high is not None and value > high:
        return high
    return value


def category_values(score: Score, sums: dict[str | None, int]) -> dict[str, int]:
    """Each declared category's clamped value (categories without points count 0)."""
    return {
        name: clamp(sums.get(name, 0), category.min, category.max)
        for name, category in score.categories.items()
    }


def scaled_clamp(value: int, low: int | None, high: int | None, scale: int) -> int:
    """``clamp`` with bounds given in points and ``value`` in ``1/scale`` points."""
    if scale == 1:
        return clamp(value, low, high)
    return clamp(
        value, None if low is None else low * scale, None if high is None else high * scale
    )


def unlimited_total(score: Score, sums: dict[str | None, int], scale: int = 1) -> int:
    """Sum of clamped categories plus uncategorised points, before the score's limits (and
    before a roll-up's part), in ``1/scale`` points (decay sums in millionths).

    A declared category without points counts as ``clamp(0, min, max)``. Points of a category
    that is no longer declared (the plan changed) count as uncategorised.
    """
    categories = score.categories
    total = 0
    for name, points in sums.items():
        category = categories.get(name) if name is not None else None
        if category is not None:
            points = scaled_clamp(points, category.min, category.max, scale)
        total += points
    for name, category in categories.items():
        if name not in sums:
            total += scaled_clamp(0, category.min, category.max, scale)
    return total


def total(score: Score, sums: dict[str | None, int], rolled: int = 0) -> int:
    """The score's value: ``clamp(sum of clamped categories + uncategorised + the roll-up's
    part, limits)``."""
    return clamp(unlimited_total(score, sums) + rolled, score.min, score.max)


def crossings(score: Score, old: int, new: int) -> tuple[tuple[str, str], ...]:
    """Thresholds crossed from ``old`` to ``new``: up if old < at <= new, down if new < at <= old.

    Up crossings are listed in ascending ``at``, down crossings in descending ``at``.
    """
    if new > old:
        return tuple((t.name, "up") for t in score.thresholds if old < t.at <= new)
    if new < old:
        return tuple((t.name, "down") for t in reversed(score.thresholds) if new < t.at <= old)
    return ()


def tier_index(score: Score, value: int) -> int:
    """The position of the tier ``value`` falls in (-1 when the score has no tiers)."""
    tiers = score.tiers
    for i, tier in enumerate(tiers):
        below = tier.below
        if below is None or value < below:
            return i
    return len(tiers) - 1


def tier_of(score: Score, value: int) -> str | None:
    """The tier ``value`` falls in (None when the score has no tiers)."""
    index = tier_index(score, value)
    return score.tiers[index].name if index >= 0 else None


def reached(score: Score, value: int) -> tuple[str, ...]:
    """Names of the thresholds at or below ``value``, ascending."""
    return tuple(t.name for t in score.thresholds if t.at <= value)


def div_half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half to even (``denominator`` > 0)."""
    quotient = numerator // denominator  # (not ``divmod``: compiled, these two stay native)
    twice = 2 * (numerator - quotient * denominator)  # twice the remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def round_half_even(x: float) -> int:
    """``round(x)`` (half to even), in native operations when compiled: there ``round`` is a
    call by name, its float boxed. ``x - floor(x)`` is exact for ``x >= 0`` and ``x <= -0.5``;
    for ``-0.5 < x < 0`` it may round, but only within [0.5, 1), where the answer is 0 either
    way."""
    low = math.floor(x)
    rest = x - low
    if rest > 0.5 or (rest == 0.5 and low % 2 == 1):
        return low + 1
    return low
