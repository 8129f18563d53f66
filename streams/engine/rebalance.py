"""The partitions this worker holds, moved by the consumer's rebalance callbacks, and their
restore from the changelog (``streams.engine.partitions`` has the lifecycle table).

- assigned: committed offsets read; entity partitions paused, their stores opened and restored
  (``streams.state.restore``), then resumed;
- revoked (cooperative, still a member): the transaction commits first, then the partitions go;
- lost (the session expired): the transaction aborts, nothing is committed, the partitions go.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from confluent_kafka import TopicPartition

from streams.engine.clients import ConsumerLike
from streams.engine.entities import EntityStage
from streams.engine.kafka import ProducerLost, until_settled
from streams.engine.partitions import Held, PartitionPhase, Partitions
from streams.engine.plans import PlanSwitch
from streams.metrics import Metrics
from streams.scoring import EntityState
from streams.state.cache import Getter, Loader
from streams.state.restore import Restorer
from streams.state.store import PLANS_KEY, PartitionStore, stored_state, unpack_value

T = TypeVar("T")

log = logging.getLogger(__name__)

Rewind = dict[tuple[str, int], int]


@dataclass(slots=True)
class Hooks:
    """What the rebalance callbacks need of the loop."""

    commit: Callable[[], None]
    #: abort the open transaction (or drop it, its producer lost); where to rewind
    abort: Callable[[], Rewind]
    seek: Callable[[Rewind], None]


@dataclass(slots=True)
class Rebalance:
    consumer: ConsumerLike
    entity_topic: str
    partitions: Partitions
    stage: EntityStage
    restorer: Restorer
    open_store: Callable[[int], PartitionStore]
    plans: PlanSwitch
    metrics: Metrics
    timeout_s: float
    hooks: Hooks
    #: guards ``partitions`` and the stores' lifetimes against the HTTP thread
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: (topic, partition) -> committed position (next offset) of every assigned partition
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    #: (topic, partition) assigned to this consumer now
    assigned: set[tuple[str, int]] = field(default_factory=set)
    #: the producer was lost inside a callback: the loop recovers when ``consume`` returns
    lost: ProducerLost | None = None

    def on_assign(self, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.inc()
        self.consumer.incremental_assign(partitions)
        self.assigned.update((tp.topic, tp.partition) for tp in partitions)
        committed = until_settled(
            "reading the committed offsets of new partitions",
            lambda: self.consumer.committed(partitions, timeout=self.timeout_s),
            timeout_s=self.timeout_s,
        )
        for tp in committed:
            if tp.error is None and tp.offset >= 0:
                self.positions[(tp.topic, tp.partition)] = tp.offset
        entity = [tp.partition for tp in partitions if tp.topic == self.entity_topic]
        with self.lock:
            for p in entity:
                store = self.open_store(p)
                self.partitions.held[p] = Held(store)
                self.stage.loaders[p] = _loader(store)
                self.stage.stores[p] = store
            self.partitions.assigned_once = True
        self.restore(entity)
        log.info("assigned %s", _names(partitions))

    def restore(self, entity: list[int]) -> None:
        """Pause the entity partitions and restore their stores; resumed once caught up."""
        if not entity:
            return
        self.consumer.pause([TopicPartition(self.entity_topic, p) for p in entity])
        ready = []
        with self.lock:
            for p in entity:
                held = self.partitions.held[p]
                held.phase = PartitionPhase.RESTORING
                if self.restorer.start(p, held.store):  # nothing to restore
                    held.phase = PartitionPhase.ACTIVE
                    self.load_plans(p, held.store)
                    ready.append(TopicPartition(self.entity_topic, p))
        self.metrics.partitions_restoring.set(len(self.restorer.active))
        if ready:
            self.consumer.resume(ready)
            self.plans.gauges()

    def restore_held(self) -> None:
        """After a commit of unknown outcome: the stores may be behind the changelog. Every held
        entity partition drops its cached states and catches up from the changelog again."""
        held = sorted(self.partitions.held)
        self.restorer.cancel(set(held))
        self.stage.cache.drop_partitions(set(held))
        self.restore(held)

    def on_revoke(self, partitions: list[TopicPartition]) -> None:
        try:
            self.hooks.commit()  # everything processed so far, before the partitions go
        except ProducerLost as lost:  # recovered once consume returns; the new owner redoes it
            self.lost = lost
            self.hooks.abort()
        self.release(partitions)
        log.info("revoked %s", _names(partitions))

    def on_lost(self, partitions: list[TopicPartition]) -> None:
        log.warning("lost %s: aborting the open transaction", _names(partitions))
        rewind = self.hooks.abort()
        self.release(partitions)
        self.hooks.seek(rewind)

    def release(self, partitions: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in partitions if tp.topic == self.entity_topic}
        for tp in partitions:
            self.assigned.discard((tp.topic, tp.partition))
            self.positions.pop((tp.topic, tp.partition), None)
            with contextlib.suppress(KeyError):  # never measured
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        if not gone:
            return
        self.restorer.cancel(gone)
        self.plans.forget(gone)
        self.metrics.partitions_restoring.set(len(self.restorer.active))
        self.stage.cache.drop_partitions(gone)
        with self.lock:
            for p in gone:
                held = self.partitions.held.pop(p, None)
                self.stage.loaders.pop(p, None)
                self.stage.stores.pop(p, None)
                self.stage.tenants.drop(p)
                if held is not None:
                    held.store.close()
        self.plans.gauges()

    def restore_step(self) -> None:
        before = self.restorer.restored_records
        done = self.restorer.step(10_000, 0.05)
        self.metrics.restored_records.inc(self.restorer.restored_records - before)
        self.metrics.partitions_restoring.set(len(self.restorer.active))
        for partition, job in done:
            with self.lock:
                held = self.partitions.held.get(partition)
                if held is None:
                    continue
                held.phase = PartitionPhase.ACTIVE
                self.load_plans(partition, held.store)
            self.consumer.resume([TopicPartition(self.entity_topic, partition)])
            elapsed = time.monotonic() - job.started
            self.metrics.recovery_seconds.set(elapsed)
            log.info("partition %d restored: %d changelog records in %.1fs", partition,
                     job.records, elapsed)  # fmt: skip
        if done:
            self.plans.gauges()

    def load_plans(self, partition: int, store: PartitionStore) -> None:
        """The partition's committed tenant plans, from its store."""
        value = store.get(PLANS_KEY)
        failed = self.stage.tenants.load(partition, None if value is None else
                                         unpack_value(value)[1])  # fmt: skip
        for why in failed:
            log.error("partition %d: a stored tenant plan does not compile with this version "
                      "(it runs the default plan here): %s", partition, why[:1500])  # fmt: skip

    def reload_pending_plans(self) -> None:
        """The plans switched in an aborted transaction go back to the stores' (no lock: may
        run with it held, on the loop's thread, which alone changes the stores)."""
        tenants = self.stage.tenants
        switched = bool(tenants.pending)
        for partition in list(tenants.pending):
            held = self.partitions.held.get(partition)
            if held is None:
                tenants.drop(partition)
            else:
                self.load_plans(partition, held.store)
        if switched:
            self.plans.gauges()

    def gauges(self, processed: dict[tuple[str, int], int], memory_bytes: int, ready: bool) -> None:
        """Lag per assigned partition (from ``processed`` offsets, else the committed ones),
        entities held, the cache, RocksDB's memory, readiness."""
        metrics = self.metrics
        for tp in self.consumer.assignment():
            marks = self.consumer.watermarks(tp)
            key = (tp.topic, tp.partition)
            done = processed.get(key) or self.positions.get(key, 0)
            if marks is not None and marks[1] >= 0:
                lag = max(0, marks[1] - done)
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
        with self.lock:
            metrics.entities.set(sum(h.store.entities for h in self.partitions.held.values()))
        metrics.cache_entries.set(len(self.stage.cache))
        metrics.cache_bytes.set(self.stage.cache.bytes)
        metrics.rocksdb_memory_bytes.set(memory_bytes)
        metrics.ready.set(1 if ready else 0)

    def read_state(self, partition: int, key: bytes) -> tuple[str, EntityState | None]:
        """Committed state of an entity of ``partition``: ("ok", state or None), "restoring" or
        "elsewhere" (the HTTP thread)."""
        where, state = self.read_store(partition, lambda store: stored_state(store, key))
        return where, state

    def read_store(
        self, partition: int, read: Callable[[PartitionStore], T]
    ) -> tuple[str, T | None]:
        """``read`` of the committed store of ``partition``: ("ok", its answer), or ("restoring"
        or "elsewhere", None) (the HTTP thread)."""
        with self.lock:
            held = self.partitions.held.get(partition)
            if held is None:
                return "elsewhere", None
            if held.phase is PartitionPhase.RESTORING:
                return "restoring", None
            return "ok", read(held.store)

    def close(self) -> None:
        with self.lock:
            for held in self.partitions.held.values():
                held.store.close()
            self.partitions.held.clear()


def _loader(store: PartitionStore) -> Loader:
    def load(key: bytes) -> tuple[int | None, bytes, Getter] | None:
        value = store.get(key)
        if value is None:
            return None
        due, blob = unpack_value(value)
        return due, blob, store.get

    return load


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
