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

from dataclasses import dataclass

from streams.scoring import Invalid, parse_input, route
from streams.scoring.arrival import future_reason
from streams.scoring.plan.spec import DEFAULT_MAX_FUTURE_MS, MAX_MAX_FUTURE_MS
from streams.wire import records
from streams.wire.codec import Codec, DecodeError, Source
from streams.wire.deadletter import FUTURE_EVENT, DeadLetter


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
        bound = self.max_future_ms if item.account_id is None else MAX_MAX_FUTURE_MS
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
