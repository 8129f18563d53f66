"""The entity stage: load an entity's state, call the pure core, save the state, say what to emit.

Independent of Faust: the agent passes in a :class:`Store` over its tables, so every decision of
this stage is one call away from a plain test. All "now" values come from the records themselves
(see ``streams.records``), which makes a replayed partition produce the same changes again.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from streams import records
from streams.scoring import (
    EntityKey,
    EntityState,
    Invalid,
    Outcome,
    Plan,
    ScoreChange,
    ScoreResult,
    acknowledge,
    advance,
    apply,
    dumps,
    loads,
    next_due_ms,
    parse_input,
)

#: Entities advanced per tick and partition at most; the rest wait for the next tick.
MAX_ADVANCES_PER_TICK = 2000


class Store(Protocol):
    """The tables the stage reads and writes (Faust tables in the service)."""

    def get_state(self, key: bytes) -> bytes | None: ...
    def set_state(self, key: bytes, value: bytes) -> None: ...
    def set_due(self, key: bytes, due_ms: int | None) -> None: ...
    def iter_due(self) -> Iterable[tuple[bytes, int]]: ...


@dataclass(slots=True)
class Emission:
    """What one record of the entity-events topic produced."""

    changes: list[ScoreChange] = field(default_factory=list)
    republished: list[ScoreChange] = field(default_factory=list)
    results: list[tuple[ScoreResult, ...]] = field(default_factory=list)
    #: entity key bytes -> (key, state after this record, names of the scores that changed)
    states: dict[bytes, tuple[EntityKey, EntityState, set[str]]] = field(default_factory=dict)
    #: (key, serialized state, due before, due after): applied by ``EntityStage.commit`` only
    #: once every output of the record has been built, so a failure leaves no half-done work.
    writes: list[tuple[bytes, bytes, int | None, int | None]] = field(default_factory=list)
    writes_due_only: list[bytes] = field(default_factory=list)  # stale due entries to drop
    invalid: str | None = None


@dataclass(slots=True)
class DueIndex:
    """Per partition, a heap of (due_ms, entity key). Rebuilt from the ``due`` table on demand.

    Entries are hints: a popped entry is checked against the entity's current due time.
    """

    partitions: int
    heaps: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)
    current: dict[bytes, int] = field(default_factory=dict)
    valid: bool = False

    def invalidate(self) -> None:
        self.valid = False

    def rebuild(self, entries: Iterable[tuple[bytes, int]]) -> None:
        self.heaps.clear()
        self.current.clear()
        for key, due in entries:
            self.push(key, due)
        for heap in self.heaps.values():
            heapq.heapify(heap)
        self.valid = True

    def push(self, key: bytes, due_ms: int | None) -> None:
        if due_ms is None:
            self.current.pop(key, None)
            return
        if self.current.get(key) == due_ms:
            return
        self.current[key] = due_ms
        heap = self.heaps.setdefault(records.partition_for(key, self.partitions), [])
        heapq.heappush(heap, (due_ms, key))

    def pop_due(self, partition: int, now_ms: int, limit: int) -> Iterator[bytes]:
        heap = self.heaps.get(partition)
        taken = 0
        while heap and heap[0][0] <= now_ms and taken < limit:
            due, key = heapq.heappop(heap)
            if self.current.get(key) == due:
                del self.current[key]
                taken += 1
                yield key

    def wants_tick(self, partition: int, now_ms: int) -> bool:
        """A tick is worth sending while the index is stale or something is due."""
        heap = self.heaps.get(partition)
        return not self.valid or bool(heap and heap[0][0] <= now_ms)

    def backlog(self, now_ms: int) -> int:
        return sum(1 for due in self.current.values() if due <= now_ms)


#: Delivery acknowledgements kept for at most this many entities (then forgotten wholesale,
#: which only leaves a few more changes in some outboxes).
MAX_ACKED_ENTITIES = 200_000


@dataclass(slots=True)
class EntityStage:
    plan: Plan
    due: DueIndex
    #: entity key -> score -> highest seq whose score-changed record Kafka acknowledged
    delivered: dict[bytes, dict[str, int]] = field(default_factory=dict)

    def on_delivered(self, key_bytes: bytes, score: str, seq: int) -> None:
        if len(self.delivered) >= MAX_ACKED_ENTITIES and key_bytes not in self.delivered:
            self.delivered.clear()
        scores = self.delivered.setdefault(key_bytes, {})
        if seq > scores.get(score, 0):
            scores[score] = seq

    def on_item(self, store: Store, key_bytes: bytes, rec: records.ItemRecord) -> Emission:
        out = Emission()
        item = parse_input(rec.record)
        if isinstance(item, Invalid):  # validated at ingest; only a plan/schema skew gets here
            out.invalid = item.reason
            return out
        key = records.entity_key_from_bytes(key_bytes)
        state = self._load(store, key_bytes)
        before = next_due_ms(state)
        outcome = apply(state, key, item, self.plan, now_ms=rec.now_ms)
        self._record(key_bytes, key, before, outcome, out)
        if outcome.replayed:
            out.republished.extend(outcome.replayed)
        return out

    def commit(self, store: Store, emission: Emission) -> None:
        """Write the states of an emission and index their next due times."""
        for key_bytes, blob, due_before, due_after in emission.writes:
            # Written even when nothing changed: after a crash the local state can be ahead of
            # the changelog, and rewriting it on a replayed input levels the changelog again.
            store.set_state(key_bytes, blob)
            if due_after != due_before:
                store.set_due(key_bytes, due_after)
            self.due.push(key_bytes, due_after)
        for key_bytes in emission.writes_due_only:
            store.set_due(key_bytes, None)

    def on_tick(self, store: Store, partition: int, now_ms: int) -> Emission:
        out = Emission()
        if not self.due.valid:
            self.due.rebuild(store.iter_due())
        for key_bytes in list(self.due.pop_due(partition, now_ms, MAX_ADVANCES_PER_TICK)):
            state = self._load(store, key_bytes)
            if state is None:  # the due entry outlived its state: drop it
                out.writes_due_only.append(key_bytes)
                continue
            key = records.entity_key_from_bytes(key_bytes)
            before = next_due_ms(state)
            outcome = advance(state, key, self.plan, now_ms=now_ms)
            self._record(key_bytes, key, before, outcome, out)
        return out

    def _load(self, store: Store, key_bytes: bytes) -> EntityState | None:
        """The entity's state, minus outbox changes already known to be delivered."""
        blob = store.get_state(key_bytes)
        if blob is None:
            return None
        state = loads(blob)
        delivered = self.delivered.pop(key_bytes, None)
        if delivered:
            acknowledge(state, delivered)
        return state

    @staticmethod
    def _record(
        key_bytes: bytes,
        key: EntityKey,
        due_before: int | None,
        outcome: Outcome,
        out: Emission,
    ) -> None:
        state = outcome.state
        out.writes.append((key_bytes, dumps(state), due_before, next_due_ms(state)))
        out.changes.extend(outcome.changes)
        out.results.append(outcome.results)
        if outcome.changes or outcome.replayed:
            names = {c.score for c in (*outcome.changes, *outcome.replayed)}
            out.states[key_bytes] = (key, state, names)
