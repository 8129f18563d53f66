"""Plan loading: a score's thresholds and tiers (the bands of its value)."""

from __future__ import annotations

from streams.scoring.plan.checks import Context, fields_of, integer, text
from streams.scoring.plan.spec import Threshold, Tier
from streams.scoring.shown import shown

_LIMIT = 10**12


def thresholds_of(ctx: Context, raw: object) -> tuple[Threshold, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        ctx.report("thresholds", "must be a list of {name, at}")
        return ()
    found: list[Threshold] = []
    for i, item in enumerate(raw):
        spec = fields_of(
            ctx, item, f"thresholds[{i}]", allowed=("name", "at"), required=("name", "at")
        )
        if spec is None or "name" not in spec or "at" not in spec:
            continue
        name = text(ctx, spec["name"], f"thresholds[{i}].name")
        at = integer(ctx, spec["at"], f"thresholds[{i}].at", limit=_LIMIT)
        if name is None or at is None:
            continue
        if any(t.name == name for t in found):
            ctx.report(f"thresholds[{i}].name", f"threshold name {shown(name)} is used twice")
        elif any(t.at == at for t in found):
            ctx.report(f"thresholds[{i}].at", f"two thresholds are at {at}")
        else:
            found.append(Threshold(name, at))
    return tuple(sorted(found, key=lambda t: t.at))


def tiers_of(ctx: Context, raw: object) -> tuple[Tier, ...]:
    """``[{name, below}, ..., {name}]``: bounds strictly ascending, the last tier unbounded."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) < 2:
        ctx.report("tiers", "must be a list of at least two {name, below}, the last without below")
        return ()
    found: list[Tier] = []
    for i, item in enumerate(raw):
        last = i == len(raw) - 1
        spec = fields_of(ctx, item, f"tiers[{i}]", allowed=("name", "below"), required=("name",))
        if spec is None or "name" not in spec:
            continue
        name = text(ctx, spec["name"], f"tiers[{i}].name")
        below = None
        if "below" in spec:
            if last:
                ctx.report(f"tiers[{i}].below", "the last tier has no upper bound: remove below")
                continue
            below = integer(ctx, spec["below"], f"tiers[{i}].below", limit=_LIMIT)
        elif not last:
            ctx.report(f"tiers[{i}].below", "required for every tier but the last")
            continue
        if name is None or (below is None and not last):
            continue
        previous = found[-1].below if found else None
        if any(t.name == name for t in found):
            ctx.report(f"tiers[{i}].name", f"tier name {shown(name)} is used twice")
        elif below is not None and previous is not None and below <= previous:
            ctx.report(f"tiers[{i}].below", f"must be above the previous tier's ({previous})")
        else:
            found.append(Tier(name, below))
    return tuple(found) if len(found) == len(raw) else ()
