"""The cache of decoded entity states above the partition stores, with a dirty set.

Read-your-writes: an entity touched by several items of one transaction is decoded once and
encoded once, at commit (``dirty()``), not once per item. Only clean entries are evicted, least
recently used first; dirty ones stay until their transaction commits (``committed()``) or aborts
(``abort()``, which drops them: the store still holds their committed state).

Two bounds, both enforced at each commit: a number of entities (``LEADSCORE_CACHE_ENTITIES``)
and a number of bytes (``LEADSCORE_CACHE_BYTES``), counted as the encoded size of each state
(the blob loaded from the store, or the one the last commit wrote; 0 for a state new in the open
transaction; with its sealed segments, ``streams.scoring.segments``). An
entity's state grows with its activity within the plan's lateness, so a bound
on entities alone lets memory grow for days after start-up; the byte bound keeps it flat. The
decoded objects take a multiple of the encoded size (docs/operations.md, Memory).

Lifecycle of an entry (a table, as the style guide asks):

=========  ================  =========
from       event             to
=========  ================  =========
(none)     ``load``/``new``  clean
clean      ``touch``         dirty
dirty      ``committed``     clean
dirty      ``abort``         (none)
clean      evicted (LRU)     (none)
any        partition closed  (none)
=========  ================  =========
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from streams.scoring import EntityState

#: Reads a stored value by its store key (a partition store's ``get``).
Getter = Callable[[bytes], "bytes | None"]
#: Loads the committed (due, blob) of a key with the getter of its store (for the sealed segments
#: of the state), or None when the entity has no state yet.
Loader = Callable[[bytes], "tuple[int | None, bytes, Getter] | None"]
#: Decodes a stored blob: (key, blob, getter of its store) -> state
#: (``streams.state.store.decode_entity``).
Decoder = Callable[[bytes, bytes, Getter], EntityState]


@dataclass(slots=True)
class Entry:
    partition: int
    state: EntityState
    stored_due_ms: int | None  # the next due time the store holds for this entity
    existed: bool  # the store holds a state for this entity
    dirty: bool = False
    changed: set[str] = field(default_factory=set)  # scores changed since the last commit
    size: int = 0  # encoded bytes of the state last loaded or committed


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class StateCache:
    def __init__(self, capacity: int, decode: Decoder, max_bytes: int | None = None) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.decode = decode
        self.entries: OrderedDict[bytes, Entry] = OrderedDict()
        self.dirty: dict[bytes, Entry] = {}
        self.stats = CacheStats()
        self.bytes = 0  # the sum of the entries' sizes

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: bytes, partition: int, load: Loader) -> Entry | None:
        """The entry of ``key`` (loaded and decoded on a miss), or None if it has no state."""
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
            self.stats.hits += 1
            return entry
        self.stats.misses += 1
        stored = load(key)
        if stored is None:
            return None
        due, blob, get = stored
        state = self.decode(key, blob, get)
        entry = Entry(partition, state, due, True, size=len(blob) + state.seg_bytes)
        self.entries[key] = entry
        self.bytes += entry.size
        return entry

    def new(self, key: bytes, partition: int, state: EntityState) -> Entry:
        entry = Entry(partition, state, None, False)
        self.entries[key] = entry
        return entry

    def touch(self, key: bytes, entry: Entry, state: EntityState, changed: Iterable[str]) -> None:
        """The entity's state was (or may have been) changed by the core in this transaction."""
        entry.state = state
        entry.changed.update(changed)
        if not entry.dirty:
            entry.dirty = True
            self.dirty[key] = entry

    def resize(self, entry: Entry, size: int) -> None:
        """The commit encoded the entry's state into ``size`` bytes."""
        self.bytes += size - entry.size
        entry.size = size

    def committed(self) -> None:
        """The transaction holding every dirty state committed and the stores have them."""
        for entry in self.dirty.values():
            entry.dirty = False
            entry.existed = True
            entry.stored_due_ms = entry.state.next_due_ms
            entry.changed.clear()
        self.dirty.clear()
        self.evict()

    def abort(self) -> None:
        """The transaction aborted: forget every state it changed."""
        for key in self.dirty:
            self._drop(key)
        self.dirty.clear()

    def forget(self, key: bytes) -> None:
        """Drop one entry, dirty or not (the core raised while changing it in place)."""
        self._drop(key)
        self.dirty.pop(key, None)

    def drop_partitions(self, partitions: set[int]) -> None:
        """The partitions are closed (revoked or lost): forget their entries, dirty or not."""
        for key in [k for k, e in self.entries.items() if e.partition in partitions]:
            self._drop(key)
            self.dirty.pop(key, None)

    def _drop(self, key: bytes) -> None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry.size

    def _over(self, count: int, size: int) -> bool:
        return count > self.capacity or (self.max_bytes is not None and size > self.max_bytes)

    def evict(self) -> None:
        """Least recently used clean entries go until both bounds hold (or only dirty remain)."""
        count, size = len(self.entries), self.bytes
        if not self._over(count, size):
            return
        victims = []
        for key, entry in self.entries.items():
            if not entry.dirty:
                victims.append(key)
                count, size = count - 1, size - entry.size
                if not self._over(count, size):
                    break
        for key in victims:
            self._drop(key)
        self.stats.evictions += len(victims)
