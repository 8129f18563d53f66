"""Ingest: decode an input record, validate it with the core's parser, and re-key it by entity.

Keys of input topics are not trusted (docs/inputs.md, Topics): each item goes to every entity it
routes to, keyed by that entity, so each entity's state lives in exactly one partition of the
entity-events topic. Anything that cannot be decoded, validated or routed becomes a dead letter with
its reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams import records
from streams.codec import Codec, DecodeError, Source
from streams.deadletter import DeadLetter
from streams.scoring import Invalid, parse_input, route


@dataclass(frozen=True, slots=True)
class Routed:
    """The entity-events records for one input item: (key bytes, value bytes) per entity."""

    outputs: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class Ingest:
    codec: Codec
    sources: dict[str, Source]  # input topic -> what it carries
    formats: dict[str, str]  # input topic -> "avro" | "json"

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
            return dead("UnknownTopic", f"no input source is configured for topic {topic!r}")
        try:
            record = self.codec.decode_input(source, value, fmt=self.formats.get(topic, "avro"))
        except DecodeError as exc:
            return dead(exc.error_class, exc.reason)
        item = parse_input(record)
        if isinstance(item, Invalid):
            return dead("InvalidRecord", item.reason)
        keys = route(item)
        if not keys:
            return dead("Unroutable", "the record names no entity (contact_id and deal_id null)")
        value_out = records.encode_item(
            record, now_ms=now_ms, source=(topic, partition, offset), appended_ms=appended_ms
        )
        return Routed(tuple((records.entity_key_bytes(k), value_out) for k in keys))
