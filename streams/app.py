"""``create_app(settings, plan)``: the Faust application. Nothing is created at import time.

Two agents, both ``concurrency=1`` (Faust commits past unprocessed messages with more):

- **ingest** reads the six input topics as raw bytes, decodes and validates each record and
  re-keys it by entity onto the internal entity-events topic; bad records become dead letters.
- **score** reads the entity-events topic, whose partitions match the ``entities`` and ``due``
  tables, and runs the pure core for each item and each partition tick.

Neither agent lets an exception escape (Faust would ack the message and move on): a failure on one
record becomes a dead letter with its reason, and processing continues. A failed delivery of an
output stops the process at once, before a later commit can move past the lost record.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

from streams import records
from streams.codec import Codec
from streams.deadletter import DeadLetter
from streams.entity_stage import DueIndex, Emission, EntityStage
from streams.faust_support import (
    Ownership,
    deliver_without_dropping,
    install_gauges,
    make_buffer_flush_strict,
)
from streams.http_api import register_views
from streams.ingest import Ingest
from streams.metrics import Metrics
from streams.publish import change_key, change_record, score_records
from streams.scoring import EntityKey, Plan, ScoreChange
from streams.settings import Settings
from streams.topics import TABLES, entity_topic, input_topics

log = logging.getLogger(__name__)
EXIT_DELIVERY_FAILED = 70
_DUE = struct.Struct(">q")
#: The two tables: entity states, and the next due time of each entity with time-driven work.
#: Consumer metadata refresh (see ``create_app``).
METADATA_MAX_AGE_MS = 10_000


def rocksdb_options(settings: Settings) -> dict[str, Any]:
    """A fresh dict per table: Faust's store pops keys from the dict it is given."""
    return {
        "driver": "rocksdict",
        "block_cache_size": settings.rocksdb_block_cache_bytes,
        "write_buffer_size": settings.rocksdb_write_buffer_bytes,
        "max_write_buffer_number": settings.rocksdb_max_write_buffers,
        "target_file_size_base": 16 * 1024 * 1024,
        "max_open_files": 512,
    }


def fatal(reason: str) -> None:
    """Stop at once, without committing: the uncommitted records are replayed after a restart."""
    log.critical("%s: exiting with %d before any later commit", reason, EXIT_DELIVERY_FAILED)
    logging.shutdown()
    os._exit(EXIT_DELIVERY_FAILED)


def _fatal_on_failure(fut: asyncio.Future[Any]) -> None:
    if fut.cancelled() or fut.exception() is not None:
        fatal(f"delivery to Kafka failed ({'cancelled' if fut.cancelled() else fut.exception()})")


class TableStore:
    """The entity stage's view of the two Faust tables (``streams.entity_stage.Store``)."""

    def __init__(self, states: faust.Table, dues: faust.Table) -> None:
        self.states, self.dues = states, dues

    def get_state(self, key: bytes) -> bytes | None:
        value: bytes | None = self.states.get(key)
        return value

    def set_state(self, key: bytes, value: bytes) -> None:
        self.states[key] = value

    def set_due(self, key: bytes, due_ms: int | None) -> None:
        if due_ms is None:
            self.dues.pop(key, None)
        else:
            self.dues[key] = _DUE.pack(due_ms)

    def iter_due(self) -> Iterable[tuple[bytes, int]]:
        for key, value in self.dues.items():
            yield key, _DUE.unpack(value)[0]


def create_app(
    settings: Settings, plan: Plan, *, clock: Callable[[], float] = time.time
) -> faust.App:
    def now_ms() -> int:
        return int(clock() * 1000)

    app = faust.App(
        settings.app_id,
        env={},  # settings come only from our Settings object, never from Faust's env names
        autodiscover=False,
        broker=f"kafka://{settings.bootstrap_servers}",
        store="rocksdb://",
        datadir=str(settings.data_dir),
        processing_guarantee="at_least_once",
        topic_replication_factor=settings.replication_factor,
        topic_partitions=settings.partitions,
        table_standby_replicas=settings.standby_replicas,
        producer_acks=-1,
        # Up to 5 ms of batching: without it every record went out in a produce request of its
        # own (measured: one request per record), which cost the worker and the broker CPU.
        producer_linger=0.005,
        producer_threaded=False,
        stream_publish_on_commit=False,
        broker_commit_interval=settings.commit_interval_ms / 1000,
        # A worker killed with -9 leaves the group only when its session times out; the
        # partitions it held wait that long, so keep it short (heartbeats every third of it).
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 3,
        consumer_auto_offset_reset="earliest",
        # The group leader assigns from its client's metadata. If a topic is missing from it at
        # that moment (just created, a broker under load), none of the topic's partitions are
        # assigned until the next metadata refresh notices the change and rejoins: keep that
        # refresh 10 s away instead of Faust's default 5 minutes.
        consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        canonical_url=settings.advertised_url,
        web_tables_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
    )
    metrics = Metrics.create()
    if settings.faust_sensors:  # several sensor calls per record: off unless asked for
        app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(metrics.registry, "faust"))
    codec = Codec.load()
    raw = faust.Schema(key_serializer="raw", value_serializer="raw")
    sources = input_topics(settings)
    ingest_logic = Ingest(codec, sources, {t: settings.input_format(t) for t in sources})
    inputs = app.topic(*sources, schema=raw)
    entity_name = entity_topic(settings)
    entities_topic = app.topic(entity_name, schema=raw, partitions=settings.partitions)
    changed_topic = app.topic(settings.topic_score_changed, schema=raw)
    scores_topic = app.topic(settings.topic_scores, schema=raw)
    dead_topic = app.topic(settings.topic_dead_letters, schema=raw)
    min_isr = {"min.insync.replicas": "2" if settings.replication_factor >= 3 else "1"}
    tables = [
        app.Table(
            name,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            schema=raw,
            options=rocksdb_options(settings),
            extra_topic_configs=min_isr,
        )
        for name in TABLES
    ]
    store = TableStore(*tables)
    ownership = Ownership(app)
    stage = EntityStage(plan, DueIndex(settings.partitions))

    async def send(
        topic: faust.TopicT,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        """Hand a record to the producer (Faust's, so its pre-commit flush covers it).

        Straight to ``Producer.send``: Faust's ``Topic.send`` adds a message future, a callback
        and sensor calls per record, for nothing we use.
        """
        name = topic.get_topic_name()
        fut: asyncio.Future[Any] = await app.producer.send(
            name, key, value, partition, None, headers
        )
        fut.add_done_callback(_fatal_on_failure)
        return fut

    def track(change: ScoreChange, fut: asyncio.Future[Any]) -> None:
        """Once Kafka has the change, its entity's outbox may forget it."""
        entity = records.entity_key_bytes(
            EntityKey(change.account_id, change.entity, change.entity_id)  # type: ignore[arg-type]
        )

        def done(f: asyncio.Future[Any]) -> None:
            if not f.cancelled() and f.exception() is None:
                stage.on_delivered(entity, change.score, change.seq)

        fut.add_done_callback(done)

    async def dead_letter(letter: DeadLetter) -> None:
        metrics.dead_letters.labels(letter.topic, letter.error_class).inc()
        metrics.events.labels(letter.topic, "dead_letter").inc()
        await send(dead_topic, letter.key, letter.value, headers=letter.headers())

    def letter(msg: Any, error_class: str, reason: str) -> DeadLetter:
        return DeadLetter(
            msg.key, msg.value, msg.topic, msg.partition, msg.offset, error_class, reason
        )

    def unexpected(msg: Any, exc: BaseException) -> DeadLetter:
        """A dead letter for an unexpected error, with its traceback."""
        log.error("unexpected error on %s[%s]@%s: %r", msg.topic, msg.partition, msg.offset, exc)
        summary = "".join(traceback.format_exception(exc, limit=6))[-1500:]
        return letter(msg, f"Unexpected:{type(exc).__name__}", summary)

    @app.agent(inputs, concurrency=1)
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            msg, started = event.message, time.perf_counter()
            if not ownership.owns(msg):
                continue  # revoked while buffered: its new owner reads it from the commit
            try:
                result = ingest_logic.handle(
                    topic=msg.topic,
                    partition=msg.partition,
                    offset=msg.offset,
                    key=msg.key,
                    value=msg.value,
                    appended_ms=int(msg.timestamp * 1000),
                    now_ms=now_ms(),
                )
                if isinstance(result, DeadLetter):
                    await dead_letter(result)
                else:
                    for key, value in result.outputs:
                        await send(entities_topic, key, value)
            except Exception as exc:  # never let Faust ack-and-skip: dead-letter and go on
                await dead_letter(unexpected(msg, exc))
            metrics.processing_seconds.labels("ingest").observe(time.perf_counter() - started)

    def outputs(emission: Emission) -> list[tuple[Any, bytes, bytes, ScoreChange | None]]:
        """Every record an emission publishes, encoded before any state is written."""
        emitted = now_ms()
        out: list[tuple[Any, bytes, bytes, ScoreChange | None]] = [
            (changed_topic, change_key(change),
             codec.encode(codec.score_changed, change_record(change, emitted_at_ms=emitted)),
             change)
            for change in (*emission.changes, *emission.republished)
        ]  # fmt: skip
        for key, state, names in emission.states.values():
            for out_key, rec in score_records(plan, key, state, names, updated_at_ms=emitted):
                out.append((scores_topic, out_key, codec.encode(codec.score, rec), None))
        return out

    async def settle(
        emission: Emission, source_topic: str | None, appended: int | None, *, wait: bool = False
    ) -> None:
        """Publish an emission and save its states.

        Items save first and publish after: a crash in between replays the item, finds it a
        duplicate and republishes the outbox. Ticks (``wait``) publish, wait for Kafka's
        acknowledgement, and only then save: a replayed tick finds nothing due, so the changes
        it caused must be safe in Kafka before the state that says they happened.
        """
        records_out = outputs(emission)  # may fail: then nothing of the record was saved
        if not wait:
            stage.commit(store, emission)
        try:
            futures = []
            for topic, key, value, change in records_out:
                fut = await send(topic, key, value)
                if change is not None:
                    track(change, fut)
                futures.append(fut)
            if wait and futures:
                await asyncio.gather(*futures)
        except Exception:
            if not wait:  # saved but not handed to Kafka: only a replay can republish it
                fatal("publishing after the state was saved failed")
            raise
        if wait:
            stage.commit(store, emission)
        metrics.observe(emission, source_topic, appended, now_ms())

    @app.agent(entities_topic, concurrency=1)
    async def score(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            msg, started = event.message, time.perf_counter()
            if not ownership.owns(msg):
                continue  # revoked while buffered: its new owner reads it from the commit
            try:
                rec = records.decode(msg.value)
                if isinstance(rec, records.Tick):
                    await settle(
                        stage.on_tick(store, msg.partition, rec.now_ms), None, None, wait=True
                    )
                    metrics.expiry_backlog.set(stage.due.backlog(rec.now_ms))
                else:
                    emission = stage.on_item(store, msg.key, rec)
                    if emission.invalid is not None:
                        await dead_letter(letter(msg, "InvalidRecord", emission.invalid))
                    await settle(emission, rec.source[0], rec.appended_ms)
            except Exception as exc:  # nothing of this record was written: dead-letter it
                stage.due.invalidate()  # popped due entries are rebuilt from the table
                await dead_letter(unexpected(msg, exc))
            metrics.processing_seconds.labels("score").observe(time.perf_counter() - started)

    @app.timer(interval=settings.tick_interval_ms / 1000)
    async def tick() -> None:
        now = now_ms()
        for tp in app.assignor.assigned_actives():
            if tp.topic == entity_name and stage.due.wants_tick(tp.partition, now):
                await send(
                    entities_topic,
                    records.TICK_KEY,
                    records.encode_tick(now),
                    partition=tp.partition,
                )

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        metrics.rebalances.inc()
        stage.due.invalidate()

    make_buffer_flush_strict(app)
    deliver_without_dropping(app)
    install_gauges(app, metrics, tables[0], stream_topics={*sources, entity_name},
                   entity_topic=entity_name, interval_s=5.0)  # fmt: skip
    register_views(app, settings, plan, store, metrics)
    return app
