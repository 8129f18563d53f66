"""Shadow plans: a tenant's challenger plan, scored live beside its active plan (docs/plans.md,
Champion and challenger).

1. ``leadscore plan publish --tenant T --shadow FILE`` writes the plan to the ``plans`` topic
   under the key :func:`plans_key` (its own key per tenant and version, so compaction keeps the
   active plan and every shadow apart); a tombstone there discards it.
2. The ``plans`` stage checks it like any plan and writes one shadow plan record to every
   entity-events partition (``streams.wire.records``: a field of its own, which a worker before
   shadow plans dead-letters instead of running it as the tenant's plan).
3. From its copy on, each partition scores every item of the tenant under the active plan *and*
   under each shadow, in the same transaction: a shadow keeps its own state per entity under
   :func:`state_key` (its version, then the entity key), starting empty where the shadow starts,
   with its own due times and roll-ups (member updates marked with the shadow's version). Its
   changes go to ``score-changed-shadow`` only: never to ``score-changed``, never to ``scores``.
4. A discard (or a promote, which is an active plan record with a recompute followed by the
   discard) drops the shadow's states of that tenant on the partition, in the same transaction:
   a tombstone each, to the changelog and the store.

A shadow whose core raises on an item never harms the active plan: the transaction aborts, and
when the item comes again it is scored under the active plan only (the shadow misses that item,
which the log says).
"""

from __future__ import annotations

import struct

import msgpack

#: The first byte of a shadow state's key: neither an entity key's (msgpack arrays: 0x9X) nor
#: a reserved key's (``streams.state.store.RESERVED``, 0x00), so a shadow state is stored as an
#: entity is, with its due times in the due index.
SHADOW = b"\x01"
_LEN = struct.Struct(">H")
#: The ``plans`` topic key of a shadow: this, the tenant, a zero byte, the version.
PLANS_PREFIX = "\x00shadow\x00"


def plans_key(tenant: str, version: str) -> bytes:
    return f"{PLANS_PREFIX}{tenant}\x00{version}".encode()


def parse_plans_key(key: str) -> tuple[str, str] | None:
    """(tenant, version) of a shadow's ``plans`` key, or None for a tenant's own key."""
    if not key.startswith(PLANS_PREFIX):
        return None
    tenant, sep, version = key[len(PLANS_PREFIX) :].partition("\x00")
    return (tenant, version) if sep else None


def state_key(version: str, entity_key: bytes) -> bytes:
    """Where the shadow ``version`` keeps an entity's state (a partition store key)."""
    raw = version.encode()
    return SHADOW + _LEN.pack(len(raw)) + raw + entity_key


def split_state_key(key: bytes) -> tuple[str, bytes] | None:
    """(version, entity key) of a shadow state's key, or None for any other key."""
    if key[:1] != SHADOW or len(key) < 3:
        return None
    (size,) = _LEN.unpack_from(key, 1)
    return key[3 : 3 + size].decode(), key[3 + size :]


def tenant_prefix(version: str, tenant: str | None) -> bytes:
    """The prefix of every state key of one tenant under the shadow ``version``: entity keys are
    msgpack ``[tenant, kind, id]``, so a tenant's keys start alike."""
    packed: bytes = msgpack.packb(tenant)
    return state_key(version, b"\x93" + packed)


def entity_of(key: bytes) -> bytes:
    """The entity key of a state key (a shadow's or the entity's own)."""
    split = split_state_key(key)
    return key if split is None else split[1]
