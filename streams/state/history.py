"""Score history: the last changes of each score of an entity, kept with its state.

Each change the loop publishes to ``score-changed`` is also kept in the entity's partition store,
in the same transaction (written with the states at commit, to the state changelog and the store:
``streams.engine.transaction``'s extras), so an abort drops it with the states and a restore
brings it back with them. A score keeps its last ``LEADSCORE_HISTORY_PER_SCORE`` changes (default
50) in a ring of that many slots: change ``seq`` goes to slot ``seq % bound``, so a change costs
one small record and no read, and the ring never grows.

Store layout (reserved keys, next to ``streams.state.store``'s):

=============================================================  ==================================
``\\x00h`` + entity key + score (UTF-8) + ``\\x00`` + slot (2 B)  the change (in the store's value
                                                               layout, no due time): the byte
                                                               ``0xc1`` and its ``score-changed``
                                                               Avro datum, unframed
=============================================================  ==================================

The datum is the one the loop publishes, so keeping a change costs no second encoding. Entries
written before this format (msgpack of the change's ``score-changed`` shape) are still read:
``0xc1`` is the one byte no msgpack value starts with.

Entity keys are msgpack arrays, which delimit themselves, so an entity's prefix never starts
another entity's keys. A slot may hold a change older than the ring (the bound was larger once)
or from a score that started over: :func:`latest` keeps only the run of seqs that ends at the
score's current seq, without gaps.
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Iterable
from typing import Any

import fastavro
import msgpack

from streams.state.store import RESERVED, pack_value, unpack_value

HISTORY = RESERVED + b"h"
#: the default of ``LEADSCORE_HISTORY_PER_SCORE``
DEFAULT_PER_SCORE = 50
MAX_PER_SCORE = 10_000
_SLOT = struct.Struct(">H")


def entity_prefix(entity_key: bytes) -> bytes:
    """The prefix of every history key of one entity."""
    return HISTORY + entity_key


def score_prefix(entity_key: bytes, score: str) -> bytes:
    return HISTORY + entity_key + score.encode() + b"\x00"


def slot_key(entity_key: bytes, score: str, seq: int, bound: int) -> bytes:
    """Where change ``seq`` of ``score`` is kept, in a ring of ``bound`` slots."""
    return score_prefix(entity_key, score) + _SLOT.pack(seq % bound)


#: Marks an entry holding an Avro datum (msgpack never writes this byte).
AVRO = b"\xc1"


def encode_datum(datum: bytes) -> bytes:
    """A stored change: its unframed ``score-changed`` datum (``schemas/score_changed.avsc``)."""
    return pack_value(None, AVRO + datum)


def encode(change: dict[str, Any]) -> bytes:
    """A stored change in the earlier format: msgpack of its ``score-changed`` shape
    (``ScoreChange.to_dict`` with emitted_at)."""
    return pack_value(None, msgpack.packb(change))


def decode(value: bytes) -> dict[str, Any]:
    """A stored change, in either format, as its ``score-changed`` shape (times in millis)."""
    blob = unpack_value(value)[1]
    if blob[:1] == AVRO:
        read = fastavro.schemaless_reader(io.BytesIO(blob[1:]), _schema(), None)
        assert isinstance(read, dict)  # noqa: S101 - the schema is a record's
        return read
    record: dict[str, Any] = msgpack.unpackb(blob)
    return record


@functools.cache
def _schema() -> Any:
    """``score-changed``'s schema with its timestamps as the epoch millis they are."""
    from streams.wire.codec import _without_timestamps, load_schema

    return fastavro.parse_schema(_without_timestamps(load_schema("score_changed")))


def by_score(
    rows: Iterable[tuple[bytes, bytes]], entity_key: bytes
) -> dict[str, list[dict[str, Any]]]:
    """Stored (key, value) rows of one entity's prefix, decoded and grouped by score."""
    prefix = entity_prefix(entity_key)
    out: dict[str, list[dict[str, Any]]] = {}
    for key, value in rows:
        rest = key[len(prefix) :]  # score + 0 + slot (2 bytes, which may hold a 0 too)
        if not key.startswith(prefix) or len(rest) < 3 or rest[-3] != 0:
            continue
        out.setdefault(rest[:-3].decode(errors="replace"), []).append(decode(value))
    return out


def latest(changes: Iterable[dict[str, Any]], current_seq: int, n: int) -> list[dict[str, Any]]:
    """The last ``n`` changes, newest first: the seqs ``current_seq``, ``current_seq - 1``, ...
    as far as the ring holds them without a gap (stale slots are left out)."""
    by_seq = {c["seq"]: c for c in changes}
    out: list[dict[str, Any]] = []
    seq = current_seq
    while len(out) < n and seq in by_seq:
        out.append(by_seq[seq])
        seq -= 1
    return out
