"""Validation of the time-driven parts of a plan: a rule's ``decay``, a score's
``decay_granularity`` (see ``decay``) and ``inactivity`` (see ``inactivity``)."""

from __future__ import annotations

from decimal import Decimal

from streams.scoring.conditions import plan_number
from streams.scoring.durations import format_duration
from streams.scoring.plan.checks import Context, duration, fields_of, integer, text
from streams.scoring.plan.spec import MAX_POINTS, Category, Decay, Inactivity
from streams.scoring.shown import shown

DECAY_KINDS = ("half_life", "linear_to_zero", "steps")
#: At most this many steps in a schedule.
MAX_STEPS = 32


def decay_of(ctx: Context, raw: object) -> Decay | None:
    """``{half_life: 30d}`` | ``{linear_to_zero: 90d}`` | ``{steps: [[30d, 0.5], [90d, 0]]}``."""
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in DECAY_KINDS:
        ctx.report(
            "decay",
            "must be a mapping with exactly one of half_life (a duration), linear_to_zero "
            "(a duration) or steps (a list of [age, factor]), e.g. {half_life: 30d} "
            f"(got {shown(raw)})",
        )
        return None
    kind, value = next(iter(raw.items()))
    if kind == "steps":
        return _steps(ctx, value)
    length = duration(ctx, value, f"decay.{kind}")
    if length is None:
        return None
    return Decay("half_life" if kind == "half_life" else "linear_to_zero", length)


def _steps(ctx: Context, value: object) -> Decay | None:
    name = "decay.steps"
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_STEPS:
        ctx.report(name, f"must be a list of 1 to {MAX_STEPS} [age, factor] pairs")
        return None
    steps: list[tuple[int, int, int]] = []
    failed = len(ctx.issues)
    last_age, last_factor = 0, Decimal(1)
    for i, step in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(step, list) or len(step) != 2:
            ctx.report(
                where, f"must be a pair [age, factor] such as [30d, 0.5] (got {shown(step)})"
            )
            continue
        age = duration(ctx, step[0], f"{where}[0]")
        factor = plan_number(step[1])
        if factor is None or not 0 <= factor <= 1:
            ctx.report(f"{where}[1]", f"must be a number from 0 to 1 (got {shown(step[1])})")
            continue
        if age is None:
            continue
        if age <= last_age:
            ctx.report(f"{where}[0]", "ages must increase from one step to the next")
        if factor > last_factor:
            ctx.report(f"{where}[1]", "factors must not increase: decay only shrinks points")
        last_age, last_factor = age, factor
        numerator, denominator = factor.as_integer_ratio()
        steps.append((age, numerator, denominator))
    if len(ctx.issues) != failed:
        return None
    if steps[-1][1] != 0:
        ctx.report(
            f"{name}[{len(steps) - 1}][1]",
            "the last step's factor must be 0, so that old points leave the state (add a "
            "step such as [365d, 0])",
        )
        return None
    return Decay("steps", steps[-1][0], tuple(steps))


#: The shortest inactivity period (see ``inactivity_of``).
MIN_INACTIVITY_MS = 3_600_000


def granularity_of(ctx: Context, raw: object) -> int | None:
    """A score's ``decay_granularity``: at least one minute."""
    ms = duration(ctx, raw, "decay_granularity")
    if ms is not None and ms < 60_000:
        ctx.report("decay_granularity", f"must be at least 1m (got {format_duration(ms)})")
        return None
    return ms


def inactivity_of(ctx: Context, raw: object, categories: dict[str, Category]) -> Inactivity | None:
    """``{after: 30d, points: -10, repeat: every | once, category: name}``."""
    spec = fields_of(ctx, raw, "inactivity", allowed=("after", "points", "repeat", "category"),
                     required=("after", "points"))  # fmt: skip
    if spec is None:
        return None
    failed = len(ctx.issues)
    after = duration(ctx, spec["after"], "inactivity.after") if "after" in spec else None
    points = (integer(ctx, spec["points"], "inactivity.points", limit=MAX_POINTS)
              if "points" in spec else None)  # fmt: skip
    repeat = text(ctx, spec.get("repeat", "every"), "inactivity.repeat", choices=("every", "once"))
    category = spec.get("category")
    if category is not None and category not in categories:
        declared = ", ".join(categories) or "none declared"
        ctx.report("inactivity.category",
                   f"category {shown(category)} is not declared in the score's 'categories' "
                   f"({declared})")  # fmt: skip
    if after is not None and after < MIN_INACTIVITY_MS:
        ctx.report("inactivity.after",
                   f"must be at least 1h (got {format_duration(after)}): each period of silence "
                   "can publish a change for every silent entity, so a shorter one floods "
                   "score-changed and the loop")  # fmt: skip
        return None
    if len(ctx.issues) != failed or after is None or points is None:
        return None
    return Inactivity(after, points, repeat == "once", category)
