"""The one place the worker is put together: Kafka clients, stores, stages, the loop, HTTP.

:func:`build_loop` wires a :class:`~streams.engine.loop.Loop` from clients it is given (the
Protocols of ``streams.engine.clients``), so tests build the same loop on fakes;
:func:`kafka_clients` makes the real ones (librdkafka); :func:`run` adds the HTTP side and the
``scores`` feed, and runs it all until a signal or a fatal error.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from streams import native
from streams.api.http import Api, HttpServer, Owners, client_id
from streams.api.topview import top_feed_of
from streams.engine.allocator import limit_arenas
from streams.engine.clients import ConsumerLike, KafkaConsumer, LogReader, ProducerLike
from streams.engine.due import DueWork
from streams.engine.entities import EntityStage
from streams.engine.identity import Identity
from streams.engine.ingest import Ingest, IngestStage
from streams.engine.kafka import (
    CALLS,
    consumer_config,
    producer_config,
    restore_consumer_config,
)
from streams.engine.loop import Loop
from streams.engine.outputs import Topics
from streams.engine.partitions import Partitions
from streams.engine.plans import PlansStage, PlanSwitch, Poison
from streams.engine.recovery import Recovery
from streams.engine.score import ScoreStage
from streams.engine.stage import Stage
from streams.metrics import Metrics
from streams.scoring import Plan
from streams.settings import Settings
from streams.state.cache import StateCache
from streams.state.restore import Restorer
from streams.state.store import PartitionStore, StoreOptions, decode_entity
from streams.wire.codec import Codec
from streams.wire.topics import entity_topic, input_topics, state_changelog_topic

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Clients:
    """The loop's Kafka clients: the group consumer, a maker of transactional producers (all
    with the worker's ``transactional.id``), the restore consumer, a maker of history readers."""

    consumer: ConsumerLike
    make_producer: Callable[[], ProducerLike]
    restore_consumer: Any  # what ``streams.state.restore.Restorer`` reads with
    make_reader: Callable[[], LogReader]


def kafka_clients(settings: Settings, *, client: str, transactional_id: str) -> Clients:
    def make_producer() -> ProducerLike:
        producer: ProducerLike = Producer(
            producer_config(settings, transactional_id=transactional_id)
        )
        return producer

    return Clients(
        KafkaConsumer(Consumer(consumer_config(settings, client_id=client))),
        make_producer,
        Consumer(restore_consumer_config(settings)),
        lambda: KafkaConsumer(Consumer(restore_consumer_config(settings)), strict=True),
    )


def build_loop(settings: Settings, plan: Plan, clients: Clients, *, metrics: Metrics,
               codec: Codec, clock: Callable[[], float] = time.time) -> Loop:  # fmt: skip
    """The loop and its stages, stores and outputs, on ``clients``."""
    sources = input_topics(settings)
    ingest = Ingest(codec, sources, {t: settings.input_format(t) for t in sources},
                    plan.max_future_ms)  # fmt: skip
    metrics.plan.info({"version": plan.version, "source": str(settings.plan_path),
                       "scores": str(len(plan.scores))})  # fmt: skip
    root = Path(settings.data_dir) / "state"
    options = StoreOptions(
        settings.rocksdb_block_cache_bytes,
        settings.rocksdb_write_buffer_bytes,
        settings.rocksdb_max_write_buffers,
        settings.rocksdb_memtable_bytes,
    )
    cache = StateCache(settings.cache_entities, decode_entity, settings.cache_bytes)
    stage = EntityStage(plan, cache)
    poison: Poison = {}
    plans = PlanSwitch(stage, metrics, poison, clients.make_reader, settings.recompute_max_items,
                       clock)  # fmt: skip
    entity = entity_topic(settings)
    topics = Topics(entity, settings.topic_plans, settings.topic_score_changed,
                    settings.topic_scores, settings.topic_dead_letters,
                    settings.topic_plan_status, {entity: settings.partitions},
                    settings.topic_score_changed_shadow)  # fmt: skip
    ingest_stage = IngestStage(ingest, metrics, clock)
    stages: dict[str, Stage] = dict.fromkeys(sources, ingest_stage)
    stages[settings.topic_plans] = PlansStage(metrics, clock)
    stages[entity] = ScoreStage(stage, plans, poison, metrics, clock)
    recovery = Recovery(clients.make_producer, max_recoveries=settings.producer_recoveries_max,
                        call_timeout_s=settings.kafka_call_timeout_s,
                        transaction_timeout_s=settings.transaction_timeout_ms / 1000)  # fmt: skip
    restorer = Restorer(clients.restore_consumer, state_changelog_topic(settings),
                        settings.kafka_call_timeout_s)  # fmt: skip
    loop = Loop(
        settings, consumer=clients.consumer, recovery=recovery, restorer=restorer, stage=stage,
        stages=stages, plans=plans, due=DueWork(stage, Partitions(), metrics, clock),
        topics=topics, codec=codec, metrics=metrics,
        open_store=lambda p: PartitionStore(root / f"p{p}", options),
        memory_bytes=options.usage_bytes, clock=clock,
    )  # fmt: skip
    loop.out.history_per_score = settings.history_per_score
    plans.shadows_per_tenant = settings.shadows_per_tenant
    return loop


def _tune_gc() -> None:
    # Start-up objects (modules, the compiled plan, schemas) never die: keep them out of the
    # collector's scans, and collect young objects less often. `make bench-core` compares this
    # with four other policies on batches shaped like ours (docs/performance.md, "Garbage
    # collector policy"): it beats CPython's defaults by 40-55%, and none of the others beat it
    # by more than the run-to-run noise.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def run(settings: Settings, plan: Plan, codec: Codec, identity: Identity) -> int:
    """The worker: the loop on this thread, HTTP and the ``scores`` feed on their own."""
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    limit_arenas(settings.malloc_arenas)  # before the Kafka clients and RocksDB start threads
    metrics = Metrics.create()
    clients = kafka_clients(settings, client=client_id(settings),
                            transactional_id=identity.transactional_id)  # fmt: skip
    loop = build_loop(settings, plan, clients, metrics=metrics, codec=codec)
    top_feed = top_feed_of(settings, codec)
    try:
        http = HttpServer(
            Api(settings, plan, loop, metrics, Owners(settings, loop.entity_topic), top_feed,
                tenants=loop.stage.tenants, stores=loop.rebalance, codec=codec),
            settings.web_host, settings.web_port,
        )  # fmt: skip
    except OSError as exc:
        print(f"leadscore worker: cannot serve HTTP on {settings.web_host}:{settings.web_port}"
              f" ({exc.strerror}): fix LEADSCORE_WEB_PORT", file=sys.stderr)  # fmt: skip
        return 2
    http.start()
    top_feed.start()
    log.info("worker %s (transactional.id %s) serving %s, %s", identity.instance_id,
             identity.transactional_id, settings.advertised_url, native.describe())  # fmt: skip
    _tune_gc()
    try:
        code = loop.run()
    finally:
        http.stop()
        top_feed.stop()
        loop.close()
    stuck = CALLS.stuck()
    if stuck:  # the interpreter's exit could block on a client a thread is still inside of
        log.warning("calls still blocked in librdkafka (%s): ending the process with %d",
                    ", ".join(stuck), code)  # fmt: skip
        logging.shutdown()
        os._exit(code)
    logging.shutdown()
    return code
