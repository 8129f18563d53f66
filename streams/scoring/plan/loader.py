"""YAML text -> validated ``Plan``. Reports every mistake at once (``PlanError.issues``)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.scoring.catalog import SCORE_KINDS, kind_of
from streams.scoring.errors import PlanError
from streams.scoring.plan.bands import thresholds_of, tiers_of
from streams.scoring.plan.checks import Context, fields_of, horizons, integer, plain, text
from streams.scoring.plan.matrix import matrices_of
from streams.scoring.plan.predict import check_predicted, predicted_of
from streams.scoring.plan.reader import read_yaml
from streams.scoring.plan.rollup import account_problems, check_sources, rollup_of
from streams.scoring.plan.rules import compile_rule
from streams.scoring.plan.spec import (
    DAY_NAMES,
    DEFAULT_DECAY_GRANULARITY_MS,
    Category,
    Plan,
    QuietHours,
    QuietWindow,
    Rule,
    Score,
    index_plan,
)
from streams.scoring.plan.timing import granularity_of, inactivity_of

PLAN_FIELDS = (
    "version", "description", "lateness", "dedup_horizon", "max_future", "scores", "matrices",
)  # fmt: skip
SCORE_FIELDS = (
    "name",
    "description",
    "entity",
    "timezone",
    "quiet_hours",
    "limits",
    "categories",
    "thresholds",
    "tiers",
    "decay_granularity",
    "inactivity",
    "rollup",
    "rules",
    "predicted",
)
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$|^24:00$")
_LIMIT = 10**12


def load_plan(text_: str, *, source: str) -> Plan:
    """Validate and compile a plan; raise ``PlanError`` listing every issue found."""
    ctx = Context(source)
    data, problems = read_yaml(text_, source=source)
    for problem in problems:
        ctx.report(None, problem)
    if ctx.issues:
        raise PlanError(ctx.issues)
    spec = fields_of(ctx, data, None, allowed=PLAN_FIELDS, required=("scores",))
    if spec is None:
        raise PlanError(ctx.issues)
    version = _version(ctx, spec.get("version"), data)
    lateness_ms, dedup_ms, future_ms = horizons(ctx, spec)
    raw_scores = spec.get("scores")
    scores: list[Score] = []
    if not isinstance(raw_scores, list) or not raw_scores:
        if "scores" in spec:
            ctx.report("scores", "must be a non-empty list of scores")
    else:
        names: set[object] = set()
        for position, raw in enumerate(raw_scores):
            score = _score(ctx, raw, position)
            name = raw.get("name") if isinstance(raw, dict) else None
            if isinstance(name, str) and name in names:
                ctx.within(score=name).report("name", "duplicate score name")
            names.add(name)
            if score is not None:
                scores.append(score)
    by_name = {s.name: s for s in scores}
    check_sources(ctx, by_name)
    check_predicted(ctx, by_name, lateness_ms)
    matrices = matrices_of(ctx, spec.get("matrices"), by_name)
    if ctx.issues:
        raise PlanError(ctx.issues)
    return index_plan(
        source, version, tuple(scores), lateness_ms=lateness_ms, dedup_horizon_ms=dedup_ms,
        matrices=matrices, max_future_ms=future_ms,
    )  # fmt: skip


def _version(ctx: Context, explicit: object, data: Any) -> str:
    if explicit is not None:
        if isinstance(explicit, str) and 0 < len(explicit) <= 64:
            return explicit
        ctx.report("version", f"must be a string of 1-64 characters (got {plain(explicit)})")
    canonical = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _score(outer: Context, raw: object, position: int) -> Score | None:
    name = raw.get("name") if isinstance(raw, dict) else None
    ctx = outer.within(score=name if isinstance(name, str) else f"#{position + 1}")
    spec = fields_of(ctx, raw, None, allowed=SCORE_FIELDS, required=("name", "entity"))
    if spec is None:
        return None
    failed = len(ctx.issues)
    if "name" in spec:
        text(ctx, spec["name"], "name")
    entity = text(ctx, spec.get("entity"), "entity", choices=SCORE_KINDS)
    if entity == "account":
        account_problems(ctx, spec)
    rollup = rollup_of(ctx, spec["rollup"], entity) if "rollup" in spec else None
    predicted = predicted_of(ctx, spec["predicted"], spec, entity) if "predicted" in spec else None
    zone_name = spec.get("timezone", "UTC")
    zone = _zone(ctx, zone_name)
    quiet = _quiet_hours(ctx, spec["quiet_hours"]) if spec.get("quiet_hours") is not None else None
    low, high = _bounds(ctx, spec.get("limits"), "limits")
    categories = _categories(ctx, spec.get("categories"))
    thresholds = thresholds_of(ctx, spec.get("thresholds"))
    tiers = tiers_of(ctx, spec.get("tiers"))
    granularity = (
        granularity_of(ctx, spec["decay_granularity"])
        if "decay_granularity" in spec
        else DEFAULT_DECAY_GRANULARITY_MS
    )
    inactivity = (
        inactivity_of(ctx, spec["inactivity"], categories) if "inactivity" in spec else None
    )
    rules = (_rules(ctx, spec.get("rules"), entity or "contact", categories)
             if entity != "account" else ())  # fmt: skip
    if len(ctx.issues) != failed or entity is None or zone is None or granularity is None:
        return None
    event_rules: dict[str, list[Rule]] = {}
    for rule in rules:
        for event_type in rule.on:
            event_rules.setdefault(event_type, []).append(rule)
    return Score(
        name=str(name),
        entity=kind_of(entity),
        timezone=str(zone_name),
        zone=zone,
        rules=rules,
        quiet_hours=quiet,
        min=low,
        max=high,
        categories=categories,
        thresholds=thresholds,
        tiers=tiers,
        event_rules={key: tuple(value) for key, value in event_rules.items()},
        state_rules=tuple(rule for rule in rules if rule.is_state_rule),
        rule_by_id={rule.id: rule for rule in rules},
        decay_granularity_ms=granularity,
        decays={rule.id: rule.decay for rule in rules if rule.decay is not None},
        inactivity=inactivity,
        rollup=rollup,
        predicted=predicted,
    )


def _zone(ctx: Context, name: object) -> ZoneInfo | None:
    if isinstance(name, str) and 0 < len(name) <= 64 and ".." not in name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    ctx.report("timezone", f"unknown IANA time zone {plain(name)} (e.g. UTC, Europe/Warsaw)")
    return None


def _bounds(ctx: Context, raw: object, name: str) -> tuple[int | None, int | None]:
    if raw is None:
        return None, None
    spec = fields_of(ctx, raw, name, allowed=("min", "max"))
    if spec is None:
        return None, None
    low = integer(ctx, spec["min"], f"{name}.min", limit=_LIMIT) if "min" in spec else None
    high = integer(ctx, spec["max"], f"{name}.max", limit=_LIMIT) if "max" in spec else None
    if low is not None and high is not None and low > high:
        ctx.report(f"{name}.min", f"must not exceed {name}.max ({low} > {high})")
    return low, high


def _categories(ctx: Context, raw: object) -> dict[str, Category]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        ctx.report("categories", "must be a mapping of category name to {min, max}")
        return {}
    categories: dict[str, Category] = {}
    for key, value in raw.items():
        if text(ctx, key, f"categories.{key}") is None:
            continue
        low, high = _bounds(ctx, value, f"categories.{key}")
        categories[key] = Category(key, low, high)
    return categories


def _rules(
    ctx: Context, raw: object, entity: str, categories: dict[str, Category]
) -> tuple[Rule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        ctx.report("rules", "must be a list of rules")
        return ()
    rules: list[Rule] = []
    seen: set[object] = set()
    for position, item in enumerate(raw):
        rule_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(rule_id, str) and rule_id in seen:
            ctx.within(rule=rule_id).report("id", "duplicate rule id in this score")
        seen.add(rule_id)
        rule = compile_rule(ctx, item, position, entity=entity, categories=categories)
        if rule is not None:
            rules.append(rule)
    return tuple(rules)


def _quiet_hours(ctx: Context, raw: object) -> QuietHours | None:
    spec = fields_of(
        ctx, raw, "quiet_hours", allowed=("policy", "windows"), required=("policy", "windows")
    )
    if spec is None:
        return None
    policy = text(ctx, spec.get("policy"), "quiet_hours.policy", choices=("skip", "defer"))
    windows_raw = spec.get("windows")
    if not isinstance(windows_raw, list) or not windows_raw:
        if "windows" in spec:
            ctx.report("quiet_hours.windows", "must be a non-empty list of {days, from, to}")
        return None
    windows = [
        _window(ctx, item, f"quiet_hours.windows[{i}]") for i, item in enumerate(windows_raw)
    ]
    if policy is None or any(window is None for window in windows):
        return None
    return QuietHours(
        "skip" if policy == "skip" else "defer",
        tuple(window for window in windows if window is not None),
    )


def _window(ctx: Context, raw: object, name: str) -> QuietWindow | None:
    spec = fields_of(ctx, raw, name, allowed=("days", "from", "to"), required=("from", "to"))
    if spec is None or "from" not in spec or "to" not in spec:
        return None
    failed = len(ctx.issues)
    days_raw = spec.get("days", list(DAY_NAMES))
    days: set[int] = set()
    if not isinstance(days_raw, list) or not days_raw:
        ctx.report(f"{name}.days", f"must be a non-empty list of {', '.join(DAY_NAMES)}")
    else:
        for day in days_raw:
            if day in DAY_NAMES:
                days.add(DAY_NAMES.index(day))
            else:
                ctx.report(f"{name}.days", f"unknown day {plain(day)} (use {', '.join(DAY_NAMES)})")
    start = _clock(ctx, spec["from"], f"{name}.from", allow_24=False)
    end = _clock(ctx, spec["to"], f"{name}.to", allow_24=True)
    if start is not None and end is not None and start == end:
        ctx.report(
            f"{name}.to",
            f"must differ from 'from' (both {spec['from']}); a window "
            "from a time to the same time is empty or the whole day",
        )
    if len(ctx.issues) != failed or start is None or end is None:
        return None
    return QuietWindow(frozenset(days), start, end)


def _clock(ctx: Context, raw: object, name: str, *, allow_24: bool) -> int | None:
    match = _CLOCK.match(raw) if isinstance(raw, str) else None
    if match is None or (raw == "24:00" and not allow_24):
        limit = "24:00" if allow_24 else "23:59"
        ctx.report(
            name,
            f"must be a time HH:MM between 00:00 and {limit}, quoted or not (got {plain(raw)})",
        )
        return None
    if raw == "24:00":
        return 1440
    return int(match.group(1)) * 60 + int(match.group(2))
