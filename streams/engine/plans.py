"""Tenant plans in the loop (``streams.engine.tenants``): the ``plans`` topic's stage, the switch
of a tenant's plan where its plan record reaches an entity-events partition, and the recompute:
the tenant's entities rebuilt under the new plan from the history read before the record.

A recompute stops its batch before the plan record (:class:`~streams.engine.stage.RecomputeStop`):
the loop commits what came before, :meth:`PlanSwitch.prepare` reads the partition's history
outside any transaction (a long read must not outlive the transaction timeout), and the record is
processed again with its history in hand (:meth:`PlanSwitch.on_plan`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from prometheus_client import Gauge

from streams.engine import shadows
from streams.engine.clients import LogReader, Record
from streams.engine.entities import EntityStage
from streams.engine.outputs import Outputs, letter, summary
from streams.engine.stage import Abort, CoreBug, RecomputeStop
from streams.engine.tenants import Checked, check, status_record
from streams.metrics import Metrics
from streams.state.store import PLANS_KEY, pack_value, segment_prefix
from streams.wire import records

log = logging.getLogger(__name__)
#: Longest read of a partition's history for a recompute (within ``max.poll.interval.ms``, 300 s
#: by default); past it the plan switches without the recompute (dead letter, error log).
HISTORY_READ_S = 200.0
#: (topic, partition, offset) -> (error class, reason) of records dead-lettered when they come again
Poison = dict[tuple[str, int, int], tuple[str, str]]


class PlansStage:
    """Records of the ``plans`` topic: a status each; an accepted plan (or a removal) goes to
    every entity-events partition, in this transaction."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.time) -> None:
        self.metrics, self.clock = metrics, clock

    def process(self, partition: int, batch: list[Record], out: Outputs) -> None:
        now_ms = int(self.clock() * 1000)
        partitions = out.topics.counts[out.topics.entity]
        for rec in batch:
            source = (rec.topic, rec.partition, rec.offset)
            try:
                checked = check(rec.key, rec.value, rec.headers)
            except Exception as exc:  # never a crash on a record of the plans topic
                log.error("checking %s[%d]@%d raised: %r", *source, exc)
                checked = Checked("", "rejected", errors=(f"cannot be checked: {exc!r}"[:500],))
            self.metrics.child(self.metrics.plan_updates, checked.status).inc()
            if checked.status == "rejected":
                log.warning("plan of tenant %r rejected (%s[%d]@%d): %s", checked.tenant,
                            *source, "; ".join(checked.errors))  # fmt: skip
            else:
                log.info("%s of tenant %r %s: version %s",
                         "shadow plan" if checked.shadow else "plan", checked.tenant,
                         checked.status, checked.version)  # fmt: skip
                value = records.encode_plan(
                    checked.tenant, checked.version, checked.text, now_ms=now_ms,
                    source=source, recompute_from_ms=checked.recompute_from_ms,
                    shadow=checked.shadow,
                )  # fmt: skip
                for target in range(partitions):
                    out.entity_record(None, value, target)
            out.plan_status(rec.key, status_record(checked, source=source, at_ms=now_ms))
            out.txn.consumed(rec.topic, rec.partition, rec.offset)


@dataclass(slots=True)
class PlanSwitch:
    """A tenant's plan switching on an entity-events partition, with its recompute."""

    stage: EntityStage
    metrics: Metrics
    poison: Poison
    #: a reader of the entity-events topic for recomputes (made on first use)
    new_reader: Callable[[], LogReader]
    max_items: int
    clock: Callable[[], float] = time.time
    #: (partition, offset) of a recompute's plan record -> its history, read between two
    #: transactions (:meth:`prepare`)
    recomputes: dict[tuple[int, int], list[tuple[bytes, bytes]]] = field(default_factory=dict)
    #: a recompute ran: commit it at once
    commit_now: bool = False
    #: (tenant, version) label sets of ``leadscore_tenant_plan`` set now
    labels: set[tuple[str, str]] = field(default_factory=set)
    reader: LogReader | None = None
    #: ``LEADSCORE_SHADOWS_PER_TENANT``
    shadows_per_tenant: int = 1
    #: (tenant, version) label sets of ``leadscore_shadow_plan`` set now
    shadow_labels: set[tuple[str, str]] = field(default_factory=set)

    def on_plan(self, rec: Record, plan: records.PlanRecord, emitted_ms: int,
                out: Outputs) -> None:  # fmt: skip
        """A plan record: switch the tenant here, with its recompute if it asks for one."""
        partition, offset = rec.partition, rec.offset
        if plan.shadow:
            self.on_shadow(rec, plan, out)
            return
        if self.stage.tenants.was_applied(partition, plan.tenant, plan.source[2]):
            log.info("partition %d: plan record %s of tenant %r applied already: skipped",
                     partition, plan.source, plan.tenant)  # fmt: skip
            return
        history = None
        if plan.recompute_from_ms is not None and plan.text is not None:
            history = self.recomputes.pop((partition, offset), None)
            if history is None:
                raise RecomputeStop(partition, offset, plan)
        if not self.switch(rec, plan, out) or history is None:
            return
        try:
            self.rebuild(partition, plan, history, emitted_ms, out)
        except CoreBug as bug:  # the plan will switch without the recompute (see ScoreStage)
            exc = bug.__cause__ or bug
            log.error("%s[%d]@%d: the recompute raised in the core, aborting; the plan will "
                      "switch without it: %r", rec.topic, partition, offset, exc)  # fmt: skip
            self.poison[(rec.topic, partition, offset)] = (
                f"RecomputeFailed:{type(exc).__name__}",
                summary(exc),
            )
            raise Abort from exc
        self.commit_now = True

    def switch(self, rec: Record, plan: records.PlanRecord, out: Outputs) -> bool:
        """A plan record reached this partition: its tenant switches here, for good. False
        when this worker cannot compile the plan (accepted by a worker of another version):
        the record is dead-lettered and the old plan stays."""
        tenants, partition = self.stage.tenants, rec.partition
        before = tenants.plan_for(partition, plan.tenant)
        try:
            now = tenants.switch(partition, plan.tenant, plan.text, plan.source[2])
        except Exception as exc:
            out.dead_letter(letter(rec, "PlanRejected", str(exc)[-1500:]))
            return False
        out.txn.put(partition, PLANS_KEY, pack_value(None, tenants.blob(partition)))
        log.info("partition %d: tenant %r now runs plan %s (was %s)", partition, plan.tenant,
                 now.version, before.version)  # fmt: skip
        self.gauges()
        return True

    def on_shadow(self, rec: Record, plan: records.PlanRecord, out: Outputs) -> None:
        """A shadow plan record (``streams.engine.shadows``): the tenant's shadow starts here,
        with empty states, or (no text) stops, its states dropped in this transaction."""
        tenants, partition, version = self.stage.tenants, rec.partition, plan.version or ""
        if tenants.was_shadow_applied(partition, plan.tenant, plan.source[2]):
            return
        running = {v for v, _ in tenants.shadows_for(partition, plan.tenant)}
        if (
            plan.text is not None
            and version not in running
            and (len(running) >= self.shadows_per_tenant)
        ):
            why = (f"tenant {plan.tenant!r} runs {len(running)} shadow plan(s) "
                   f"({', '.join(sorted(running)) or 'none'}); LEADSCORE_SHADOWS_PER_TENANT "
                   f"allows {self.shadows_per_tenant}: discard one first")  # fmt: skip
            log.warning("partition %d: shadow plan %s refused: %s", partition, version, why)
            out.dead_letter(letter(rec, "ShadowRejected", why))
            return
        try:
            tenants.switch_shadow(partition, plan.tenant, version, plan.text, plan.source[2])
        except Exception as exc:  # compiled by a worker of another version only
            out.dead_letter(letter(rec, "PlanRejected", str(exc)[-1500:]))
            return
        out.txn.put(partition, PLANS_KEY, pack_value(None, tenants.blob(partition)))
        if plan.text is None:
            dropped = self.drop_shadow(partition, plan.tenant, version, out)
            log.info("partition %d: tenant %r's shadow plan %s discarded (%d states dropped)",
                     partition, plan.tenant, version, dropped)  # fmt: skip
        else:
            log.info("partition %d: tenant %r runs shadow plan %s", partition, plan.tenant,
                     version)  # fmt: skip
        self.gauges()
        self.commit_now = True

    def drop_shadow(self, partition: int, tenant: str, version: str, out: Outputs) -> int:
        """Every state of the tenant's shadow ``version`` on the partition: out of the cache,
        and a tombstone each to the changelog and the store, in this transaction."""
        prefix = shadows.tenant_prefix(version, tenant)
        cache = self.stage.cache
        for key in [k for k, e in cache.entries.items()
                    if e.partition == partition and k.startswith(prefix)]:  # fmt: skip
            cache.forget(key)
        store = self.stage.stores.get(partition)
        stored = store.scan_keys(prefix) if store is not None else []
        # their sealed segments (``streams.scoring.segments``) go with them
        sealed = store.scan_keys(segment_prefix(prefix)) if store is not None else []
        for key in [*stored, *sealed]:
            # a tombstone (no value): the transaction sends it to the changelog, and the store
            # deletes the state and its due time (``PartitionStore.write``)
            out.txn.put(partition, key, None)  # type: ignore[arg-type]
        return len(stored)

    def switch_without_recompute(self, rec: Record, why: tuple[str, str], out: Outputs) -> None:
        """A poisoned record that is a plan record (its recompute raised or was refused):
        switch anyway, so that the partition runs the plan every other partition runs; a
        refusal is also a ``plan-status`` record (``recompute-refused``) for the tenant."""
        try:
            plan = records.decode(rec.value or b"")
        except Exception:  # not a plan record: nothing to switch
            return
        if (
            not isinstance(plan, records.PlanRecord)
            or plan.shadow
            or self.stage.tenants.was_applied(rec.partition, plan.tenant, plan.source[2])
        ):
            return
        if self.switch(rec, plan, out) and why[0].startswith("RecomputeRefused"):
            status = refusal_record(plan, partition=rec.partition, reason=why[1],
                                    at_ms=int(self.clock() * 1000))  # fmt: skip
            out.plan_status((plan.tenant or "").encode(), status)

    def prepare(self, stop: RecomputeStop, topic: str) -> None:
        """The partition's items appended since the recompute's start, up to the plan record,
        read outside any transaction."""
        started = time.monotonic()
        if self.reader is None:
            self.reader = self.new_reader()
        tenant = stop.record.tenant
        key = (topic, stop.partition, stop.offset)
        try:
            history = read_history(self.reader, topic, stop.partition,
                                   stop.record.recompute_from_ms or 0, stop.offset,
                                   HISTORY_READ_S, max_items=self.max_items,
                                   wanted=lambda k: self.stage.entity_key(k).tenant_id
                                   == tenant)  # fmt: skip
        except HistoryTooLarge as exc:  # refused: the plan switches without it, and says so
            log.error("partition %d: recompute of tenant %r refused: %s; the plan switches "
                      "without it", stop.partition, tenant, exc)  # fmt: skip
            self.poison[key] = ("RecomputeRefused:HistoryTooLarge", str(exc))
            return
        except KafkaException as exc:  # the plan switches without the recompute, loudly
            reason = f"reading {topic}[{stop.partition}] failed: {exc.args[0]}"
            log.error("partition %d: recompute of tenant %r: %s; the plan switches without "
                      "it", stop.partition, tenant, reason)  # fmt: skip
            self.poison[key] = ("RecomputeFailed:HistoryUnread", reason)
            return
        self.recomputes[(stop.partition, stop.offset)] = history
        log.info("partition %d: recompute of tenant %r: %d items read in %.1fs", stop.partition,
                 tenant, len(history), time.monotonic() - started)  # fmt: skip

    def rebuild(self, partition: int, plan: records.PlanRecord, history: list[tuple[bytes, bytes]],
                emitted_ms: int, out: Outputs) -> None:  # fmt: skip
        """Every entity of the tenant with items in the history, rebuilt under its new plan."""
        by_entity: dict[bytes, list[bytes]] = {}
        for key, value in history:
            by_entity.setdefault(key, []).append(value)
        source_id = f"recompute:{plan.version}"
        for key, values in by_entity.items():
            items = [r for r in map(records.decode, values) if isinstance(r, records.ItemRecord)]
            try:
                result = self.stage.on_recompute(partition, key, items, plan.now_ms, source_id)
            except Exception as exc:
                raise CoreBug from exc
            if result is None:  # no valid item: the entity keeps its values
                continue
            out.publish(result.changes, emitted_ms, partition, key)
            out.forward(result.forwards, plan.now_ms)
            self.metrics.observe_changes(result.changes)
        self.metrics.flush()

    def forget(self, partitions: set[int]) -> None:
        """Partitions released: their histories read for a recompute go."""
        self.recomputes = {k: v for k, v in self.recomputes.items() if k[0] not in partitions}

    def gauges(self) -> None:
        tenants = self.stage.tenants
        self.labels = _set_gauge(self.metrics.tenant_plans, tenants.running(), self.labels)
        self.shadow_labels = _set_gauge(self.metrics.shadow_plans, tenants.running_shadows(),
                                        self.shadow_labels)  # fmt: skip

    def close(self) -> None:
        if self.reader is not None:
            close = getattr(self.reader, "close", None)
            if close is not None:
                close()


def _set_gauge(gauge: Gauge, running: dict[str, dict[str, list[int]]],
               before: set[tuple[str, str]]) -> set[tuple[str, str]]:  # fmt: skip
    """tenant -> version -> partitions as a gauge of partitions per (tenant, version); the
    label sets gone since ``before`` are removed. Returns the label sets set now."""
    now = {(tenant, version): len(partitions)
           for tenant, versions in running.items()
           for version, partitions in versions.items()}  # fmt: skip
    for labels in before - now.keys():
        gauge.remove(*labels)
    for labels, count in now.items():
        gauge.labels(*labels).set(count)
    return set(now)


def refusal_record(rec: records.PlanRecord, *, partition: int, reason: str, at_ms: int) -> bytes:
    """The ``plan-status`` value of a recompute refused on one partition (the plan switched
    there without it)."""
    topic, source_partition, offset = rec.source
    return json.dumps({
        "tenant": rec.tenant, "status": "recompute-refused", "version": rec.version,
        "errors": [reason], "at_ms": at_ms, "recompute_from_ms": rec.recompute_from_ms,
        "partition": partition,
        "source": {"topic": topic, "partition": source_partition, "offset": offset},
    }).encode()  # fmt: skip


class HistoryTooLarge(Exception):
    """A recompute's history holds more items than ``recompute_max_items`` allows."""


def read_history(reader: LogReader, topic: str, partition: int, from_ms: int, until: int,
                 timeout_s: float, *, wanted: Callable[[bytes], bool],
                 max_items: int) -> list[tuple[bytes, bytes]]:  # fmt: skip
    """The committed input items of ``topic[partition]`` before offset ``until`` whose input
    record was appended at or after ``from_ms`` and whose key is ``wanted`` (the tenant's), in
    offset order, as (key, value) bytes (decoded again per entity: a decoded item costs several
    times its bytes). More than ``max_items`` of them raise ``HistoryTooLarge``: the memory a
    recompute holds is bounded."""
    (start,) = reader.offsets_for_times([TopicPartition(topic, partition, from_ms)],
                                        timeout=timeout_s)  # fmt: skip
    first = start.offset if 0 <= start.offset < until else until
    out: list[tuple[bytes, bytes]] = []
    if first >= until:
        return out
    reader.assign([TopicPartition(topic, partition, first)])
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if time.monotonic() > deadline:
                late = f"not read to offset {until} in {timeout_s:g} s"
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, late))
            for rec in reader.consume(1000, 0.2):
                if rec.offset >= until:
                    return out
                key, value = rec.key, rec.value
                if key is not None and value is not None and _wanted_item(key, value, from_ms,
                                                                          wanted):  # fmt: skip
                    if len(out) >= max_items:
                        raise HistoryTooLarge(
                            f"the tenant's history on {topic}[{partition}] since the "
                            f"recompute's start holds more than {max_items} items "
                            "(LEADSCORE_RECOMPUTE_MAX_ITEMS)"
                        )
                    out.append((key, value))
                if rec.offset == until - 1:
                    return out
    finally:
        reader.unassign()


def _wanted_item(key: bytes, value: bytes, from_ms: int, wanted: Callable[[bytes], bool]) -> bool:
    if not wanted(key):
        return False
    try:
        item = records.decode(value)
    except Exception:  # dead-lettered when it was processed
        return False
    return isinstance(item, records.ItemRecord) and item.appended_ms >= from_ms
