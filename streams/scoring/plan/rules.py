"""Validation and compilation of one rule of a score (``on``/``where`` or ``while``)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import partial

from streams.scoring.catalog import EVENT_FIELDS, EVENT_TYPES, STATE_FIELDS, path_problem
from streams.scoring.conditions import compile_condition, make_getter, plan_number
from streams.scoring.plan.checks import Context, duration, fields_of, integer, plain, text
from streams.scoring.plan.spec import MAX_POINTS, Cap, Category, Points, Rule, ValuePoints
from streams.scoring.plan.timing import decay_of

RULE_FIELDS = (
    "id",
    "description",
    "on",
    "where",
    "while",
    "points",
    "category",
    "repeat",
    "cap",
    "expires_after",
    "decay",
)
_EVENT_ONLY = ("repeat", "cap", "expires_after", "where", "decay")
_POINTS_FIELDS = ("field", "multiply", "add", "min", "max")


def compile_rule(
    ctx: Context, raw: object, position: int, *, entity: str, categories: Mapping[str, Category]
) -> Rule | None:
    """Validate rule number ``position`` of a score; report every problem found."""
    rule_id = raw.get("id") if isinstance(raw, dict) else None
    label = rule_id if isinstance(rule_id, str) else f"#{position + 1}"
    ctx = ctx.within(rule=label)
    spec = fields_of(ctx, raw, None, allowed=RULE_FIELDS, required=("id", "points"))
    if spec is None:
        return None
    failed = len(ctx.issues)
    if "id" in spec:
        text(ctx, spec["id"], "id")
        if isinstance(rule_id, str) and rule_id.startswith("adjustment"):
            ctx.report("id", "ids starting with 'adjustment' are reserved for manual adjustments")
        if rule_id == "inactivity":
            ctx.report("id", "the id 'inactivity' is reserved for the score's inactivity points")
    if "description" in spec and not isinstance(spec["description"], str):
        ctx.report("description", "must be text")
    is_state = "while" in spec
    if is_state == ("on" in spec):
        ctx.report("on", "a rule needs exactly one of 'on' (event rule) or 'while' (state rule)")
        return None
    if is_state:
        roots = STATE_FIELDS[entity]
        for key in _EVENT_ONLY:
            if key in spec:
                ctx.report(key, "is not allowed on a state ('while') rule")
        on: tuple[str, ...] = ()
    else:
        on = _event_types(ctx, spec["on"])
        roots = frozenset().union(*(EVENT_FIELDS[t] for t in on)) if on else frozenset()
    check_path = partial(path_problem, roots=roots)
    where = holds = None
    condition_key = "while" if is_state else "where"
    if condition_key in spec:
        compiled = compile_condition(
            spec[condition_key], check_path=check_path, report=ctx.report, field=condition_key
        )
        if is_state:
            holds = compiled
        else:
            where = compiled
    points = _points(ctx, spec.get("points"), roots) if "points" in spec else None
    category = spec.get("category")
    if category is not None and (not isinstance(category, str) or category not in categories):
        declared = ", ".join(categories) or "none declared"
        ctx.report(
            "category",
            f"category {plain(category)} is not declared in the score's 'categories' ({declared})",
        )
    once = text(ctx, spec.get("repeat", "every"), "repeat", choices=("every", "once")) == "once"
    cap = _cap(ctx, spec["cap"]) if "cap" in spec else None
    ttl_ms = (
        duration(ctx, spec["expires_after"], "expires_after") if "expires_after" in spec else None
    )
    decay = decay_of(ctx, spec["decay"]) if "decay" in spec else None
    if len(ctx.issues) != failed or points is None or (on == () and not is_state):
        return None
    return Rule(
        id=str(rule_id),
        points=points,
        on=on,
        where=where,
        holds=holds,
        category=category,
        once=once,
        cap=cap,
        ttl_ms=ttl_ms,
        decay=decay,
    )


def _event_types(ctx: Context, value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        ctx.report("on", "must name at least one event type")
        return ()
    good: list[str] = []
    for item in items:
        if item not in EVENT_TYPES:
            ctx.report("on", f"unknown event type {plain(item)} (known: {', '.join(EVENT_TYPES)})")
        elif item in good:
            ctx.report("on", f"event type {plain(item)} is listed twice")
        else:
            good.append(str(item))
    return tuple(good) if len(good) == len(items) else ()


def _cap(ctx: Context, value: object) -> Cap | None:
    spec = fields_of(ctx, value, "cap", allowed=("max", "per"), required=("max", "per"))
    if spec is None:
        return None
    most = integer(ctx, spec["max"], "cap.max", minimum=1, limit=10_000) if "max" in spec else None
    per_ms = duration(ctx, spec["per"], "cap.per") if "per" in spec else None
    return Cap(most, per_ms) if most is not None and per_ms is not None else None


def _points(ctx: Context, value: object, roots: frozenset[str]) -> Points | None:
    if not isinstance(value, dict):
        if type(value) is int and abs(value) <= MAX_POINTS:
            return value
        ctx.report(
            "points",
            f"must be an integer from -{MAX_POINTS:,} to {MAX_POINTS:,}, or a mapping "
            f"{{field, multiply, add, min, max}} (got {plain(value)})",
        )
        return None
    spec = fields_of(ctx, value, "points", allowed=_POINTS_FIELDS, required=("field",))
    if spec is None or "field" not in spec:
        return None
    failed = len(ctx.issues)
    path = spec["field"]
    problem = (
        path_problem(path, roots)
        if isinstance(path, str)
        else (f"must be a dotted path (got {plain(path)})")
    )
    if problem is not None:
        ctx.report("points.field", problem)
    factors: dict[str, Decimal] = {}
    for key, default in (("multiply", Decimal(1)), ("add", Decimal(0))):
        number = plan_number(spec.get(key, default)) if key in spec else default
        if number is None or number.copy_abs() > MAX_POINTS:
            ctx.report(f"points.{key}", f"must be a number from -{MAX_POINTS:,} to "
                       f"{MAX_POINTS:,} (got {plain(spec[key])})")  # fmt: skip
        else:
            factors[key] = number
    bounds = {
        key: integer(ctx, spec[key], f"points.{key}", limit=MAX_POINTS)
        for key in ("min", "max")
        if key in spec
    }
    low, high = bounds.get("min"), bounds.get("max")
    if low is not None and high is not None and low > high:
        ctx.report("points.min", f"must not exceed points.max ({low} > {high})")
    if len(ctx.issues) != failed:
        return None
    return ValuePoints(
        field=path,
        get=make_getter(path),
        multiply=factors["multiply"],
        add=factors["add"],
        min=low,
        max=high,
    )
