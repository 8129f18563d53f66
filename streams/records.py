"""The internal entity-events topic: items re-keyed by entity, and partition ticks.

Every record of that topic carries the instant ``now_ms`` its processing uses as "now". Items get it
when they are re-keyed (the ingest wall clock), ticks when they are produced. Because "now" travels
inside the log, replaying a partition after a crash or a rebalance recomputes exactly the same
states and the same score changes (same ``seq``, same ``change_id``).

Key of an item record: the entity key (msgpack ``[account_id, kind, entity_id]``). Key of a tick:
:data:`TICK_KEY`. Values are msgpack maps; decimals travel as strings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgpack
from aiokafka.partitioner import murmur2

from streams.scoring import EntityKey

TICK_KEY = b"\x00tick"


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """An input item on its way to one entity."""

    record: dict[str, Any]  # the decoded input, as parse_input takes it
    now_ms: int  # "now" for this item: when it was re-keyed
    source: tuple[str, int, int]  # topic, partition, offset of the original record
    appended_ms: int  # the original record's Kafka timestamp (for event-to-emit latency)


@dataclass(frozen=True, slots=True)
class Tick:
    now_ms: int


def entity_key_bytes(key: EntityKey) -> bytes:
    packed: bytes = msgpack.packb([key.account_id, key.kind, key.entity_id])
    return packed


def entity_key_from_bytes(raw: bytes) -> EntityKey:
    account_id, kind, entity_id = msgpack.unpackb(raw)
    return EntityKey(account_id, kind, entity_id)


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), as the producer and Faust's router use it."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


def encode_item(
    record: Mapping[str, Any], *, now_ms: int, source: tuple[str, int, int], appended_ms: int
) -> bytes:
    packed: bytes = msgpack.packb(
        {"i": record, "n": now_ms, "s": list(source), "a": appended_ms}, default=msgpack_default
    )
    return packed


def encode_tick(now_ms: int) -> bytes:
    packed: bytes = msgpack.packb({"t": now_ms})
    return packed


def decode(value: bytes) -> ItemRecord | Tick:
    body = msgpack.unpackb(value)
    if "t" in body:
        return Tick(body["t"])
    topic, partition, offset = body["s"]
    return ItemRecord(body["i"], body["n"], (topic, partition, offset), body["a"])


def msgpack_default(value: object) -> object:
    """msgpack fallback: decimals and datetimes travel as strings."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")
