"""Ingest: decode an input record, validate it with the core's parser, and re-key it by entity.

Keys of input topics are not trusted (docs/inputs.md, Topics): each item goes to every entity it
routes to, keyed by that entity, so each entity's state lives in exactly one partition of the
entity-events topic. Anything that cannot be decoded, validated or routed becomes a dead letter with
its reason.

The item carries the input record's Kafka timestamp (``appended_ms``; the wall clock at ingest,
``now_ms``, when the record has none), so the entity stage can bound its event time against its
tenant's plan (``max_future``, :mod:`streams.scoring.arrival`) the same way on every replay.
Ingest refuses already (``future_event``, with the original bytes) what no plan could take: an
event time past the year 9999, one beyond the default plan's ``max_future`` for the default
tenant (whose plan that is), and one beyond the largest ``max_future`` any plan may set (7 days)
for another tenant.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException

from streams.engine.clients import Record
from streams.engine.outputs import Outputs, letter, unexpected
from streams.engine.stage import Abort
from streams.metrics import Metrics
from streams.scoring import Invalid, parse_input, route
from streams.scoring.arrival import future_reason
from streams.scoring.plan.spec import DEFAULT_MAX_FUTURE_MS, MAX_MAX_FUTURE_MS
from streams.wire import records
from streams.wire.codec import Codec, DecodeError, RegistryError, Source
from streams.wire.deadletter import FUTURE_EVENT, DeadLetter

log = logging.getLogger(__name__)
#: Pause before an input whose writer schema could not be fetched (registry unreachable) is
#: tried again: the transaction aborts and rewinds, nothing is dead-lettered.
REGISTRY_RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class Routed:
    """The entity-events records for one input item: (key bytes, value bytes) per entity."""

    outputs: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class Ingest:
    codec: Codec
    sources: dict[str, Source]  # input topic -> what it carries
    formats: dict[str, str]  # input topic -> "avro" | "json"
    #: the default plan's ``max_future``, named in the reason of an event time past 9999
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS

    def handle(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        appended_ms: int,
        now_ms: int,
    ) -> Routed | DeadLetter:
        def dead(error_class: str, reason: str) -> DeadLetter:
            return DeadLetter(key, value, topic, partition, offset, error_class, reason)

        source = self.sources.get(topic)
        if source is None:
            return dead("UnknownTopic", f"no input source is configured for topic '{topic}'")
        try:
            record = self.codec.decode_input(source, value, fmt=self.formats.get(topic, "avro"))
        except DecodeError as exc:
            return dead(exc.error_class, exc.reason)
        if appended_ms < 0:  # no Kafka timestamp (TIMESTAMP_NOT_AVAILABLE): ingest's wall clock
            appended_ms = now_ms
        item = parse_input(record)
        if isinstance(item, Invalid):
            if item.occurred_ms is not None:
                ahead = future_reason(item.occurred_ms, appended_ms, self.max_future_ms)
                return dead(FUTURE_EVENT, ahead or item.reason)
            return dead("InvalidRecord", item.reason)
        # the default tenant's plan is known here; another tenant's plan may accept up to the
        # bound no plan may exceed: beyond either, refuse now, with the original bytes (the
        # entity stage applies the tenant's own, tighter bound)
        bound = self.max_future_ms if item.tenant_id is None else MAX_MAX_FUTURE_MS
        ahead = future_reason(item.occurred_at_ms, appended_ms, bound)
        if ahead is not None:
            return dead(FUTURE_EVENT, ahead)
        keys = route(item)
        if not keys:
            return dead("Unroutable", "the record names no entity (contact_id and deal_id null)")
        value_out = records.encode_item(
            record, now_ms=now_ms, source=(topic, partition, offset), appended_ms=appended_ms
        )
        return Routed(tuple((records.entity_key_bytes(k), value_out) for k in keys))


class IngestStage:
    """The stage of the input topics: each record becomes entity-events records or a dead
    letter (:class:`Ingest`)."""

    def __init__(self, ingest: Ingest, metrics: Metrics,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.ingest, self.metrics, self.clock = ingest, metrics, clock

    def process(self, partition: int, batch: list[Record], out: Outputs) -> None:
        now_ms = int(self.clock() * 1000)
        started = time.perf_counter()
        for rec in batch:
            try:
                result = self.ingest.handle(
                    topic=rec.topic, partition=rec.partition, offset=rec.offset, key=rec.key,
                    value=rec.value, appended_ms=rec.timestamp, now_ms=now_ms,
                )  # fmt: skip
            except RegistryError as exc:  # the record is fine, the registry is not: retry later
                log.warning("schema registry: %s: aborting, retrying in %.0f s", exc,
                            REGISTRY_RETRY_S)  # fmt: skip
                time.sleep(REGISTRY_RETRY_S)
                raise Abort from exc
            except Exception as exc:  # ingest is stateless: a dead letter, and go on
                result = unexpected(rec, exc)
            if isinstance(result, DeadLetter):
                out.dead_letter(result)
            else:
                try:
                    for key, value in result.outputs:
                        out.entity_record(key, value)
                except KafkaException as exc:  # only local refusals are raised by produce
                    if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                        raise
                    out.dead_letter(letter(rec, "Oversized", "the re-keyed record is larger "
                                           "than the producer accepts"))  # fmt: skip
            out.txn.consumed(rec.topic, rec.partition, rec.offset)
        if batch:
            self.metrics.processing_seconds.labels("ingest").observe(
                (time.perf_counter() - started) / len(batch)
            )
