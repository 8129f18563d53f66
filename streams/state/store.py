"""One RocksDB database (rocksdict, raw bytes) per owned partition of the entity-events topic.

It holds only committed state: the loop writes it after the Kafka transaction that carried the same
states to the changelog has committed, in one ``WriteBatch`` with the changelog position, so a
crash between the two leaves the store behind the changelog (restore catches up), never ahead.

Layout (one column family, prefixed keys):

==========================  ===============================================================
``s`` + entity key          value: 8-byte big-endian next due time (-1: none) + state blob
``d`` + due (8 B) + key     empty: the due index, in due order (offset by 2^63 so negative
                            times sort first)
``s\x00plans``              the partition's tenant plans (``streams.engine.tenants``): not an entity
``s\x00h`` + key + score    the entity's score history (``streams.state.history``): not an entity
``s\x01`` + version + key   a shadow plan's state (``streams.engine.shadows``): stored as an entity
``s\x00g`` + key + seq (4 B) a sealed segment (seen ids, property history) of the state
                            stored under ``key``
                            (``streams.scoring.segments``; value: ``pack_value(None, segment)``)
``m:offset``                the next changelog offset to read on restore (8 B)
``m:count``                 entities stored (8 B)
==========================  ===============================================================

The value layout is also the changelog record's value, so restore needs no decoding of states.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import rocksdict

from streams.scoring import EntityState, loads
from streams.scoring.serialize import dumps_split

_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")
_SIGN = 1 << 63
_STATE, _DUE = b"s", b"d"
_OFFSET, _COUNT = b"m:offset", b"m:count"
NO_DUE = -1
#: The first byte of store keys that name no entity (entity keys are msgpack arrays).
RESERVED = b"\x00"
#: A partition's tenant plans (``streams.engine.tenants``), kept with its states.
PLANS_KEY = RESERVED + b"plans"


_U32 = struct.Struct(">I")
_SEGMENT = RESERVED + b"g"


def segment_prefix(key: bytes) -> bytes:
    """The store keys of the sealed segments of the state stored under ``key`` start so."""
    return _SEGMENT + key


def segment_key(key: bytes, seq: int) -> bytes:
    return _SEGMENT + key + _U32.pack(seq)


def encode_entity(key: bytes, state: EntityState) -> tuple[bytes, list[tuple[bytes, bytes | None]]]:
    """A dirty state's blob for a commit, and the records of its segments that go with it in the
    same transaction (store key, value; None: a tombstone), see ``streams.scoring.segments``."""
    blob, sealed, dropped = dumps_split(state)
    records: list[tuple[bytes, bytes | None]] = [
        (segment_key(key, seq), pack_value(None, segment)) for seq, segment in sealed
    ]
    records.extend((segment_key(key, seq), None) for seq in dropped)
    return blob, records


def decode_entity(key: bytes, blob: bytes, get: Callable[[bytes], bytes | None]) -> EntityState:
    """The state of a stored blob; its segments (if any) read with ``get`` (a store's)."""

    def segment(seq: int) -> bytes | None:
        value = get(segment_key(key, seq))
        return None if value is None else value[8:]

    return loads(blob, segment)


def stored_state(store: PartitionStore, key: bytes) -> EntityState | None:
    """The committed state stored under ``key`` (with its segments), or None."""
    value = store.get(key)
    return None if value is None else decode_entity(key, unpack_value(value)[1], store.get)


def pack_value(due_ms: int | None, blob: bytes) -> bytes:
    """A stored (and changelog) value: the next due time, then the state blob."""
    return _I64.pack(NO_DUE if due_ms is None else due_ms) + blob


def _due_key(due_ms: int, key: bytes) -> bytes:
    return _DUE + _U64.pack(due_ms + _SIGN) + key


def unpack_value(value: bytes) -> tuple[int | None, bytes]:
    (due,) = _I64.unpack_from(value)
    return (None if due == NO_DUE else due), value[8:]


class StoreOptions:
    """The RocksDB memory of one worker, shared by all its partition stores.

    As Kafka Streams' bounded-memory configuration does: one block cache for every store, with
    the memtables of every store charged to it through one write buffer manager, and the index and
    filter blocks kept in it too (``cache_index_and_filter_blocks``), so RocksDB's memory is
    bounded by ``block_cache_bytes + memtable_bytes`` however many partitions the worker holds.
    """

    def __init__(
        self,
        block_cache_bytes: int = 64 * 1024 * 1024,
        write_buffer_bytes: int = 8 * 1024 * 1024,
        max_write_buffers: int = 2,
        memtable_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.block_cache_bytes, self.memtable_bytes = block_cache_bytes, memtable_bytes
        self.write_buffer_bytes, self.max_write_buffers = write_buffer_bytes, max_write_buffers
        self.cache = rocksdict.Cache(block_cache_bytes + memtable_bytes)
        self.write_buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            memtable_bytes, False, self.cache
        )

    def usage_bytes(self) -> int:
        """Bytes held in the shared cache: blocks, index and filters, and memtables."""
        return int(self.cache.get_usage())


@dataclass(frozen=True, slots=True)
class Write:
    """One entity's committed state: ``value`` None deletes it."""

    key: bytes
    value: bytes | None
    old_due_ms: int | None
    new_due_ms: int | None
    existed: bool


def _options(opts: StoreOptions) -> rocksdict.Options:
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(opts.write_buffer_bytes)
    options.set_max_write_buffer_number(opts.max_write_buffers)
    options.set_write_buffer_manager(opts.write_buffers)
    options.set_target_file_size_base(16 * 1024 * 1024)
    options.set_max_open_files(512)
    table = rocksdict.BlockBasedOptions()
    table.set_block_cache(opts.cache)
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_top_level_index_and_filter(True)
    options.set_block_based_table_factory(table)
    return options


class PartitionStore:
    """Committed states, due index and changelog position of one partition."""

    def __init__(self, path: Path, options: StoreOptions) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._options = _options(options)
        self.db = rocksdict.Rdict(str(path), options=self._options)
        raw_count = self.db.get(_COUNT)
        self.entities: int = _I64.unpack(raw_count)[0] if raw_count is not None else 0

    # ----- reads -------------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """The stored value (``pack_value`` layout) of an entity, or None."""
        value: bytes | None = self.db.get(_STATE + key)
        return value

    def scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """Every stored (key, value) whose key starts with ``prefix``, in key order."""
        return [(k, v or b"") for k, v in self._prefixed(prefix, values=True)]

    def scan_keys(self, prefix: bytes) -> list[bytes]:
        """Every stored key that starts with ``prefix``, in key order."""
        return [k for k, _ in self._prefixed(prefix, values=False)]

    def _prefixed(self, prefix: bytes, *, values: bool) -> list[tuple[bytes, bytes | None]]:
        out: list[tuple[bytes, bytes | None]] = []
        start = _STATE + prefix
        it = self.db.iter()
        it.seek(start)
        while it.valid():
            k: bytes = it.key()
            if not k.startswith(start):
                break
            out.append((k[1:], it.value() if values else None))
            it.next()
        del it
        return out

    @property
    def changelog_offset(self) -> int | None:
        raw = self.db.get(_OFFSET)
        return None if raw is None else int(_I64.unpack(raw)[0])

    def due_keys(self, now_ms: int, limit: int) -> list[bytes]:
        """Entity keys whose stored next due time is at or before ``now_ms``, earliest first."""
        out: list[bytes] = []
        it = self.db.iter()
        it.seek(_DUE)
        while it.valid() and len(out) < limit:
            k: bytes = it.key()
            if not k.startswith(_DUE) or _U64.unpack_from(k, 1)[0] - _SIGN > now_ms:
                break
            out.append(k[9:])
            it.next()
        del it
        return out

    # ----- writes ------------------------------------------------------------------------------

    def write(self, writes: Iterable[Write], changelog_offset: int | None) -> None:
        """Committed states and the changelog position, atomically."""
        batch = rocksdict.WriteBatch(raw_mode=True)
        count = self.entities
        for w in writes:
            if w.old_due_ms is not None and w.old_due_ms != w.new_due_ms:
                batch.delete(_due_key(w.old_due_ms, w.key))
            if w.key[:1] == RESERVED:  # not an entity: not counted
                if w.value is None:
                    batch.delete(_STATE + w.key)
                else:
                    batch.put(_STATE + w.key, w.value)
                continue
            if w.value is None:  # a deletion: what the store holds says its due time
                stored = self.db.get(_STATE + w.key)
                if stored is not None:
                    due = unpack_value(stored)[0]
                    if due is not None and due != w.old_due_ms:
                        batch.delete(_due_key(due, w.key))
                    count -= 1
                batch.delete(_STATE + w.key)
                continue
            if w.new_due_ms is not None:
                batch.put(_due_key(w.new_due_ms, w.key), b"")
            batch.put(_STATE + w.key, w.value)
            count += 0 if w.existed else 1
        if changelog_offset is not None:
            batch.put(_OFFSET, _I64.pack(changelog_offset))
        batch.put(_COUNT, _I64.pack(count))
        self.db.write(batch)
        self.entities = count

    def apply_changelog(
        self, records: Iterable[tuple[bytes, bytes | None]], next_offset: int
    ) -> None:
        """Restore: changelog records (key, value or tombstone) up to ``next_offset``, atomically.

        Within one call a key may repeat; later records win, as in the log.
        """
        latest: dict[bytes, bytes | None] = {}
        for key, value in records:
            latest[key] = value
        writes = []
        for key, value in latest.items():
            old = self.get(key)
            old_due = unpack_value(old)[0] if old is not None else None
            new_due = unpack_value(value)[0] if value is not None else None
            writes.append(Write(key, value, old_due, new_due, old is not None))
        self.write(writes, next_offset)

    def close(self) -> None:
        self.db.close()

    def wipe(self) -> None:
        """Delete every byte of this store (its changelog position fell off the log)."""
        self.db.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)
        self.db = rocksdict.Rdict(str(self.path), options=self._options)
        self.entities = 0
