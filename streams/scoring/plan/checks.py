"""Shared helpers of plan validation: a reporting context and typed field readers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from streams.scoring.durations import MAX_DURATION_MS, format_duration, parse_duration
from streams.scoring.errors import PlanIssue
from streams.scoring.plan.spec import DEFAULT_LATENESS_MS, DEFAULT_MAX_FUTURE_MS, MAX_MAX_FUTURE_MS
from streams.scoring.shown import shown

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
NAME_RULE = "1-64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
#: Python reprs a message may still carry from a ``!r`` (a list of decimals, a type): as written.
_REPRS = re.compile(r"Decimal\('([^']*)'\)|<class '([^']*)'>")


@dataclass(slots=True)
class Context:
    """Where validation is (file, score, rule) and the issues found so far (shared)."""

    source: str
    issues: list[PlanIssue] = field(default_factory=list)
    score: str | None = None
    rule: str | None = None

    def report(self, field_name: str | None, message: str) -> None:
        message = _REPRS.sub(lambda m: m.group(1) or m.group(2), message)
        self.issues.append(PlanIssue(self.source, self.score, self.rule, field_name, message))

    def within(self, *, score: str | None = None, rule: str | None = None) -> Context:
        return Context(
            self.source,
            self.issues,
            score if score is not None else self.score,
            rule if rule is not None else self.rule,
        )


def fields_of(
    ctx: Context,
    value: object,
    name: str | None,
    *,
    allowed: tuple[str, ...],
    required: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    """``value`` as a mapping with only ``allowed`` keys and all ``required`` ones."""
    if not isinstance(value, dict):
        what = f"field '{name}'" if name else "the plan"
        ctx.report(
            name, f"must be a mapping (got {plain(value)}); {what} has: {', '.join(allowed)}"
        )
        return None
    prefix = f"{name}." if name else ""
    for key in value:
        if key not in allowed:
            ctx.report(f"{prefix}{key}", f"unknown field (expected one of: {', '.join(allowed)})")
    for key in required:
        if key not in value or value[key] is None:
            ctx.report(f"{prefix}{key}", "is required")
    return {key: item for key, item in value.items() if key in allowed}


def integer(
    ctx: Context, value: object, name: str, *, minimum: int | None = None, limit: int = 10**12
) -> int | None:
    """An int (not bool) within [minimum, limit] in magnitude, else report and None."""
    if type(value) is int and abs(value) <= limit and (minimum is None or value >= minimum):
        return value
    if minimum == 1:
        wanted = f"a positive integer of at most {limit:,}"
    elif minimum == 0:
        wanted = f"a non-negative integer of at most {limit:,}"
    else:
        wanted = f"an integer from -{limit:,} to {limit:,}"
    ctx.report(name, f"must be {wanted} (got {plain(value)})")
    return None


def duration(ctx: Context, value: object, name: str, *, most: int = MAX_DURATION_MS) -> int | None:
    """Milliseconds of a duration of at most ``most``, else report and None."""
    ms = parse_duration(value)
    if ms is None or ms > most:
        example = "500ms, 90s, 15m, 24h, 30d or 2w"
        ctx.report(name, f"must be a duration such as {example}, from 1ms to "
                         f"{format_duration(most)} (got {plain(value)})")  # fmt: skip
        return None
    return ms


def horizons(ctx: Context, spec: dict[str, Any]) -> tuple[int, int, int]:
    """The plan's ``lateness``, ``dedup_horizon`` and ``max_future`` (milliseconds)."""
    lateness_ms = DEFAULT_LATENESS_MS
    if "lateness" in spec:
        lateness_ms = duration(ctx, spec["lateness"], "lateness") or DEFAULT_LATENESS_MS
    dedup_ms = lateness_ms
    if "dedup_horizon" in spec:
        dedup_ms = duration(ctx, spec["dedup_horizon"], "dedup_horizon") or lateness_ms
        if dedup_ms < lateness_ms:
            ctx.report(
                "dedup_horizon",
                "must be at least 'lateness' (otherwise an event could "
                "be forgotten as seen before it becomes too late)",
            )
    future_ms = min(DEFAULT_MAX_FUTURE_MS, lateness_ms)
    if "max_future" in spec:
        given = duration(ctx, spec["max_future"], "max_future", most=MAX_MAX_FUTURE_MS)
        if given is not None and given > lateness_ms:
            ctx.report("max_future", f"must not exceed 'lateness' ({format_duration(given)} > "
                       f"{format_duration(lateness_ms)}): one event that far ahead would make "
                       "every on-time event of its entity too late")  # fmt: skip
        future_ms = given or future_ms
    return lateness_ms, dedup_ms, future_ms


def text(ctx: Context, value: object, name: str, *, choices: tuple[str, ...] = ()) -> str | None:
    if choices:
        if value in choices:
            return str(value)
        ctx.report(name, f"must be one of {', '.join(choices)} (got {plain(value)})")
        return None
    if isinstance(value, str) and NAME.match(value):
        return value
    ctx.report(name, f"must be a name of {NAME_RULE} (got {plain(value)})")
    return None


def plain(value: object) -> str:
    """A value of a plan for a message, as YAML spells it (never a Python repr)."""
    return shown(value, 60)
