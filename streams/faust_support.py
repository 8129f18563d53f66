"""What the service adds around Faust: a strict pre-commit flush and the operational gauges.

Faust flushes its producer before committing offsets, but the buffer that carries table changelog
records (``ProducerBuffer``) gives up after 0.1 s without progress and does not count the record
being handed to the client, so a commit can pass changelog records not yet sent. After a
``kill -9`` the changelog would then lack a state whose source offset is committed: that state is
lost on the next recovery from the changelog. :func:`make_buffer_flush_strict` makes the flush
wait until the buffer is empty and nothing is in flight. Checked against faust-streaming 0.15.3.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust

from streams.metrics import Metrics

log = logging.getLogger(__name__)


def deliver_without_dropping(app: faust.App) -> None:
    """Never abandon a record half-delivered to its agent.

    Faust's fetcher (``Consumer._drain_messages``) hands each record to the conductor with
    ``wait_first(callback(record), suspend_flow.wait())``: when flow is suspended (a rebalance
    starting) while the delivery waits on a full stream buffer, the delivery is cancelled but the
    read position still moves past the record, which is then never processed; where the
    partition had no committed offset yet, Faust even commits past it. Shielding the delivery
    lets it finish; records of partitions revoked meanwhile are skipped by the agents
    (:class:`Ownership`), and their new owner reads them from the committed offset.
    """
    conductor = app.topics
    deliver = conductor.on_message

    async def on_message(message: Any) -> None:
        await asyncio.shield(deliver(message))

    conductor.on_message = on_message


class Ownership:
    """The partitions this worker holds, kept from Faust's rebalance signals.

    (``Consumer.assignment()`` rebuilds its set on every call: far too slow per record.)
    """

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.partitions: frozenset[Any] = frozenset()

        @app.on_partitions_revoked.connect
        async def _revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
            self.partitions = self.partitions - set(revoked)

        @app.on_partitions_assigned.connect
        async def _assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
            self.partitions = frozenset(assigned)

    def owns(self, message: Any) -> bool:
        """Is the record's partition still assigned here (not revoked since it was fetched)?

        A miss is checked against the consumer itself before a record is skipped, so a signal
        arriving late can cost time but never a record.
        """
        if message.tp in self.partitions:
            return True
        self.partitions = frozenset(self.app.consumer.assignment())
        return message.tp in self.partitions


def make_buffer_flush_strict(app: faust.App) -> None:
    buffer = app.producer.buffer
    send_pending = buffer._send_pending  # bound by the buffer's task when it starts
    in_flight = 0

    async def counted_send(fut: Any) -> None:
        nonlocal in_flight
        in_flight += 1
        try:
            await send_pending(fut)
        finally:
            in_flight -= 1

    async def strict_flush() -> None:
        while (buffer.size or in_flight) and not buffer.should_stop:
            await asyncio.sleep(0.001)

    buffer._send_pending = counted_send
    buffer.flush = strict_flush


#: How long offsets may stay skipped (acked after, never before) before the watchdog re-reads them.
SKIPPED_OFFSETS_GRACE_S = 10.0


class SkippedOffsetsWatchdog:
    """Re-reads records that Faust's fetcher dropped without delivering them.

    Observed with faust-streaming 0.15.3 in our crash test: after a restart, a few records of one
    input partition never reached the agent while the records after them did. The likely cause
    is the fetcher loop (``Consumer._drain_messages``): it waits for a record's delivery *or* for
    flow to be suspended (``wait_first``), and advances its read position either way. Faust then,
    rightly, never commits past the missing records, so the partition's committed offset stops
    moving while later records are processed: until a restart, the missing records would be
    neither processed nor lost.

    When a partition's lowest acknowledged offset stays above its committed offset for longer
    than ``SKIPPED_OFFSETS_GRACE_S``, the watchdog seeks the partition back to the committed
    offset: the skipped records are delivered, and the later ones come again as duplicates that
    the entity state recognises.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.seen: dict[Any, tuple[int, float]] = {}
        self.metrics = metrics

    async def check(self, consumer: Any, tps: list[Any], now: float) -> None:
        for tp in tps:
            committed = consumer._committed_offset.get(tp)
            acked = consumer._acked.get(tp)
            if committed is None or not acked or min(acked) <= committed:
                self.seen.pop(tp, None)
                continue
            since = self.seen.get(tp)
            if since is None or since[0] != committed:
                self.seen[tp] = (committed, now)
            elif now - since[1] >= SKIPPED_OFFSETS_GRACE_S:
                log.warning(
                    "%s[%d]: offsets %d..%d were never delivered to the agent; re-reading from %d",
                    tp.topic, tp.partition, committed, min(acked) - 1, committed,
                )  # fmt: skip
                await consumer.seek(tp, committed)
                self.metrics.rereads.labels(tp.topic, str(tp.partition)).inc()
                self.seen.pop(tp, None)


def install_gauges(
    app: faust.App,
    metrics: Metrics,
    entities: faust.Table,
    *,
    stream_topics: set[str],
    entity_topic: str,
    interval_s: float,
) -> None:
    """Consumer lag per partition, entities in state, and the duration of the last recovery."""
    rebalance_started = time.monotonic()

    @app.on_partitions_revoked.connect
    async def _revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        nonlocal rebalance_started
        rebalance_started = time.monotonic()

    @app.on_rebalance_complete.connect
    async def _recovered(sender: Any, **kwargs: Any) -> None:
        metrics.recovery_seconds.set(time.monotonic() - rebalance_started)

    watchdog = SkippedOffsetsWatchdog(metrics)

    @app.timer(interval=interval_s)
    async def _gauges() -> None:
        try:
            consumer = app.consumer
            streams = [tp for tp in app.assignor.assigned_actives() if tp.topic in stream_topics]
            await watchdog.check(consumer, streams, time.monotonic())
            committed = consumer._committed_offset  # Faust keeps the last committed offsets
            entity_partitions = []
            for tp in app.assignor.assigned_actives():
                if tp.topic not in stream_topics:
                    continue  # changelogs are read by recovery, not consumed as streams
                highwater = consumer.highwater(tp) or 0
                lag = max(0, highwater - (committed.get(tp) or 0))
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
                if tp.topic == entity_topic:
                    entity_partitions.append(tp.partition)
            dbs = entities.data._dbs  # rocksdict handles per partition
            metrics.entities.set(
                sum(
                    dbs[p].property_int_value("rocksdb.estimate-num-keys") or 0
                    for p in entity_partitions
                    if p in dbs
                )
            )
        except Exception as exc:  # a gauge must never hurt the service
            log.warning("could not update gauges: %r", exc)
