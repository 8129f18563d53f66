"""Validation of a score's ``rollup`` (see ``rollup``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.scoring.plan.checks import Context, fields_of, integer, text
from streams.scoring.plan.spec import Rollup, Score
from streams.scoring.shown import shown

ROLLUP_FIELDS = ("from", "aggregate", "k")
AGGREGATES = ("sum", "max", "top")
#: At most this many members counted by a ``top`` roll-up.
MAX_TOP = 1000


def rollup_of(ctx: Context, raw: object, entity: str | None) -> Rollup | None:
    """``{from: SCORE, aggregate: sum | max | top, k: N}`` (``k`` with ``top`` only)."""
    spec = fields_of(ctx, raw, "rollup", allowed=ROLLUP_FIELDS, required=("from", "aggregate"))
    if spec is None:
        return None
    failed = len(ctx.issues)
    if entity == "contact":
        ctx.report("rollup", "a contact score cannot roll up; roll-ups belong to deal and "
                             "account scores, fed by their contacts")  # fmt: skip
    source = text(ctx, spec["from"], "rollup.from") if "from" in spec else None
    aggregate = (text(ctx, spec["aggregate"], "rollup.aggregate", choices=AGGREGATES)
                 if "aggregate" in spec else None)  # fmt: skip
    k = 0
    if aggregate == "top":
        if "k" not in spec:
            ctx.report("rollup.k", "is required with aggregate: top (how many members count)")
        else:
            k = integer(ctx, spec["k"], "rollup.k", minimum=1, limit=MAX_TOP) or 0
            if k < 1 and len(ctx.issues) == failed:
                ctx.report("rollup.k", f"must be from 1 to {MAX_TOP} (got {shown(spec['k'])})")
    elif "k" in spec and aggregate is not None:
        ctx.report("rollup.k", f"only aggregate: top takes k (this roll-up is {aggregate})")
    if len(ctx.issues) != failed or source is None or aggregate is None:
        return None
    return Rollup(source, "sum" if aggregate == "sum" else "max" if aggregate == "max" else "top",
                  k)  # fmt: skip


def account_problems(ctx: Context, spec: Mapping[str, Any]) -> None:
    """An account score is its roll-up: it takes no rules and no time-driven parts of its own."""
    if "rollup" not in spec:
        ctx.report("rollup", "is required: an account score is the roll-up of its contacts' "
                             "scores, e.g. {from: engagement, aggregate: sum}")  # fmt: skip
    for name in ("rules", "quiet_hours", "inactivity", "decay_granularity"):
        if spec.get(name):
            ctx.report(name, "an account score takes no rules and no time-driven parts of its "
                             "own (no events reach an account; its contacts' scores decay "
                             "and expire)")  # fmt: skip


def check_sources(ctx: Context, scores: Mapping[str, Score]) -> None:
    """Every roll-up reads a contact score of the plan."""
    for score in scores.values():
        rollup = score.rollup
        if rollup is None:
            continue
        source = scores.get(rollup.source)
        if source is None:
            ctx.within(score=score.name).report(
                "rollup.from", f"no score named {shown(rollup.source)} in the plan (known: "
                               f"{', '.join(sorted(scores))})")  # fmt: skip
        elif source.entity != "contact":
            ctx.within(score=score.name).report(
                "rollup.from", f"score {shown(rollup.source)} is a {source.entity} score; roll-ups "
                               "read a contact score")  # fmt: skip
