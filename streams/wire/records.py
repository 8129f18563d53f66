"""The internal entity-events topic: input items re-keyed by entity.

Every item carries the instant ``now_ms`` its processing uses as "now": the ingest wall clock when
it was re-keyed. Because that "now" travels inside the log, the core's work on an item is the same
whenever the item is processed (after an aborted transaction, a crash or a rebalance).

Key: the entity key (msgpack ``[tenant_id, kind, entity_id]``). Value: a msgpack map; decimals
travel as strings. Besides input items the topic carries *member updates*: a contact's values
for the roll-ups of one deal or account (``streams.scoring.rollup``), produced by the entity
stage of the contact's partition, in the transaction that commits the contact's state, and keyed
by the deal or account so that they reach its partition; they decode to :class:`MemberRecord`.
*Plan records* carry a tenant's newly accepted plan (``streams.engine.tenants``): the worker that
reads it from the ``plans`` topic writes one copy to every partition of this topic, in one
transaction, so each partition switches at the offset of its copy, the same point on every worker
and on every replay of the partition; they decode to :class:`PlanRecord`.
Records ``{"t": now}`` are partition ticks left by the Faust runtime (before the transactional
loop, time-driven work travelled through this topic); they decode to :class:`Tick` and the loop
skips them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgpack
import msgspec

from streams.scoring import EntityKey, MemberUpdate


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs a setattr call per field
class ItemRecord:
    """An input item on its way to one entity."""

    record: dict[str, Any]  # the decoded input, as parse_input takes it
    now_ms: int  # "now" for this item: when it was re-keyed
    source: tuple[str, int, int]  # topic, partition, offset of the original record
    #: the original record's Kafka timestamp, its arrival (the wall clock at ingest if it had
    #: none): the entity stage bounds the event time by it (``max_future``); also the latency
    appended_ms: int


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """A member update on its way to a deal or account."""

    update: MemberUpdate
    now_ms: int  # "now" of the contact's item (or time step) that sent it
    #: the version of the shadow plan that sent it (to the target's shadow state), or None
    shadow: str | None = None


@dataclass(frozen=True, slots=True)
class PlanRecord:
    """A tenant's accepted plan (``text``), or its return to the default plan (``text`` None)."""

    tenant: str
    version: str | None
    text: str | None
    now_ms: int
    source: tuple[str, int, int]  # topic, partition, offset of the record on the plans topic
    #: recompute the tenant's entities by replaying this partition's items appended since then
    recompute_from_ms: int | None = None
    #: a shadow plan (``streams.engine.shadows``): scored beside the tenant's active plan,
    #: ``version`` names it; ``text`` None discards it
    shadow: bool = False


@dataclass(frozen=True, slots=True)
class Tick:
    """A partition tick of the Faust runtime (read only, to be skipped)."""

    now_ms: int


def entity_key_bytes(key: EntityKey) -> bytes:
    packed: bytes = msgpack.packb([key.tenant_id, key.kind, key.entity_id])
    return packed


def entity_key_from_bytes(raw: bytes) -> EntityKey:
    tenant_id, kind, entity_id = msgpack.unpackb(raw)
    return EntityKey(tenant_id, kind, entity_id)


def encode_item(
    record: Mapping[str, Any], *, now_ms: int, source: tuple[str, int, int], appended_ms: int
) -> bytes:
    packed: bytes = msgpack.packb(
        {"i": record, "n": now_ms, "s": list(source), "a": appended_ms}, default=msgpack_default
    )
    return packed


def encode_member(update: MemberUpdate, *, now_ms: int, shadow: str | None = None) -> bytes:
    """A member update; a shadow plan's goes under its own field (``ms``, with the shadow's
    version), which a worker before shadow plans refuses (a dead letter) instead of applying it
    to the active state."""
    contact, version, values, source, occurred = update
    wire = None if values is None else [list(pair) for pair in values]
    body = [contact, version, wire, source, occurred]
    if shadow is not None:
        packed: bytes = msgpack.packb({"ms": body, "v": shadow, "n": now_ms})
    else:
        packed = msgpack.packb({"m": body, "n": now_ms})
    return packed


def encode_plan(
    tenant: str, version: str | None, text: str | None, *, now_ms: int,
    source: tuple[str, int, int], recompute_from_ms: int | None = None, shadow: bool = False,
) -> bytes:  # fmt: skip
    """A plan record; a shadow plan's goes under its own field (``ps``), which a worker before
    shadow plans refuses (a dead letter) instead of running it as the tenant's plan."""
    packed: bytes = msgpack.packb({"ps" if shadow else "p": [tenant, version, text],
                                   "n": now_ms, "s": list(source),
                                   "r": recompute_from_ms})  # fmt: skip
    return packed


#: msgspec reads the msgpack that ``encode_item`` and the others write (about 0.6 us less than
#: ``msgpack.unpackb`` per re-keyed item): maps with string keys, lists, no extension types.
_decode_body = msgspec.msgpack.Decoder().decode


def decode(value: bytes) -> ItemRecord | MemberRecord | PlanRecord | Tick:
    body = _decode_body(value)
    if type(body) is not dict:
        raise ValueError(f"not an entity-events record: a msgpack {type(body).__name__}")
    if "p" in body or "ps" in body:
        shadow = "ps" in body
        tenant, version, text = body["ps" if shadow else "p"]
        topic, partition, offset = body["s"]
        return PlanRecord(tenant, version, text, body["n"], (topic, partition, offset),
                          body.get("r"), shadow)  # fmt: skip
    if "m" in body or "ms" in body:
        contact, version, wire, source, occurred = body.get("m") or body["ms"]
        values = None if wire is None else tuple((name, points) for name, points in wire)
        update = MemberUpdate(contact, version, values, source, occurred)
        return MemberRecord(update, body["n"], body.get("v"))
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
