"""The end of the open transaction: its commit, or its abort and the rewind, or its drop when
the producer is lost (``streams.engine.transaction`` holds the commit's steps)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streams.engine.batches import positions_to_commit
from streams.engine.clients import ConsumerLike, ProducerLike
from streams.engine.kafka import ErrorKind, ProducerLost, classify, lost_or_fatal
from streams.engine.plans import PlanSwitch
from streams.engine.rebalance import Rebalance, Rewind
from streams.engine.recovery import Recovery
from streams.engine.transaction import Phase, Transaction
from streams.metrics import Metrics
from streams.state.cache import StateCache

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Committer:
    consumer: ConsumerLike
    txn: Transaction
    cache: StateCache
    rebalance: Rebalance
    plans: PlanSwitch
    recovery: Recovery
    metrics: Metrics
    #: the transaction's producer (``txn.producer``), replaced by :meth:`recover`
    producer: ProducerLike
    #: the fault drill ``LEADSCORE_FAULT_ABORT_EVERY`` (0: off)
    drill_every: int = 0
    commits: int = 0

    def commit(self) -> None:
        if self.txn.phase is Phase.IDLE and not self.cache.dirty:
            return  # nothing processed, produced or changed since the last commit
        positions = self.assigned_positions()
        self.commits += 1
        every = self.drill_every
        started = time.perf_counter()
        with self.rebalance.lock:
            try:
                written = self.txn.commit(
                    self.cache,
                    self.rebalance.partitions.active(),
                    self.consumer.consumer_group_metadata,
                    positions,
                    drill_abort=every > 0 and self.commits % every == 0,
                )
            except KafkaException as exc:
                if classify(exc) is not ErrorKind.ABORTABLE:
                    raise lost_or_fatal("commit", exc) from exc
                log.warning("commit failed (abortable): %s; aborting and rewinding", exc.args[0])
                self.metrics.transactions.labels("aborted").inc()
                self.seek(self.txn_abort())
                return
        self.recovery.commits += 1
        self.rebalance.positions.update(positions)
        self.plans.commit_now = False
        self.plans.stage.tenants.pending.clear()  # the plans switched are in the stores now
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

    def abort(self, pending: Rewind) -> None:
        """Abort the open transaction; rewind what it processed and the unprocessed ``pending``."""
        if self.txn.phase is not Phase.IDLE:
            self.metrics.transactions.labels("aborted").inc()
        rewind = self.txn_abort()
        for tp, offset in pending.items():
            rewind.setdefault(tp, offset)
        self.seek(rewind)

    def txn_abort(self) -> Rewind:
        """Abort the transaction: dirty states and the plans it switched go back to the stores'.
        Raises ``ProducerLost`` (nothing dropped yet) when the abort fails."""
        rewind = self.txn.abort(self.cache)
        self.rebalance.reload_pending_plans()
        return rewind

    def discard(self) -> Rewind:
        """Drop the transaction's work without a Kafka call (its producer is lost)."""
        rewind = self.txn.discard(self.cache)
        self.rebalance.reload_pending_plans()
        self.plans.recomputes.clear()
        self.plans.commit_now = False
        return rewind

    def abort_in_callback(self) -> Rewind:
        """A rebalance callback's abort: a lost producer is recovered when ``consume`` returns."""
        was_open = self.txn.phase is not Phase.IDLE
        if self.rebalance.lost is not None:
            rewind = self.discard()
        else:
            try:
                rewind = self.txn_abort()
            except ProducerLost as lost:
                self.rebalance.lost = lost
                rewind = self.discard()
        if was_open:
            self.metrics.transactions.labels("aborted").inc()
        return rewind

    def seek(self, rewind: Rewind) -> None:
        assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        for (topic, partition), offset in rewind.items():
            if (topic, partition) in assigned:
                self.consumer.seek(TopicPartition(topic, partition, offset))

    def assigned_positions(self) -> dict[tuple[str, int], int]:
        """The consumer's position on every assigned partition, sent with every commit
        (:func:`positions_to_commit`)."""
        assigned = self.consumer.assignment()
        if not assigned:
            return {}
        found = [((tp.topic, tp.partition), tp.offset) for tp in self.consumer.position(assigned)]
        return positions_to_commit(found, self.txn.offsets, self.rebalance.positions)

    def recover(self, lost: ProducerLost) -> None:
        """Go on with a new producer of the same ``transactional.id`` (``streams.engine.recovery``);
        raises ``Fatal`` when that cannot help."""
        txn = self.txn
        age = time.monotonic() - txn.opened_at if txn.phase is not Phase.IDLE else None
        self.recovery.admit(lost, age)
        log.warning("the producer is lost (%s): recovering in the process with a new producer "
                    "of the same transactional.id (recovery %d)", lost,
                    self.recovery.recoveries + 1)  # fmt: skip
        self.metrics.producer_recoveries.inc()
        if txn.phase is not Phase.IDLE:
            self.metrics.transactions.labels("aborted").inc()
        err = lost.error
        dead = err is not None and (err.fatal() or err.code() == KafkaError._FATAL)
        with self.rebalance.lock:
            self.discard()
        self.producer = txn.producer = self.recovery.renew(
            self.producer, abort=not dead and not lost.unknown_outcome, abandon=lost.abandoned
        )
        txn.changelog_offsets.clear()  # acknowledged to the old producer while disposed
        if lost.unknown_outcome:  # it may have committed: the stores may be behind the log
            self.rebalance.restore_held()
        self.rebalance.positions.update(self.recovery.rewind(self.consumer))
