"""Shared helpers of plan validation: a reporting context and typed field readers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from streams.scoring.durations import parse_duration
from streams.scoring.errors import PlanIssue

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
NAME_RULE = "1-64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"


@dataclass(slots=True)
class Context:
    """Where validation is (file, score, rule) and the issues found so far (shared)."""

    source: str
    issues: list[PlanIssue] = field(default_factory=list)
    score: str | None = None
    rule: str | None = None

    def report(self, field_name: str | None, message: str) -> None:
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
        what = f"field {name!r}" if name else "the plan"
        ctx.report(
            name, f"must be a mapping (got {_shown(value)}); {what} has: {', '.join(allowed)}"
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
        wanted = "a positive integer"
    elif minimum == 0:
        wanted = "a non-negative integer"
    else:
        wanted = "an integer"
    ctx.report(name, f"must be {wanted} of at most {limit:,} (got {_shown(value)})")
    return None


def duration(ctx: Context, value: object, name: str) -> int | None:
    ms = parse_duration(value)
    if ms is None:
        ctx.report(
            name,
            f"must be a duration such as 500ms, 90s, 15m, 24h, 30d or 2w (got {_shown(value)})",
        )
    return ms


def text(ctx: Context, value: object, name: str, *, choices: tuple[str, ...] = ()) -> str | None:
    if choices:
        if value in choices:
            return str(value)
        ctx.report(name, f"must be one of {', '.join(choices)} (got {_shown(value)})")
        return None
    if isinstance(value, str) and NAME.match(value):
        return value
    ctx.report(name, f"must be a name of {NAME_RULE} (got {_shown(value)})")
    return None


def _shown(value: object) -> str:
    shown = repr(value)
    if type(value).__name__ == "Decimal":
        shown = str(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
