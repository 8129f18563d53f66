"""The stage of the entity-events topic: each record of a partition through the pure core
(:class:`streams.engine.entities.EntityStage`), its changes published, its plan records switching
the tenant's plan (``streams.engine.plans``).

A core that raises on a record is a bug: the record is marked (poisoned), the transaction aborts,
and when the record comes again it is dead-lettered instead, and processing goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from streams.engine.clients import Record
from streams.engine.entities import EntityStage, ItemResult, ShadowBug
from streams.engine.outputs import Outputs, letter, summary, unexpected
from streams.engine.plans import PlanSwitch, Poison
from streams.engine.stage import Abort
from streams.metrics import Metrics
from streams.wire import records

log = logging.getLogger(__name__)


class ScoreStage:
    def __init__(self, stage: EntityStage, plans: PlanSwitch, poison: Poison, metrics: Metrics,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.stage, self.plans, self.poison = stage, plans, poison
        self.metrics, self.clock = metrics, clock
        #: records on which a shadow plan raised: when they come again, the active plan only
        self.shadow_failed: set[tuple[str, int, int]] = set()

    def process(self, partition: int, batch: list[Record], out: Outputs) -> None:
        started = time.perf_counter()
        emitted_ms = int(self.clock() * 1000)
        txn = out.txn
        try:
            for rec in batch:
                poisoned = self.poison.pop((rec.topic, partition, rec.offset), None)
                if poisoned is not None:
                    out.dead_letter(letter(rec, *poisoned))
                    self.plans.switch_without_recompute(rec, poisoned, out)
                else:
                    self._one(rec, emitted_ms, out)
                txn.consumed(rec.topic, partition, rec.offset)
        finally:  # counted once per label set per batch (as before: counted again if replayed)
            self.metrics.flush()
        if batch:
            self.metrics.processing_seconds.labels("score").observe(
                (time.perf_counter() - started) / len(batch)
            )

    def _one(self, rec: Record, emitted_ms: int, out: Outputs) -> None:
        try:
            item = records.decode(rec.value or b"")
        except Exception as exc:  # not an entity-events record: nothing was touched
            out.dead_letter(unexpected(rec, exc))
            return
        if isinstance(item, records.Tick):  # left by the Faust runtime: time is local now
            return
        if isinstance(item, records.PlanRecord):
            self.plans.on_plan(rec, item, emitted_ms, out)
            return
        result = self._core(rec, item)
        if result.invalid is not None:
            letter_ = letter(rec, result.error_class, result.invalid)
            origin = item.source if isinstance(item, records.ItemRecord) else None
            out.dead_letter(dataclasses.replace(letter_, origin=origin))
        out.publish(result.changes, emitted_ms, rec.partition, rec.key or b"")
        for shadow in result.shadows:
            out.publish_shadow(shadow.changes, emitted_ms)
            out.forward(shadow.forwards, item.now_ms, shadow=shadow.version)
        if isinstance(item, records.MemberRecord):
            self.metrics.child(self.metrics.member_updates, "received").inc()
            self.metrics.observe_changes(result.changes)
        else:
            out.forward(result.forwards, item.now_ms)
            self.metrics.observe_item(result.changes, result.results, item.source[0],
                                      item.appended_ms, emitted_ms)  # fmt: skip

    def _core(self, rec: Record, item: records.ItemRecord | records.MemberRecord) -> ItemResult:
        key = rec.key or b""
        where = (rec.topic, rec.partition, rec.offset)
        try:
            if isinstance(item, records.MemberRecord):
                if item.shadow is not None and where in self.shadow_failed:
                    self.shadow_failed.discard(where)
                    return ItemResult()
                return self.stage.on_member(rec.partition, key, item)
            if where in self.shadow_failed:
                self.shadow_failed.discard(where)
                return self.stage.on_item(rec.partition, key, item, shadows=False)
            return self.stage.on_item(rec.partition, key, item)
        except ShadowBug as bug:  # the shadow's bug: the active plan scores the item again
            log.error("%s[%d]@%d raised in the core under shadow plan %s, aborting; it is "
                      "scored again without the shadow: %r", rec.topic, rec.partition,
                      rec.offset, bug.version, bug.__cause__)  # fmt: skip
            self.shadow_failed.add(where)
            self.stage.cache.forget(bug.key)  # changed in place, maybe
            raise Abort from bug
        except Exception as exc:  # a core bug: the state may be half-changed
            log.error("%s[%d]@%d raised in the core, aborting: %r", rec.topic, rec.partition,
                      rec.offset, exc)  # fmt: skip
            self.poison[(rec.topic, rec.partition, rec.offset)] = (
                f"Unexpected:{type(exc).__name__}",
                summary(exc),
            )
            self.stage.cache.forget(key)  # changed in place, maybe
            raise Abort from exc
