"""The processing loop: one consumer, one transactional producer, batches, transactions.

Each turn of the loop:

1. restore a batch of changelog records for partitions still restoring
   (``streams.engine.rebalance``);
2. ``consume`` up to ``batch_size`` records and group them per partition, in order;
3. hand each partition's batch to its stage (``streams.engine.stage``): the input topics to
   ingest, the ``plans`` topic to the plans stage, the entity-events topic to the entity stage;
   every output goes into the open transaction (``streams.engine.outputs``);
4. every ``tick_interval_ms``, the time-driven work that is due (``streams.engine.due``);
5. every ``commit_interval_ms`` or ``commit_max_records`` records, the transaction commits
   (``streams.engine.transaction``).

Errors: a bad record is a dead letter. An exception of the core on an item is a bug: the
transaction aborts, the item is marked and dead-lettered when it comes again, and processing goes
on. An abortable Kafka error aborts, drops the dirty states, and rewinds every partition to its
first uncommitted offset. A lost producer (fatal, fenced, a commit of unknown outcome) is
replaced in the process (``streams.engine.recovery``); the process exits with
:data:`EXIT_FATAL` only when that cannot help.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from types import FrameType

from confluent_kafka import KafkaException, TopicPartition

from streams.engine.allocator import trim
from streams.engine.batches import group_batch, unprocessed
from streams.engine.clients import ConsumerLike, ProducerLike, Record
from streams.engine.commit import Committer
from streams.engine.due import DueWork
from streams.engine.entities import EntityStage
from streams.engine.kafka import (
    CALLS,
    ErrorKind,
    Fatal,
    ProducerLost,
    classify,
    lost_or_fatal,
)
from streams.engine.outputs import Outputs, Topics
from streams.engine.partitions import PartitionPhase, Partitions
from streams.engine.plans import PlanSwitch
from streams.engine.rebalance import Hooks, Rebalance, Rewind
from streams.engine.recovery import Recovery
from streams.engine.stage import Abort, RecomputeStop, Stage
from streams.engine.transaction import Transaction
from streams.metrics import Metrics
from streams.scoring import EntityState
from streams.settings import Settings
from streams.state.restore import RestoreError, Restorer
from streams.state.store import PartitionStore, encode_entity
from streams.wire.codec import Codec
from streams.wire.routing import partition_for

log = logging.getLogger(__name__)
EXIT_FATAL = 70
GAUGE_INTERVAL_S = 5.0
TRIM_INTERVAL_S = 60.0  # malloc_trim: it walks every arena, so not on every batch
#: Longest wait of one ``consume`` call for a full batch (none while partitions restore).
POLL_S = 0.02
#: A transaction may commit this early when the input ran dry (see ``Loop._turn``).
EARLY_COMMIT_S = 0.02


class Loop:
    """Everything of one worker process's processing; built by ``streams.bootstrap``."""

    def __init__(self, settings: Settings, *, consumer: ConsumerLike, recovery: Recovery,
                 restorer: Restorer, stage: EntityStage, stages: dict[str, Stage],
                 plans: PlanSwitch, due: DueWork, topics: Topics, codec: Codec,
                 metrics: Metrics, open_store: Callable[[int], PartitionStore],
                 memory_bytes: Callable[[], int] = lambda: 0,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.settings, self.consumer, self.recovery = settings, consumer, recovery
        self.stage, self.cache, self.stages, self.plans = stage, stage.cache, stages, plans
        self.due, self.topics, self.metrics, self.memory_bytes = due, topics, metrics, memory_bytes
        self.entity_topic = topics.entity
        self.restorer = restorer
        producer = recovery.make_producer()
        self.txn = Transaction(
            producer, restorer.topic, settings.kafka_call_timeout_s,
            score_records=lambda key, entry: self.out.score_records(key, entry),
            encode_state=encode_entity,
            make_offsets=lambda offs: [TopicPartition(t, p, o) for (t, p), o in offs.items()],
            transaction_timeout_s=settings.transaction_timeout_ms / 1000,
        )  # fmt: skip
        self.out = Outputs(self.txn, topics, codec, stage, metrics, clock)
        self.partitions: Partitions = due.partitions  # the one record of what is held
        hooks = Hooks(self.commit, lambda: self.ends.abort_in_callback(),
                      lambda rewind: self.ends.seek(rewind))  # fmt: skip
        self.rebalance = Rebalance(consumer, topics.entity, self.partitions, stage, restorer,
                                   open_store, plans, metrics, settings.kafka_call_timeout_s,
                                   hooks)  # fmt: skip
        self.ends = Committer(consumer, self.txn, self.cache, self.rebalance, plans, recovery,
                              metrics, producer, settings.fault_abort_every)  # fmt: skip
        self.lock = self.rebalance.lock
        self.stopping = False
        self.last_due = self.last_gauges = 0.0
        self.last_trim = time.monotonic()

    # ----- lifecycle ----------------------------------------------------------------------------

    def run(self, *, started: bool = False) -> int:
        """Run until SIGTERM/SIGINT (returns 0) or a fatal error (returns ``EXIT_FATAL``);
        ``started``: :meth:`start` ran already."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        try:
            if not started:
                self.start()
            while not self.stopping:
                self.step()
            try:
                self.commit()
            except ProducerLost as lost:  # nothing more is committed: the next owner redoes it
                log.warning("the last commit failed (%s): stopping without it", lost)
            self.consumer.close()  # revokes everything: the callback commits and closes stores
            return 0
        except (Fatal, RestoreError) as exc:
            reason = str(exc)
        except KafkaException as exc:
            reason = f"Kafka error outside a transaction step: {exc.args[0]}"
        log.critical("%s: exiting with %d, nothing more is committed", reason, EXIT_FATAL)
        return EXIT_FATAL

    def start(self) -> None:
        CALLS.configure(self.settings.kafka_call_timeout_s)
        self.recovery.first(self.producer)
        timeout = self.settings.kafka_call_timeout_s
        for name in (self.topics.dead_letters, self.entity_topic):  # the others: PARTITIONER
            count = self.consumer.partition_count(name, timeout)
            if count is not None:
                self.topics.counts[name] = count
        inputs = [t for t in self.stages if t not in (self.topics.plans, self.entity_topic)]
        self.consumer.subscribe([*sorted(inputs), self.topics.plans, self.entity_topic],
                                self.rebalance.on_assign, self.rebalance.on_revoke,
                                self.rebalance.on_lost)  # fmt: skip

    def step(self) -> None:
        """One turn; a lost producer is replaced (:meth:`recover`)."""
        try:
            self._turn()
        except ProducerLost as lost:
            self.recover(lost)

    def close(self) -> None:
        self.rebalance.close()
        self.restorer.consumer.close()
        self.plans.close()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: committing and stopping", signum)
        self.stopping = True

    # ----- the loop -----------------------------------------------------------------------------

    def _turn(self) -> None:
        if self.restorer.active:
            self.rebalance.restore_step()
        timeout = 0.0 if self.restorer.reading else POLL_S
        batch = self.consumer.consume(self.settings.batch_size, timeout)
        if self.rebalance.lost is not None:  # in a rebalance callback of that consume
            lost, self.rebalance.lost = self.rebalance.lost, None
            raise lost
        if batch:
            self.metrics.batch_size.observe(len(batch))
            self._process(batch)
        now = time.monotonic()
        if now - self.last_due >= self.settings.tick_interval_ms / 1000:
            self.last_due = now
            self._guarded(lambda: self.due.run(self.out), {})
        # Commit at the interval; earlier when the input ran dry (a batch short of full) and the
        # transaction is a few ms old: at low load the loop has nothing better to do, and each
        # of the two hops an input takes waits for a commit. Under full load batches are full
        # and only the interval (or the record cap) commits.
        interval, cap = self.settings.commit_interval_ms / 1000, self.settings.commit_max_records
        if (self.plans.commit_now or self.txn.due(now, interval, cap)
                or (len(batch) < self.settings.batch_size
                    and self.txn.due(now, min(interval, EARLY_COMMIT_S), cap))):  # fmt: skip
            self.commit()
        if now - self.last_gauges >= GAUGE_INTERVAL_S:
            self.last_gauges = now
            self._gauges()
        if now - self.last_trim >= TRIM_INTERVAL_S:
            self.last_trim = now
            trim()  # free heap back to the system (streams.engine.allocator)

    def _process(self, batch: list[Record]) -> None:
        groups = group_batch(batch)
        done: set[tuple[str, int]] = set()
        assigned = self.rebalance.assigned

        def run() -> None:
            for tp, records in groups.items():
                if tp in assigned:  # else revoked in this consume call: the new owner reads it
                    self._route(tp[0], tp[1], records)
                done.add(tp)

        try:
            self._guarded(run, None)
        except _Unprocessed:
            self.ends.abort(unprocessed(groups, done))
        except RecomputeStop as stop:  # commit what came before, read the history, then go on
            tp = (self.entity_topic, stop.partition)
            rest = unprocessed(groups, done | {tp})
            rest[tp] = stop.offset
            self.ends.seek(rest)
            self.commit()
            self.plans.prepare(stop, self.entity_topic)

    def _guarded(self, work: Callable[[], None], pending: Rewind | None) -> None:
        """Run ``work``; an ``Abort`` or an abortable Kafka error aborts and rewinds the
        transaction (and ``pending``; None: raises ``_Unprocessed`` after the abort, for the
        caller to rewind what it did not process)."""
        try:
            work()
            return
        except Abort:
            pass
        except KafkaException as exc:  # a produce refused because the transaction must abort
            if classify(exc) is not ErrorKind.ABORTABLE:
                raise lost_or_fatal("produce", exc) from exc
            log.warning("transaction must abort (%s): rewinding", exc.args[0])
        if pending is None:
            raise _Unprocessed
        self.ends.abort(pending)

    def _route(self, topic: str, partition: int, batch: list[Record]) -> None:
        if topic == self.entity_topic:
            held = self.partitions.held.get(partition)
            if held is None:
                return  # revoked: its new owner reads these records from the committed offset
            if held.phase is not PartitionPhase.ACTIVE:  # fetched before the pause: again later
                self.consumer.seek(TopicPartition(topic, partition, batch[0].offset))
                return
        self.stages[topic].process(partition, batch, self.out)

    # ----- commit and recovery ------------------------------------------------------------------

    def commit(self) -> None:
        """Commit what was processed (``streams.engine.commit``)."""
        self.ends.commit()

    def recover(self, lost: ProducerLost) -> None:
        """Go on with a new producer (``Committer.recover``); raises ``Fatal`` when that cannot
        help."""
        self.ends.recover(lost)

    @property
    def producer(self) -> ProducerLike:
        return self.ends.producer

    # ----- gauges and reads for the HTTP thread -------------------------------------------------

    def _gauges(self) -> None:
        try:
            self.rebalance.gauges(self.txn.offsets, self.memory_bytes(), self.ready)
        except Exception as exc:  # a gauge must never hurt the service
            log.warning("could not update gauges: %r", exc)

    def read_state(self, key: bytes) -> tuple[str, EntityState | None]:
        """Committed state of an entity: ("ok", state or None), "restoring" or "elsewhere"."""
        return self.rebalance.read_state(partition_for(key, self.entity_partitions), key)

    def entity_partition(self, key: bytes) -> int:
        return partition_for(key, self.entity_partitions)

    @property
    def entity_partitions(self) -> int:
        return self.topics.counts.get(self.entity_topic, self.settings.partitions)

    @property
    def ready(self) -> bool:
        return self.partitions.ready and not self.stopping


class _Unprocessed(Exception):
    """The transaction aborted inside a batch: rewind what the batch did not process."""
