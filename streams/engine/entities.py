"""The entity stage of the loop: the pure core over one partition's items, states in the cache.

No Kafka here: the loop hands in decoded entity-events records and takes back the changes to
publish. States come from :class:`streams.state.cache.StateCache` (read-your-writes) and go back
to it marked dirty; the transaction encodes each dirty state once, at commit.

A state and the changes it caused are committed in one Kafka transaction, so a duplicate item has
nothing to republish: the core keeps no outbox of published changes.

An item whose event time lies more than its tenant's plan's ``max_future`` ahead of its arrival
(the input record's Kafka timestamp, carried in the item) is refused before it reaches the core
(:func:`streams.scoring.arrival.future_reason`): a dead letter of class ``future_event``, and no
watermark moves. Plan and arrival are both fixed by the partition's log, so a replay decides
the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from streams.engine import shadows
from streams.engine.tenants import TenantPlans
from streams.scoring import (
    EntityKey,
    EntityState,
    Forward,
    Invalid,
    Item,
    Outcome,
    Plan,
    ScoreChange,
    ScoreResult,
    advance,
    apply,
    apply_member,
    parse_input,
)
from streams.scoring.arrival import future_reason
from streams.scoring.recompute import recompute
from streams.state.cache import Entry, Loader, StateCache
from streams.state.store import PartitionStore
from streams.wire import records
from streams.wire.deadletter import FUTURE_EVENT


@dataclass(frozen=True, slots=True)
class ShadowResult:
    """What one item did to one entity under one shadow plan (``streams.engine.shadows``)."""

    version: str
    changes: tuple[ScoreChange, ...]
    forwards: tuple[Forward, ...] = ()


class ShadowBug(Exception):
    """The core raised on an item under a shadow plan; ``key``: the shadow state it changed."""

    def __init__(self, key: bytes, version: str) -> None:
        super().__init__(f"shadow plan {version} raised")
        self.key, self.version = key, version


@dataclass(slots=True)
class ItemResult:
    """What one item did to one entity."""

    changes: tuple[ScoreChange, ...] = ()
    results: tuple[ScoreResult, ...] = ()
    invalid: str | None = None
    #: member updates for deals and accounts (to the entity-events topic, keyed by target)
    forwards: tuple[Forward, ...] = ()
    #: the dead-letter class of an ``invalid`` item
    error_class: str = "InvalidRecord"
    #: what it did under the tenant's shadow plans (usually none)
    shadows: tuple[ShadowResult, ...] = ()


@dataclass(slots=True)
class EntityStage:
    plan: Plan  # the default plan (the settings' file)
    cache: StateCache
    #: partition -> loader of committed states (the partition's store)
    loaders: dict[int, Loader] = field(default_factory=dict)
    #: partition -> its store (for the scans of a shadow plan's discard)
    stores: dict[int, PartitionStore] = field(default_factory=dict)
    #: entity keys decoded once per process (keys repeat far more than they vary)
    keys: dict[bytes, EntityKey] = field(default_factory=dict)
    #: the plan of each tenant on each partition (``streams.engine.tenants``)
    tenants: TenantPlans = field(init=False)

    def __post_init__(self) -> None:
        self.tenants = TenantPlans(self.plan)

    def entity_key(self, key_bytes: bytes) -> EntityKey:
        key = self.keys.get(key_bytes)
        if key is None:
            if len(self.keys) >= 200_000:
                self.keys.clear()
            key = self.keys[key_bytes] = records.entity_key_from_bytes(key_bytes)
        return key

    def _entry(self, partition: int, key_bytes: bytes) -> Entry | None:
        return self.cache.get(key_bytes, partition, self.loaders[partition])

    def on_item(self, partition: int, key_bytes: bytes, rec: records.ItemRecord, *,
                shadows: bool = True) -> ItemResult:  # fmt: skip
        """The item under the tenant's plan, and (``shadows``) under each of its shadow plans."""
        item = parse_input(rec.record)
        if isinstance(item, Invalid):  # validated at ingest; only a plan/schema skew gets here
            if item.occurred_ms is not None:
                return ItemResult(invalid=item.reason, error_class=FUTURE_EVENT)
            return ItemResult(invalid=item.reason)
        key = self.entity_key(key_bytes)
        plan = self.tenants.plan_for(partition, key.tenant_id)
        ahead = future_reason(item.occurred_at_ms, arrival_ms(rec), plan.max_future_ms)
        if ahead is not None:  # before the core: it moves no watermark
            return ItemResult(invalid=ahead, error_class=FUTURE_EVENT)
        entry = self._entry(partition, key_bytes)
        outcome = apply(entry.state if entry is not None else None, key, item, plan,
                        now_ms=rec.now_ms)  # fmt: skip
        self._keep(partition, key_bytes, entry, outcome)
        found = self.tenants.shadows_for(partition, key.tenant_id) if shadows else None
        shadowed: tuple[ShadowResult, ...] = ()
        if found:
            arrived = arrival_ms(rec)
            shadowed = tuple(
                self._shadow_item(partition, key_bytes, key, item, rec.now_ms, version, other)
                for version, other in found
                if future_reason(item.occurred_at_ms, arrived, other.max_future_ms) is None
            )
        return ItemResult(outcome.changes, outcome.results, None, outcome.forwards,
                          shadows=shadowed)  # fmt: skip

    def _shadow_item(self, partition: int, key_bytes: bytes, key: EntityKey, item: Item,
                     now_ms: int, version: str, plan: Plan) -> ShadowResult:  # fmt: skip
        skey = shadows.state_key(version, key_bytes)
        try:
            entry = self._entry(partition, skey)
            outcome = apply(entry.state if entry is not None else None, key, item, plan,
                            now_ms=now_ms)  # fmt: skip
        except Exception as exc:
            raise ShadowBug(skey, version) from exc
        self._keep(partition, skey, entry, outcome)
        return ShadowResult(version, outcome.changes, outcome.forwards)

    def on_member(self, partition: int, key_bytes: bytes, rec: records.MemberRecord) -> ItemResult:
        """A contact's member update to this deal's or account's roll-ups (of a shadow plan's
        state when it comes from one: nothing if that shadow is gone)."""
        if rec.shadow is not None:
            return self._shadow_member(partition, key_bytes, rec, rec.shadow)
        key = self.entity_key(key_bytes)
        entry = self._entry(partition, key_bytes)
        state = entry.state if entry is not None else None
        plan = self.tenants.plan_for(partition, key.tenant_id)
        outcome = apply_member(state, key, rec.update, plan, now_ms=rec.now_ms)
        self._keep(partition, key_bytes, entry, outcome)
        return ItemResult(outcome.changes)

    def _shadow_member(self, partition: int, key_bytes: bytes, rec: records.MemberRecord,
                       version: str) -> ItemResult:  # fmt: skip
        key = self.entity_key(key_bytes)
        plan = self.tenants.shadow_plan(partition, key.tenant_id, version)
        if plan is None:
            return ItemResult()
        skey = shadows.state_key(version, key_bytes)
        try:
            entry = self._entry(partition, skey)
            state = entry.state if entry is not None else None
            outcome = apply_member(state, key, rec.update, plan, now_ms=rec.now_ms)
        except Exception as exc:
            raise ShadowBug(skey, version) from exc
        self._keep(partition, skey, entry, outcome)
        return ItemResult(shadows=(ShadowResult(version, outcome.changes),))

    def on_recompute(self, partition: int, key_bytes: bytes, items: list[records.ItemRecord],
                     now_ms: int, source_id: str) -> ItemResult | None:  # fmt: skip
        """An entity rebuilt from its retained items under its tenant's (new) plan; None when
        none of them is valid (the entity keeps its values)."""
        key = self.entity_key(key_bytes)
        entry = self._entry(partition, key_bytes)
        plan = self.tenants.plan_for(partition, key.tenant_id)
        bound = plan.max_future_ms  # refused items are left out, as when they came
        parsed = [(parse_input(r.record), r.now_ms, arrival_ms(r)) for r in items]
        valid = [(item, at) for item, at, arrived in parsed if not isinstance(item, Invalid)
                 and future_reason(item.occurred_at_ms, arrived, bound) is None]  # fmt: skip
        if not valid:
            return None
        outcome = recompute(entry.state if entry is not None else None, key, valid, plan,
                            now_ms=now_ms, source_id=source_id)  # fmt: skip
        self._keep(partition, key_bytes, entry, outcome)
        return ItemResult(outcome.changes, (), None, outcome.forwards)

    def advance_due(
        self, partition: int, candidates: list[bytes], now_ms: int
    ) -> tuple[list[ScoreChange], list[Forward]]:
        """Expiries, deferred awards, decay and inactivity due by ``now_ms`` of the candidate
        entities: the changes, and the member updates they send."""
        out: list[ScoreChange] = []
        forwards: list[Forward] = []
        for key_bytes in candidates:
            entry = self._entry(partition, key_bytes)
            if entry is None:
                continue
            due = entry.state.next_due_ms
            if due is None or due > now_ms:  # advanced already in this transaction
                continue
            plan = self.plan_of_state(partition, key_bytes)
            if plan is None:  # a state of a shadow plan discarded since
                continue
            key = self.entity_key(shadows.entity_of(key_bytes))
            outcome = advance(entry.state, key, plan, now_ms=now_ms)
            self._keep(partition, key_bytes, entry, outcome)
            out.extend(outcome.changes)
            forwards.extend(outcome.forwards)
        return out, forwards

    def plan_of_state(self, partition: int, key_bytes: bytes) -> Plan | None:
        """The plan a stored state is scored under: its tenant's, or its shadow plan's (None:
        that shadow is gone)."""
        split = shadows.split_state_key(key_bytes)
        if split is None:
            return self.tenants.plan_for(partition, self.entity_key(key_bytes).tenant_id)
        version, entity = split
        return self.tenants.shadow_plan(partition, self.entity_key(entity).tenant_id, version)

    def dirty_due(self, partition: int, now_ms: int) -> list[bytes]:
        """Dirty entities of the partition already due (their due time is not in the store yet)."""
        return [
            k
            for k, e in self.cache.dirty.items()
            if e.partition == partition
            and e.state.next_due_ms is not None
            and e.state.next_due_ms <= now_ms
        ]

    def _keep(
        self, partition: int, key_bytes: bytes, entry: Entry | None, outcome: Outcome
    ) -> None:
        state: EntityState = outcome.state
        if entry is None:
            entry = self.cache.new(key_bytes, partition, state)
        self.cache.touch(key_bytes, entry, state, (c.score for c in outcome.changes))


def due_candidates(
    stage: EntityStage, partition: int, stored: Callable[[int, int], list[bytes]], now_ms: int,
    limit: int,
) -> list[bytes]:  # fmt: skip
    """Stored due entries plus dirty states already due, without repeats, at most ``limit``."""
    keys = dict.fromkeys(stored(now_ms, limit))
    keys.update(dict.fromkeys(stage.dirty_due(partition, now_ms)))
    return list(keys)[:limit]


def arrival_ms(rec: records.ItemRecord) -> int:
    """When an item's input record arrived: its Kafka timestamp, else (a record without one,
    re-keyed before ingest recorded the wall clock instead) the wall clock at ingest."""
    return rec.appended_ms if rec.appended_ms >= 0 else rec.now_ms
