"""The validated, compiled scoring plan (built by ``plan_loader.load_plan``).

Everything here is immutable and precomputed for the hot path: rules are indexed by
(entity kind, event type), conditions are closures, durations are milliseconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from streams.scoring.catalog import SCORE_KINDS, EntityKind
from streams.scoring.conditions import Predicate
from streams.scoring.model import Predicted

QuietPolicy = Literal["skip", "defer"]
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_LATENESS_MS = 7 * 86_400_000
#: How far ahead of its arrival an item's event time may lie (``max_future``): default, bound.
DEFAULT_MAX_FUTURE_MS = 3_600_000
MAX_MAX_FUTURE_MS = 7 * 86_400_000
#: Upper bound of any single award, constant or computed, in points.
MAX_POINTS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``max`` awards of the rule in any window of ``per_ms`` (per entity)."""

    max: int
    per_ms: int


@dataclass(frozen=True, slots=True)
class ValuePoints:
    """Value-weighted points: ``round_half_even(value * multiply + add)`` clamped to min/max."""

    field: str
    get: Callable[[dict[str, Any]], Any] = dataclasses.field(compare=False, repr=False)
    multiply: Decimal = Decimal(1)
    add: Decimal = Decimal(0)
    min: int | None = None
    max: int | None = None


Points = int | ValuePoints

DecayKind = Literal["half_life", "linear_to_zero", "steps"]
#: Default ``decay_granularity`` of a score: decay changes at most once a day (UTC days).
DEFAULT_DECAY_GRANULARITY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Decay:
    """How a rule's points shrink with the age of their event (see ``decay``).

    ``half_life``: ``points * 2^(-age / length_ms)``. ``linear_to_zero``: ``points * (1 -
    age / length_ms)``, 0 from ``length_ms`` on. ``steps``: the factor of the last step whose
    age has been reached (1 before the first), as exact fractions ``(age_ms, numerator,
    denominator)``; the last factor is 0, at ``length_ms``.
    """

    kind: DecayKind
    length_ms: int
    steps: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Inactivity:
    """``points`` when the entity has had no event for ``after_ms`` (``once``: only the first
    period of each silence; else after each further period too)."""

    after_ms: int
    points: int
    once: bool = False
    category: str | None = None


RollupAggregate = Literal["sum", "max", "top"]


@dataclass(frozen=True, slots=True)
class Rollup:
    """A score's part fed by contacts (see ``rollup``): the ``aggregate`` of the members'
    values of the contact score ``source`` (``top``: the sum of the ``k`` highest)."""

    source: str
    aggregate: RollupAggregate
    k: int = 0


@dataclass(frozen=True, slots=True)
class Rule:
    """One scoring rule. Event rules have ``on``; state rules have ``holds`` (``while``)."""

    id: str
    points: Points
    on: tuple[str, ...] = ()
    where: Predicate | None = dataclasses.field(default=None, compare=False, repr=False)
    holds: Predicate | None = dataclasses.field(default=None, compare=False, repr=False)
    category: str | None = None
    once: bool = False
    cap: Cap | None = None
    ttl_ms: int | None = None
    decay: Decay | None = None

    @property
    def is_state_rule(self) -> bool:
        return self.holds is not None


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """Quiet from ``start_min`` on each day in ``days`` (0 = Monday) until ``end_min``.

    Minutes are local minutes of the day; ``end_min <= start_min`` means the window ends on the
    next day. ``end_min`` may be 1440 (24:00).
    """

    days: frozenset[int]
    start_min: int
    end_min: int


@dataclass(frozen=True, slots=True)
class QuietHours:
    policy: QuietPolicy
    windows: tuple[QuietWindow, ...]
    #: Memo of ``quiet_until`` by epoch minute (results only depend on the minute); bounded.
    memo: dict[int, int | None] = dataclasses.field(
        default_factory=dict, compare=False, hash=False, repr=False
    )
    #: The last span of instants with one answer, ``(from, until, quiet end or -1 if not
    #: quiet)``, replaced whole (one store: readers in other threads see one span or the other).
    span: list[tuple[int, int, int]] = dataclasses.field(
        default_factory=lambda: [(0, 0, -1)], compare=False, hash=False, repr=False
    )


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    min: int | None = None
    max: int | None = None


@dataclass(frozen=True, slots=True)
class Threshold:
    name: str
    at: int


@dataclass(frozen=True, slots=True)
class Tier:
    """A band of a score's value: values below ``below`` (and at or above the previous tier's);
    the last tier has no bound."""

    name: str
    below: int | None


@dataclass(frozen=True, slots=True)
class Score:
    """One named score of a plan."""

    name: str
    entity: EntityKind
    timezone: str
    zone: ZoneInfo = dataclasses.field(compare=False, repr=False)
    rules: tuple[Rule, ...]
    quiet_hours: QuietHours | None = None
    min: int | None = None
    max: int | None = None
    categories: dict[str, Category] = dataclasses.field(default_factory=dict)
    #: Sorted by ``at``.
    thresholds: tuple[Threshold, ...] = ()
    #: Ascending bands; empty when the score has no tiers.
    tiers: tuple[Tier, ...] = ()
    #: Event type -> event rules listening to it, in plan order.
    event_rules: dict[str, tuple[Rule, ...]] = dataclasses.field(default_factory=dict)
    state_rules: tuple[Rule, ...] = ()
    rule_by_id: dict[str, Rule] = dataclasses.field(default_factory=dict)
    #: Decay changes are published at multiples of this (UTC, from the epoch), and at the
    #: instants decay crosses a threshold or tier.
    decay_granularity_ms: int = DEFAULT_DECAY_GRANULARITY_MS
    #: Rule id -> its decay, for the rules that decay (empty: the score does not decay).
    decays: dict[str, Decay] = dataclasses.field(default_factory=dict)
    inactivity: Inactivity | None = None
    #: Deal and account scores only: the members' part (added before the limits).
    rollup: Rollup | None = None
    #: A predicted score's model (``predict``): its value is computed, it has no rules.
    predicted: Predicted | None = None


@dataclass(frozen=True, slots=True)
class Matrix:
    """Two tiered scores of one entity kind crossed into labelled cells (HubSpot's A1-C3):
    ``labels[i][j]`` is the cell of the ``rows`` score's tier ``i`` and the ``cols`` score's
    tier ``j``, tiers in their plan order."""

    name: str
    entity: EntityKind
    rows: str
    cols: str
    labels: tuple[tuple[str, ...], ...]


#: The scores listening to one (entity kind, event type), each with its rules for that type.
Dispatch = tuple[tuple[Score, tuple[Rule, ...]], ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated plan. ``version`` goes into every score change as ``plan_version``."""

    source: str
    version: str
    scores: tuple[Score, ...]
    lateness_ms: int = DEFAULT_LATENESS_MS
    dedup_horizon_ms: int = DEFAULT_LATENESS_MS
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS
    by_name: dict[str, Score] = dataclasses.field(default_factory=dict)
    by_kind: dict[str, tuple[Score, ...]] = dataclasses.field(default_factory=dict)
    #: (entity kind, event type) -> ((score, its rules for that type), ...), only non-empty.
    dispatch: dict[tuple[str, str], tuple[tuple[Score, tuple[Rule, ...]], ...]] = dataclasses.field(
        default_factory=dict
    )
    #: Entity kind -> scores that have state rules.
    stateful: dict[str, tuple[Score, ...]] = dataclasses.field(default_factory=dict)
    matrices: tuple[Matrix, ...] = ()
    #: Entity kind -> its matrices.
    matrices_by_kind: dict[str, tuple[Matrix, ...]] = dataclasses.field(default_factory=dict)

    #: Entity kind -> its predicted scores, in plan order.
    predicted_by_kind: dict[str, tuple[Score, ...]] = dataclasses.field(default_factory=dict)
    #: Target kind (deal, account) -> the contact scores its roll-ups read, in plan order.
    rollup_sources: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    #: How far an entity's watermark moves between two compactions of its state.
    compaction_interval_ms: int = DEFAULT_LATENESS_MS // 8

    @property
    def rule_count(self) -> int:
        return sum(len(score.rules) for score in self.scores)


def index_plan(
    source: str,
    version: str,
    scores: tuple[Score, ...],
    *,
    lateness_ms: int,
    dedup_horizon_ms: int,
    matrices: tuple[Matrix, ...] = (),
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
) -> Plan:
    """Assemble a Plan with its lookup tables from validated scores."""
    dispatch: dict[tuple[str, str], list[tuple[Score, tuple[Rule, ...]]]] = {}
    sources: dict[str, list[str]] = {}
    for score in scores:
        if score.rollup is not None and score.rollup.source not in sources.get(score.entity, []):
            sources.setdefault(score.entity, []).append(score.rollup.source)
    for score in scores:
        for event_type, rules in score.event_rules.items():
            dispatch.setdefault((score.entity, event_type), []).append((score, rules))
    return Plan(
        source=source,
        version=version,
        scores=scores,
        lateness_ms=lateness_ms,
        dedup_horizon_ms=dedup_horizon_ms,
        max_future_ms=max_future_ms,
        compaction_interval_ms=max(60_000, min(lateness_ms, dedup_horizon_ms) // 8),
        by_name={score.name: score for score in scores},
        by_kind={kind: tuple(s for s in scores if s.entity == kind) for kind in SCORE_KINDS},
        dispatch={key: tuple(value) for key, value in dispatch.items()},
        stateful={
            kind: tuple(s for s in scores if s.entity == kind and s.state_rules)
            for kind in ("contact", "deal")
        },
        matrices=matrices,
        matrices_by_kind={
            kind: tuple(m for m in matrices if m.entity == kind) for kind in SCORE_KINDS
        },
        rollup_sources={kind: tuple(names) for kind, names in sources.items()},
        predicted_by_kind={
            kind: tuple(s for s in scores if s.entity == kind and s.predicted is not None)
            for kind in SCORE_KINDS
        },
    )
