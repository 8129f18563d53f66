"""The processing loop: one consumer, one transactional producer, batches, transactions.

Each turn of the loop:

1. restore a batch of changelog records for partitions still restoring (``streams.state.restore``);
2. ``consume`` up to ``batch_size`` records and group them per partition, in order;
3. input partitions go through ingest (decode, validate, re-key to the entity-events partition,
   or dead-letter); entity-events partitions go through the entity stage (the pure core, states
   in the cache); every output is produced into the open transaction;
4. every ``tick_interval_ms``, expiries and deferred awards that are due run from the stores' due
   index (plus dirty states already due), in the same transaction;
5. every ``commit_interval_ms`` or ``commit_max_records`` records, the transaction commits
   (``streams.engine.transaction``).

Errors: a bad record is a dead letter. An exception of the core on an item is a bug: the
transaction aborts, the item is marked and dead-lettered when it comes again, and processing goes
on. An abortable Kafka error aborts, drops the dirty states, and rewinds every partition to its
first uncommitted offset. A fatal one (fenced, a commit timed out, anything unknown) stops the
process with :data:`EXIT_FATAL` before anything else is committed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any, cast

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from streams.engine.allocator import trim
from streams.engine.entities import EntityStage, due_candidates
from streams.engine.ingest import Ingest
from streams.engine.kafka import (
    WATCHDOG,
    ErrorKind,
    Fatal,
    classify,
    consumer_config,
    producer_config,
    restore_consumer_config,
    until_settled,
)
from streams.engine.partitions import Held, PartitionPhase, Partitions
from streams.engine.tenants import Checked, check, status_record
from streams.engine.transaction import Phase, Transaction, TransactionalProducer
from streams.metrics import Metrics
from streams.scoring import EntityState, Forward, Plan, ScoreChange, dumps, loads
from streams.settings import Settings
from streams.state.cache import Entry, StateCache
from streams.state.restore import RestoreError, Restorer
from streams.state.store import PLANS_KEY, PartitionStore, StoreOptions, pack_value, unpack_value
from streams.wire import records
from streams.wire.codec import Codec, RegistryError
from streams.wire.deadletter import DeadLetter
from streams.wire.publish import change_key, change_record, score_records
from streams.wire.routing import partition_for
from streams.wire.topics import entity_topic, input_topics, state_changelog_topic

log = logging.getLogger(__name__)
EXIT_FATAL = 70
#: Entities advanced per partition and due check at most; the rest wait for the next check.
MAX_ADVANCES = 2000
GAUGE_INTERVAL_S = 5.0
TRIM_INTERVAL_S = 60.0  # malloc_trim: it walks every arena, so not on every batch
#: Longest wait of one ``consume`` call for a full batch (none while partitions restore).
POLL_S = 0.02
#: A transaction may commit this early when the input ran dry (see ``Engine._turn``).
EARLY_COMMIT_S = 0.02
#: Keyed records leave the choice of partition to the producer's partitioner, ``murmur2_random``
#: (librdkafka's murmur2, in C): the Java client's choice, which ``streams.wire.routing``
#: computes too for the readers that must know where an entity lives (the HTTP API, tools, tests).
PARTITIONER = -1
#: Pause before an input whose writer schema could not be fetched (registry unreachable) is
#: tried again: the transaction aborts and rewinds, nothing is dead-lettered.
REGISTRY_RETRY_S = 1.0
#: Longest read of a partition's history for a recompute (within ``max.poll.interval.ms``, 300 s
#: by default); past it the plan switches without the recompute (dead letter, error log).
HISTORY_READ_S = 200.0


class _Abort(Exception):
    """Abort the open transaction and rewind (raised inside a batch)."""


class _CoreBug(Exception):
    """The core raised on a recompute (its ``__cause__``)."""


class _Recompute(Exception):
    """A plan record asks for a recompute: stop the batch before it (raised inside a batch)."""

    def __init__(self, partition: int, offset: int, record: records.PlanRecord) -> None:
        super().__init__(partition, offset)
        self.partition, self.offset, self.record = partition, offset, record


class Engine:
    """Everything of one worker process; built by ``streams.commands.worker``, run by
    :meth:`run`."""

    def __init__(
        self,
        settings: Settings,
        plan: Plan,
        *,
        metrics: Metrics,
        client_id: str,
        transactional_id: str,
        clock: Callable[[], float] = time.time,
        codec: Codec | None = None,
    ) -> None:
        self.settings, self.plan, self.metrics, self.clock = settings, plan, metrics, clock
        self.codec = codec if codec is not None else Codec.load()  # see streams.wire.registry
        sources = input_topics(settings)
        self.inputs = set(sources)
        self.plans_topic = settings.topic_plans
        self.ingest = Ingest(self.codec, sources, {t: settings.input_format(t) for t in sources},
                             plan.max_future_ms)  # fmt: skip
        self.entity_topic = entity_topic(settings)
        self.metrics.plan.info({"version": plan.version, "source": str(settings.plan_path),
                                "scores": str(len(plan.scores))})  # fmt: skip
        self.changelog = state_changelog_topic(settings)
        self.store_root = Path(settings.data_dir) / "state"
        self.store_options = StoreOptions(
            settings.rocksdb_block_cache_bytes,
            settings.rocksdb_write_buffer_bytes,
            settings.rocksdb_max_write_buffers,
            settings.rocksdb_memtable_bytes,
        )
        self.consumer = Consumer(consumer_config(settings, client_id=client_id))
        self.producer = Producer(producer_config(settings, transactional_id=transactional_id))
        self.restorer = Restorer(
            Consumer(restore_consumer_config(settings)), self.changelog,
            settings.kafka_call_timeout_s,
        )  # fmt: skip
        self.partitions = Partitions()
        #: Guards ``partitions`` and the stores' lifetimes against the HTTP thread.
        self.lock = threading.Lock()
        self.cache = StateCache(settings.cache_entities, loads, settings.cache_bytes)
        self.stage = EntityStage(plan, self.cache)
        self.txn = Transaction(
            cast(TransactionalProducer, self.producer),
            self.changelog,
            settings.kafka_call_timeout_s,
            score_records=self._score_records, encode_state=dumps,
            make_offsets=lambda offs: [TopicPartition(t, p, o) for (t, p), o in offs.items()],
        )  # fmt: skip
        #: (topic, partition) -> committed position (next offset) of every assigned partition
        self.positions: dict[tuple[str, int], int] = {}
        #: records whose processing raised inside the core: dead-lettered when they come again
        self.poison: dict[tuple[str, int, int], tuple[str, str]] = {}
        #: entities whose time-driven work raised inside the core: skipped until a restart
        self.bad_due: set[bytes] = set()
        self.counts: dict[str, int] = {}
        #: (topic, partition) assigned to this consumer now (kept by the rebalance callbacks)
        self.assigned: set[tuple[str, int]] = set()
        self.stopping = False
        self.commits = 0
        self.last_due = 0.0
        self.last_gauges = 0.0
        self.last_trim = time.monotonic()
        #: (partition, offset) of a recompute's plan record -> its history, read between two
        #: transactions (``_prepare_recompute``)
        self.recomputes: dict[tuple[int, int], list[tuple[bytes, bytes]]] = {}
        self.commit_now = False
        self._history: Consumer | None = None
        #: (account, version) label sets of ``leadscore_tenant_plan`` set now
        self.plan_labels: set[tuple[str, str]] = set()

    # ----- lifecycle ----------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT (returns 0) or a fatal error (returns ``EXIT_FATAL``)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        try:
            WATCHDOG.configure(self.settings.kafka_call_timeout_s, exit_code=EXIT_FATAL)
            with WATCHDOG.guard("init_transactions"):
                self.producer.init_transactions(self.settings.kafka_call_timeout_s)
            self.counts = self._partition_counts()
            self.consumer.subscribe(
                [*sorted(self.inputs), self.plans_topic, self.entity_topic],
                on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost,
            )  # fmt: skip
            while not self.stopping:
                self._turn()
            self._commit()
            self.consumer.close()  # revokes everything: the callback commits and closes stores
            return 0
        except (Fatal, RestoreError) as exc:
            reason = str(exc)
        except KafkaException as exc:
            reason = f"Kafka error outside a transaction step: {exc.args[0]}"
        log.critical("%s: exiting with %d, nothing more is committed", reason, EXIT_FATAL)
        return EXIT_FATAL

    def close(self) -> None:
        with self.lock:
            for held in self.partitions.held.values():
                held.store.close()
            self.partitions.held.clear()
        self.restorer.consumer.close()
        if self._history is not None:
            self._history.close()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: committing and stopping", signum)
        self.stopping = True

    def _partition_counts(self) -> dict[str, int]:
        topics = self.consumer.list_topics(timeout=self.settings.kafka_call_timeout_s).topics
        names = (self.settings.topic_dead_letters, self.entity_topic)  # the others: PARTITIONER
        return {name: len(topics[name].partitions) for name in names if name in topics}

    # ----- the loop -----------------------------------------------------------------------------

    def _turn(self) -> None:
        if self.restorer.active:
            self._restore_step()
        timeout = 0.0 if self.restorer.active else POLL_S
        messages = self.consumer.consume(self.settings.batch_size, timeout)
        if messages:
            self.metrics.batch_size.observe(len(messages))
            self._process(messages)
        now = time.monotonic()
        if now - self.last_due >= self.settings.tick_interval_ms / 1000:
            self.last_due = now
            self._run_due()
        # Commit at the interval; earlier when the input ran dry (a batch short of full) and the
        # transaction is a few ms old: at low load the loop has nothing better to do, and each
        # of the two hops an input takes waits for a commit. Under full load batches are full
        # and only the interval (or the record cap) commits.
        interval = self.settings.commit_interval_ms / 1000
        if (
            self.commit_now
            or self.txn.due(now, interval, self.settings.commit_max_records)
            or (
                len(messages) < self.settings.batch_size
                and self.txn.due(
                    now, min(interval, EARLY_COMMIT_S), self.settings.commit_max_records
                )
            )
        ):
            self._commit()
        if now - self.last_gauges >= GAUGE_INTERVAL_S:
            self.last_gauges = now
            self._gauges()
        if now - self.last_trim >= TRIM_INTERVAL_S:
            self.last_trim = now
            trim()  # free heap back to the system (streams.engine.allocator)

    def _process(self, messages: list[Message]) -> None:
        groups, errors = group_batch(messages)
        for tp in [tp for tp in groups if tp not in self.assigned]:
            del groups[tp]  # revoked in this consume call: the new owner reads them
        for err in errors:
            if err.fatal():
                raise Fatal(f"consumer error: {err}")
            log.warning("consumer: %s", err)
        done: set[tuple[str, int]] = set()
        try:
            for tp, batch in groups.items():
                if tp[0] == self.entity_topic:
                    self._score(tp[1], batch)
                elif tp[0] == self.plans_topic:
                    self._check_plans(batch)
                else:
                    self._ingest(batch)
                done.add(tp)
        except _Abort:
            self._abort(unprocessed(groups, done))
        except _Recompute as stop:  # commit what came before, read the history, then go on
            rest = unprocessed(groups, done | {(self.entity_topic, stop.partition)})
            rest[(self.entity_topic, stop.partition)] = stop.offset
            self._seek(rest)
            self._commit()
            self._prepare_recompute(stop)
        except KafkaException as exc:  # a produce refused because the transaction must abort
            if classify(exc) is not ErrorKind.ABORTABLE:
                raise
            log.warning("transaction must abort (%s): rewinding", exc.args[0])
            self._abort(unprocessed(groups, done))

    def _ingest(self, batch: list[Message]) -> None:
        now_ms = int(self.clock() * 1000)
        started = time.perf_counter()
        for msg in batch:
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            try:
                result = self.ingest.handle(
                    topic=topic, partition=partition, offset=offset,  # type: ignore[arg-type]
                    key=msg.key(), value=msg.value(), appended_ms=msg.timestamp()[1],
                    now_ms=now_ms,
                )  # fmt: skip
            except RegistryError as exc:  # the record is fine, the registry is not: retry later
                log.warning("schema registry: %s: aborting, retrying in %.0f s", exc,
                            REGISTRY_RETRY_S)  # fmt: skip
                time.sleep(REGISTRY_RETRY_S)
                raise _Abort from exc
            except Exception as exc:  # ingest is stateless: a dead letter, and go on
                result = self._unexpected(msg, exc)
            if isinstance(result, DeadLetter):
                self._dead_letter(result)
            else:
                try:
                    for key, value in result.outputs:
                        self.txn.produce(self.entity_topic, key, value, PARTITIONER)
                except KafkaException as exc:  # only local refusals are raised by produce
                    if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                        raise
                    self._dead_letter(self._letter(msg, "Oversized", "the re-keyed record is "
                                                   "larger than the producer accepts"))  # fmt: skip
            self.txn.consumed(topic, partition, offset)  # type: ignore[arg-type]
        if batch:
            self.metrics.processing_seconds.labels("ingest").observe(
                (time.perf_counter() - started) / len(batch)
            )

    def _check_plans(self, batch: list[Message]) -> None:
        """Records of the ``plans`` topic: a status each; an accepted plan (or a removal) goes
        to every entity-events partition, in this transaction (``streams.engine.tenants``)."""
        now_ms = int(self.clock() * 1000)
        partitions = self.counts.get(self.entity_topic, self.settings.partitions)
        for msg in batch:
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            source = (topic, partition, offset)
            try:
                checked = check(msg.key(), msg.value(), msg.headers())  # type: ignore[arg-type]
            except Exception as exc:  # never a crash on a record of the plans topic
                log.error("checking %s[%d]@%d raised: %r", topic, partition, offset, exc)
                checked = Checked("", "rejected", errors=(f"cannot be checked: {exc!r}"[:500],))
            self.metrics.child(self.metrics.plan_updates, checked.status).inc()
            if checked.status == "rejected":
                log.warning("plan of account %r rejected (%s[%d]@%d): %s", checked.account,
                            topic, partition, offset, "; ".join(checked.errors))  # fmt: skip
            else:
                log.info("plan of account %r %s: version %s", checked.account, checked.status,
                         checked.version)  # fmt: skip
                value = records.encode_plan(
                    checked.account, checked.version, checked.text, now_ms=now_ms,
                    source=source, recompute_from_ms=checked.recompute_from_ms,  # type: ignore[arg-type]
                )  # fmt: skip
                for target in range(partitions):
                    self.txn.produce(self.entity_topic, None, value, target)
            self.txn.produce(self.settings.topic_plan_status, msg.key(),
                             status_record(checked, source=source, at_ms=now_ms), PARTITIONER)  # type: ignore[arg-type]  # fmt: skip
            self.txn.consumed(topic, partition, offset)  # type: ignore[arg-type]

    def _on_plan(self, partition: int, offset: int, msg: Message, rec: records.PlanRecord,
                 emitted_ms: int) -> None:  # fmt: skip
        """A plan record: switch the tenant here, with its recompute if it asks for one."""
        if self.stage.tenants.was_applied(partition, rec.account, rec.source[2]):
            log.info("partition %d: plan record %s of account %r applied already: skipped",
                     partition, rec.source, rec.account)  # fmt: skip
            return
        history = None
        if rec.recompute_from_ms is not None and rec.text is not None:
            history = self.recomputes.pop((partition, offset), None)
            if history is None:
                raise _Recompute(partition, offset, rec)
        if not self._switch_plan(partition, msg, rec) or history is None:
            return
        try:
            self._recompute(partition, rec, history, emitted_ms)
        except _CoreBug as bug:  # the plan will switch without the recompute (see _score)
            exc = bug.__cause__ or bug
            log.error("%s[%d]@%d: the recompute raised in the core, aborting; the plan will "
                      "switch without it: %r", self.entity_topic, partition, offset,
                      exc)  # fmt: skip
            self.poison[(self.entity_topic, partition, offset)] = (
                f"RecomputeFailed:{type(exc).__name__}",
                "".join(traceback.format_exception(exc, limit=6))[-1500:],
            )  # fmt: skip
            raise _Abort from exc
        self.commit_now = True

    def _switch_plan(self, partition: int, msg: Message, rec: records.PlanRecord) -> bool:
        """A plan record reached this partition: its tenant switches here, for good. False
        when this worker cannot compile the plan (accepted by a worker of another version):
        the record is dead-lettered and the old plan stays."""
        tenants = self.stage.tenants
        before = tenants.plan_for(partition, rec.account)
        try:
            plan = tenants.switch(partition, rec.account, rec.text, rec.source[2])
        except Exception as exc:
            self._dead_letter(self._letter(msg, "PlanRejected", str(exc)[-1500:]))
            return False
        self.txn.put(partition, PLANS_KEY, pack_value(None, tenants.blob(partition)))
        log.info("partition %d: account %r now runs plan %s (was %s)", partition, rec.account,
                 plan.version, before.version)  # fmt: skip
        self._plan_gauges()
        return True

    def _switch_without_recompute(self, partition: int, msg: Message,
                                  why: tuple[str, str]) -> None:  # fmt: skip
        """A poisoned record that is a plan record (its recompute raised or was refused):
        switch anyway, so that the partition runs the plan every other partition runs; a
        refusal is also a ``plan-status`` record (``recompute-refused``) for the tenant."""
        try:
            rec = records.decode(msg.value())  # type: ignore[arg-type]
        except Exception:  # not a plan record: nothing to switch
            return
        if not isinstance(rec, records.PlanRecord) or self.stage.tenants.was_applied(
            partition, rec.account, rec.source[2]
        ):
            return
        if self._switch_plan(partition, msg, rec) and why[0].startswith("RecomputeRefused"):
            status = refusal_record(rec, partition=partition, reason=why[1],
                                    at_ms=int(self.clock() * 1000))  # fmt: skip
            self.txn.produce(self.settings.topic_plan_status, (rec.account or "").encode(),
                             status, PARTITIONER)  # fmt: skip

    def _prepare_recompute(self, stop: _Recompute) -> None:
        """The partition's items appended since the recompute's start, up to the plan record,
        read outside any transaction (a long read must not outlive the transaction timeout)."""
        started = time.monotonic()
        if self._history is None:
            self._history = Consumer(restore_consumer_config(self.settings))
        account = stop.record.account
        key = (self.entity_topic, stop.partition, stop.offset)
        try:
            history = read_history(self._history, self.entity_topic, stop.partition,
                                   stop.record.recompute_from_ms or 0, stop.offset,
                                   HISTORY_READ_S, max_items=self.settings.recompute_max_items,
                                   wanted=lambda k: self.stage.entity_key(k).account_id
                                   == account)  # fmt: skip
        except HistoryTooLarge as exc:  # refused: the plan switches without it, and says so
            log.error("partition %d: recompute of account %r refused: %s; the plan switches "
                      "without it", stop.partition, account, exc)  # fmt: skip
            self.poison[key] = ("RecomputeRefused:HistoryTooLarge", str(exc))
            return
        except KafkaException as exc:  # the plan switches without the recompute, loudly
            reason = f"reading {self.entity_topic}[{stop.partition}] failed: {exc.args[0]}"
            log.error("partition %d: recompute of account %r: %s; the plan switches without "
                      "it", stop.partition, account, reason)  # fmt: skip
            self.poison[key] = ("RecomputeFailed:HistoryUnread", reason)
            return
        self.recomputes[(stop.partition, stop.offset)] = history
        log.info("partition %d: recompute of account %r: %d items read in %.1fs", stop.partition,
                 account, len(history), time.monotonic() - started)  # fmt: skip

    def _recompute(
        self, partition: int, rec: records.PlanRecord,
        history: list[tuple[bytes, bytes]], emitted_ms: int,
    ) -> None:  # fmt: skip
        """Every entity of the tenant with items in the history, rebuilt under its new plan."""
        by_entity: dict[bytes, list[bytes]] = {}
        for key, value in history:
            by_entity.setdefault(key, []).append(value)
        source_id = f"recompute:{rec.version}"
        for key, values in by_entity.items():
            items = [r for r in map(records.decode, values) if isinstance(r, records.ItemRecord)]
            try:
                result = self.stage.on_recompute(partition, key, items, rec.now_ms, source_id)
            except Exception as exc:
                raise _CoreBug from exc
            if result is None:  # no valid item: the entity keeps its values
                continue
            self._publish(result.changes, emitted_ms)
            self._forward(result.forwards, rec.now_ms)
            self.metrics.observe_changes(result.changes)

    def _plan_gauges(self) -> None:
        gauge = self.metrics.tenant_plans
        now = {(account, version): len(partitions)
               for account, versions in self.stage.tenants.running().items()
               for version, partitions in versions.items()}  # fmt: skip
        for labels in self.plan_labels - now.keys():
            gauge.remove(*labels)
        for labels, count in now.items():
            gauge.labels(*labels).set(count)
        self.plan_labels = set(now)

    def _score(self, partition: int, batch: list[Message]) -> None:
        held = self.partitions.held.get(partition)
        if held is None:
            return  # revoked: its new owner reads these records from the committed offset
        if held.phase is not PartitionPhase.ACTIVE:  # fetched before the pause: read them again
            self.consumer.seek(TopicPartition(self.entity_topic, partition, batch[0].offset() or 0))
            return
        started = time.perf_counter()
        emitted_ms = int(self.clock() * 1000)
        topic = self.entity_topic
        for msg in batch:
            offset = msg.offset()
            poisoned = self.poison.pop((topic, partition, offset), None)  # type: ignore[arg-type]
            if poisoned is not None:
                self._dead_letter(self._letter(msg, *poisoned))
                self._switch_without_recompute(partition, msg, poisoned)
                self.txn.consumed(topic, partition, offset)  # type: ignore[arg-type]
                continue
            try:
                rec = records.decode(msg.value())  # type: ignore[arg-type]
            except Exception as exc:  # not an entity-events record: nothing was touched
                self._dead_letter(self._unexpected(msg, exc))
                self.txn.consumed(topic, partition, offset)  # type: ignore[arg-type]
                continue
            if isinstance(rec, records.Tick):  # left by the Faust runtime: time is local now
                self.txn.consumed(topic, partition, offset)  # type: ignore[arg-type]
                continue
            if isinstance(rec, records.PlanRecord):
                self._on_plan(partition, offset, msg, rec, emitted_ms)  # type: ignore[arg-type]
                self.txn.consumed(topic, partition, offset)  # type: ignore[arg-type]
                continue
            try:
                if isinstance(rec, records.MemberRecord):
                    result = self.stage.on_member(partition, msg.key(), rec)  # type: ignore[arg-type]
                else:
                    result = self.stage.on_item(partition, msg.key(), rec)  # type: ignore[arg-type]
            except Exception as exc:  # a core bug: the state may be half-changed
                reason = "".join(traceback.format_exception(exc, limit=6))[-1500:]
                log.error("%s[%d]@%d raised in the core, aborting: %r", topic, partition,
                          offset, exc)  # fmt: skip
                self.poison[(topic, partition, offset)] = (  # type: ignore[index]
                    f"Unexpected:{type(exc).__name__}", reason,
                )  # fmt: skip
                self.cache.forget(msg.key())  # type: ignore[arg-type]  # changed in place, maybe
                raise _Abort from exc
            if result.invalid is not None:
                letter = self._letter(msg, result.error_class, result.invalid)
                origin = rec.source if isinstance(rec, records.ItemRecord) else None
                self._dead_letter(dataclasses.replace(letter, origin=origin))
            self._publish(result.changes, emitted_ms)
            if isinstance(rec, records.MemberRecord):
                self.metrics.child(self.metrics.member_updates, "received").inc()
                self.metrics.observe_changes(result.changes)
            else:
                self._forward(result.forwards, rec.now_ms)
                self.metrics.observe_item(result.changes, result.results, rec.source[0],
                                          rec.appended_ms, emitted_ms)  # fmt: skip
            self.txn.consumed(topic, partition, offset)  # type: ignore[arg-type]
        if batch:
            self.metrics.processing_seconds.labels("score").observe(
                (time.perf_counter() - started) / len(batch)
            )

    def _publish(
        self, changes: tuple[ScoreChange, ...] | list[ScoreChange], emitted_ms: int
    ) -> None:
        if not changes:
            return
        topic = self.settings.topic_score_changed
        for change in changes:
            key = change_key(change)
            value = self.codec.encode(
                self.codec.score_changed, change_record(change, emitted_at_ms=emitted_ms)
            )
            self.txn.produce(topic, key, value, PARTITIONER)

    def _forward(self, forwards: tuple[Forward, ...] | list[Forward], now_ms: int) -> None:
        """Member updates to the partitions of their deals and accounts (``rollup``)."""
        if forwards:
            self.metrics.child(self.metrics.member_updates, "sent").inc(len(forwards))
        for target, update in forwards:
            self.txn.produce(self.entity_topic, records.entity_key_bytes(target),
                             records.encode_member(update, now_ms=now_ms), PARTITIONER)  # fmt: skip

    def _score_records(self, key: bytes, entry: Entry) -> list[tuple[str, bytes, bytes, int]]:
        if not entry.changed:
            return []
        topic = self.settings.topic_scores
        updated = int(self.clock() * 1000)
        entity = self.stage.entity_key(key)
        plan = self.stage.tenants.plan_for(entry.partition, entity.account_id)
        return [
            (
                topic,
                out_key,
                self.codec.encode(self.codec.score, rec),
                PARTITIONER,
            )
            for out_key, rec in score_records(
                plan, entity, entry.state, entry.changed, updated_at_ms=updated
            )
        ]

    def _dead_letter(self, letter: DeadLetter) -> None:
        self.metrics.dead_letters.labels(letter.topic, letter.error_class).inc()
        self.metrics.events.labels(letter.topic, "dead_letter").inc()
        topic = self.settings.topic_dead_letters
        partition = letter.partition % self.counts.get(topic, 1)
        key, value, headers = letter.for_kafka()
        self.txn.produce(topic, key, value, partition, headers=headers)

    @staticmethod
    def _letter(msg: Message, error_class: str, reason: str) -> DeadLetter:
        return DeadLetter(msg.key(), msg.value(), msg.topic(), msg.partition(), msg.offset(),  # type: ignore[arg-type]
                          error_class, reason)  # fmt: skip

    def _unexpected(self, msg: Message, exc: BaseException) -> DeadLetter:
        log.error("unexpected error on %s[%s]@%s: %r", msg.topic(), msg.partition(),
                  msg.offset(), exc)  # fmt: skip
        summary = "".join(traceback.format_exception(exc, limit=6))[-1500:]
        return self._letter(msg, f"Unexpected:{type(exc).__name__}", summary)

    # ----- time-driven work ---------------------------------------------------------------------

    def _run_due(self) -> None:
        now_ms = int(self.clock() * 1000)
        backlog = 0
        for partition, store in self.partitions.active().items():
            candidates = due_candidates(self.stage, partition, store.due_keys, now_ms, MAX_ADVANCES)
            candidates = [k for k in candidates if k not in self.bad_due]
            backlog += len(candidates)
            for key in candidates:
                try:
                    changes, forwards = self.stage.advance_due(partition, [key], now_ms)
                except Exception as exc:  # a core bug: never again for this entity; abort
                    log.error(
                        "advancing %r (partition %d) raised in the core, skipping its "
                        "time-driven work until a restart: %r", key, partition, exc,
                    )  # fmt: skip
                    self.bad_due.add(key)
                    self.cache.forget(key)  # the core may have changed it in place
                    self._abort({})
                    return
                try:
                    self._publish(changes, now_ms)
                    self._forward(forwards, now_ms)
                except KafkaException as exc:
                    if classify(exc) is not ErrorKind.ABORTABLE:
                        raise
                    log.warning("transaction must abort (%s): rewinding", exc.args[0])
                    self._abort({})
                    return
                self.metrics.observe_changes(changes)
        self.metrics.expiry_backlog.set(backlog)

    # ----- commit and abort ---------------------------------------------------------------------

    def _commit(self) -> None:
        if self.txn.phase is Phase.IDLE and not self.cache.dirty:
            return  # nothing processed, produced or changed since the last commit
        positions = self._assigned_positions()
        self.commits += 1
        every = self.settings.fault_abort_every
        started = time.perf_counter()
        with self.lock:
            stores = self.partitions.active()
            try:
                written = self.txn.commit(
                    self.cache,
                    stores,
                    self.consumer.consumer_group_metadata,
                    positions,
                    drill_abort=every > 0 and self.commits % every == 0,
                )
            except KafkaException as exc:
                kind = classify(exc)
                if kind is ErrorKind.FATAL:
                    raise Fatal(f"commit failed: {exc.args[0]}") from exc
                log.warning("commit failed (%s): %s; aborting and rewinding", kind, exc.args[0])
                self.metrics.transactions.labels("aborted").inc()
                rewind = self._txn_abort()
                self._seek(rewind)
                return
        self.positions.update(positions)
        self.commit_now = False
        self.stage.tenants.pending.clear()  # the plans switched are in the stores now
        self.metrics.transactions.labels("committed").inc()
        self.metrics.commit_seconds.observe(time.perf_counter() - started)
        self.metrics.states_written.inc(written)
        self._count_cache()

    def _count_cache(self) -> None:
        """Move the cache's own counts into the metrics (counters take increments)."""
        stats = self.cache.stats
        self.metrics.cache_lookups.labels("hit").inc(stats.hits)
        self.metrics.cache_lookups.labels("miss").inc(stats.misses)
        self.metrics.cache_evictions.inc(stats.evictions)
        stats.hits = stats.misses = stats.evictions = 0

    def _abort(self, pending: dict[tuple[str, int], int]) -> None:
        """Abort the open transaction; rewind what it processed and the unprocessed ``pending``."""
        if self.txn.phase is not Phase.IDLE:
            self.metrics.transactions.labels("aborted").inc()
        rewind = self._txn_abort()
        for tp, offset in pending.items():
            rewind.setdefault(tp, offset)
        self._seek(rewind)

    def _txn_abort(self) -> dict[tuple[str, int], int]:
        """Abort the transaction: dirty states and the plans it switched go back to the stores'.

        Runs on the loop's thread, which alone changes ``partitions`` and the stores, and may run
        with ``self.lock`` held (a failed commit): it must not take the lock (not reentrant)."""
        rewind = self.txn.abort(self.cache)
        tenants = self.stage.tenants
        switched = bool(tenants.pending)
        for partition in list(tenants.pending):
            held = self.partitions.held.get(partition)
            if held is None:
                tenants.drop(partition)
            else:
                self._load_plans(partition, held.store)
        if switched:
            self._plan_gauges()
        return rewind

    def _load_plans(self, partition: int, store: PartitionStore) -> None:
        value = store.get(PLANS_KEY)
        failed = self.stage.tenants.load(partition, None if value is None else
                                         unpack_value(value)[1])  # fmt: skip
        for why in failed:
            log.error("partition %d: a stored tenant plan does not compile with this version "
                      "(it runs the default plan here): %s", partition, why[:1500])  # fmt: skip

    def _seek(self, rewind: dict[tuple[str, int], int]) -> None:
        assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        for (topic, partition), offset in rewind.items():
            if (topic, partition) in assigned:
                self.consumer.seek(TopicPartition(topic, partition, offset))

    def _assigned_positions(self) -> dict[tuple[str, int], int]:
        """The consumer's position on every assigned partition, sent with every commit.

        Every record ``consume`` returned has been processed when a commit runs, so the position
        is what to commit; unlike "last processed + 1" it is also past the transaction markers
        that follow our own records on the entity-events topic (else the group would show a lag
        of one record per partition forever). Partitions with no position yet (nothing consumed
        since they were assigned) send their committed offset, so that even a transaction of
        time-driven work alone carries the group's generation (zombie fencing, KIP-447).
        """
        assigned = self.consumer.assignment()
        if not assigned:
            return {}
        found = [((tp.topic, tp.partition), tp.offset) for tp in self.consumer.position(assigned)]
        return positions_to_commit(found, self.txn.offsets, self.positions)

    # ----- rebalances ---------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.inc()
        consumer.incremental_assign(partitions)
        self.assigned.update((tp.topic, tp.partition) for tp in partitions)
        timeout = self.settings.kafka_call_timeout_s
        committed = until_settled(
            "reading the committed offsets of new partitions",
            lambda: consumer.committed(partitions, timeout=timeout),
            timeout_s=timeout,
        )
        for tp in committed:
            if tp.offset >= 0:
                self.positions[(tp.topic, tp.partition)] = tp.offset
        entity = [tp for tp in partitions if tp.topic == self.entity_topic]
        if entity:
            consumer.pause(entity)
        with self.lock:
            ready = []
            for tp in entity:
                store = PartitionStore(self.store_root / f"p{tp.partition}", self.store_options)
                self.partitions.held[tp.partition] = Held(store)
                self.stage.loaders[tp.partition] = _loader(store)
                if self.restorer.start(tp.partition, store):  # nothing to restore
                    self.partitions.held[tp.partition].phase = PartitionPhase.ACTIVE
                    self._load_plans(tp.partition, store)
                    ready.append(tp)
            self.partitions.assigned_once = True
        if ready:
            consumer.resume(ready)
            self._plan_gauges()
        log.info("assigned %s", _names(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._commit()  # everything processed so far, before the partitions go
        self._release(partitions)
        log.info("revoked %s", _names(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("lost %s: aborting the open transaction", _names(partitions))
        was_open = self.txn.phase is not Phase.IDLE
        try:
            rewind = self._txn_abort()
        except Fatal:
            raise
        except KafkaException as exc:  # the abort itself failed: nothing committed, restart
            raise Fatal(f"abort after a lost assignment failed: {exc.args[0]}") from exc
        if was_open:
            self.metrics.transactions.labels("aborted").inc()
        self._release(partitions)
        self._seek(rewind)

    def _release(self, partitions: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in partitions if tp.topic == self.entity_topic}
        for tp in partitions:
            self.assigned.discard((tp.topic, tp.partition))
            self.positions.pop((tp.topic, tp.partition), None)
            with contextlib.suppress(KeyError):  # never measured
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        if not gone:
            return
        self.restorer.cancel(gone)
        self.recomputes = {k: v for k, v in self.recomputes.items() if k[0] not in gone}
        self.metrics.partitions_restoring.set(len(self.restorer.active))
        self.cache.drop_partitions(gone)
        with self.lock:
            for p in gone:
                held = self.partitions.held.pop(p, None)
                self.stage.loaders.pop(p, None)
                self.stage.tenants.drop(p)
                if held is not None:
                    held.store.close()
        self._plan_gauges()

    def _restore_step(self) -> None:
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
                self._load_plans(partition, held.store)
            self.consumer.resume([TopicPartition(self.entity_topic, partition)])
            elapsed = time.monotonic() - job.started
            self.metrics.recovery_seconds.set(elapsed)
            log.info("partition %d restored: %d changelog records in %.1fs", partition,
                     job.records, elapsed)  # fmt: skip
        if done:
            self._plan_gauges()

    # ----- gauges -------------------------------------------------------------------------------

    def _gauges(self) -> None:
        try:
            for tp in self.consumer.assignment():
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
                done = self.txn.offsets.get((tp.topic, tp.partition)) or self.positions.get(
                    (tp.topic, tp.partition), 0
                )
                if high is not None and high >= 0:
                    self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                        max(0, high - done)
                    )
            with self.lock:
                self.metrics.entities.set(
                    sum(h.store.entities for h in self.partitions.held.values())
                )
            self.metrics.cache_entries.set(len(self.cache))
            self.metrics.cache_bytes.set(self.cache.bytes)
            self.metrics.rocksdb_memory_bytes.set(self.store_options.usage_bytes())
            self.metrics.ready.set(1 if self.ready else 0)
        except Exception as exc:  # a gauge must never hurt the service
            log.warning("could not update gauges: %r", exc)

    # ----- reads for the HTTP thread ------------------------------------------------------------

    def read_state(self, key: bytes) -> tuple[str, EntityState | None]:
        """Committed state of an entity: ("ok", state or None), "restoring" or "elsewhere"."""
        partition = partition_for(key, self.entity_partitions)
        with self.lock:
            held = self.partitions.held.get(partition)
            if held is None:
                return "elsewhere", None
            if held.phase is PartitionPhase.RESTORING:
                return "restoring", None
            value = held.store.get(key)
        return "ok", None if value is None else loads(unpack_value(value)[1])

    def entity_partition(self, key: bytes) -> int:
        return partition_for(key, self.entity_partitions)

    @property
    def entity_partitions(self) -> int:
        return self.counts.get(self.entity_topic, self.settings.partitions)

    @property
    def ready(self) -> bool:
        return self.partitions.ready and not self.stopping


def group_batch(
    messages: list[Any],
) -> tuple[dict[tuple[str, int], list[Any]], list[KafkaError]]:
    """A consumed batch per (topic, partition), each in offset order, and its error events."""
    groups: dict[tuple[str, int], list[Any]] = {}
    errors: list[KafkaError] = []
    for msg in messages:
        err = msg.error()
        if err is not None:
            errors.append(err)
            continue
        groups.setdefault((msg.topic(), msg.partition()), []).append(msg)
    return groups, errors


def positions_to_commit(
    found: Iterable[tuple[tuple[str, int], int | None]],
    processed: dict[tuple[str, int], int],
    committed: dict[tuple[str, int], int],
) -> dict[tuple[str, int], int]:
    """The offsets a commit sends besides the transaction's own (``processed``, last processed
    + 1, which these override): each assigned partition's position where it has one; else its
    committed offset, unless the transaction processed some of it. No position means nothing
    fetched since assign or since a ``seek`` (librdkafka resets the position on a seek): after
    a seek back into a batch, the older committed offset would undo what the transaction did.
    """
    out: dict[tuple[str, int], int] = {}
    for key, offset in found:
        if offset is not None and offset >= 0:
            out[key] = offset
        elif key not in processed and key in committed:
            out[key] = committed[key]
    return out


def unprocessed(
    groups: dict[tuple[str, int], list[Any]], done: set[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """Where to rewind the partitions of a batch that an abort cut short: their first offset."""
    return {tp: batch[0].offset() for tp, batch in groups.items() if tp not in done}


def _loader(store: PartitionStore) -> Callable[[bytes], tuple[int | None, bytes] | None]:
    def load(key: bytes) -> tuple[int | None, bytes] | None:
        value = store.get(key)
        return None if value is None else unpack_value(value)

    return load


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"


def refusal_record(rec: records.PlanRecord, *, partition: int, reason: str, at_ms: int) -> bytes:
    """The ``plan-status`` value of a recompute refused on one partition (the plan switched
    there without it)."""
    topic, source_partition, offset = rec.source
    return json.dumps({
        "account": rec.account, "status": "recompute-refused", "version": rec.version,
        "errors": [reason], "at_ms": at_ms, "recompute_from_ms": rec.recompute_from_ms,
        "partition": partition,
        "source": {"topic": topic, "partition": source_partition, "offset": offset},
    }).encode()  # fmt: skip


class HistoryTooLarge(Exception):
    """A recompute's history holds more items than ``recompute_max_items`` allows."""


def read_history(consumer: Consumer, topic: str, partition: int, from_ms: int, until: int,
                 timeout_s: float, *, wanted: Callable[[bytes], bool],
                 max_items: int) -> list[tuple[bytes, bytes]]:  # fmt: skip
    """The committed input items of ``topic[partition]`` before offset ``until`` whose input
    record was appended at or after ``from_ms`` and whose key is ``wanted`` (the tenant's), in
    offset order, as (key, value) bytes (decoded again per entity: a decoded item costs several
    times its bytes). More than ``max_items`` of them raise ``HistoryTooLarge``: the memory a
    recompute holds is bounded."""
    tp = TopicPartition(topic, partition, from_ms)
    (start,) = consumer.offsets_for_times([tp], timeout=timeout_s)
    first = start.offset if 0 <= start.offset < until else until
    out: list[tuple[bytes, bytes]] = []
    if first >= until:
        return out
    consumer.assign([TopicPartition(topic, partition, first)])
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if time.monotonic() > deadline:
                late = f"not read to offset {until} in {timeout_s:g} s"
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, late))
            for msg in consumer.consume(1000, 0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(err)
                offset: int = msg.offset()  # type: ignore[assignment]
                if offset >= until:
                    return out
                key, value = msg.key(), msg.value()
                if key is not None and value is not None and wanted(key):
                    try:
                        rec = records.decode(value)
                    except Exception:  # noqa: S112 - dead-lettered when it was processed
                        continue
                    if isinstance(rec, records.ItemRecord) and rec.appended_ms >= from_ms:
                        if len(out) >= max_items:
                            raise HistoryTooLarge(
                                f"the tenant's history on {topic}[{partition}] since the "
                                f"recompute's start holds more than {max_items} items "
                                "(LEADSCORE_RECOMPUTE_MAX_ITEMS)"
                            )
                        out.append((key, value))
                if offset == until - 1:
                    return out
    finally:
        consumer.unassign()
