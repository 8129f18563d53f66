"""glibc's allocator, tuned for a long-running worker.

The worker's threads (the loop, librdkafka's, RocksDB's, the HTTP server's) each get a malloc
arena of their own by default (up to 8 per core), and memory freed in one arena is not reused by
the others: over hours the resident set creeps up although nothing leaks. Two remedies, as
RocksDB users apply them (Kafka Streams' docs suggest jemalloc for the same reason):

- ``limit_arenas``: at start-up, before the threads exist, cap the arenas (``mallopt``
  ``M_ARENA_MAX``; setting ``LEADSCORE_MALLOC_ARENAS``, 0 leaves glibc's default);
- ``trim``: now and then, give free memory at the top of each arena back to the system
  (``malloc_trim(0)``), from the loop's gauge update.

Both do nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import logging
import platform

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's malloc.h


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def limit_arenas(count: int) -> bool:
    """Cap malloc arenas at ``count`` (0: leave the default); whether it took effect."""
    libc = _glibc()
    if count <= 0 or libc is None:
        return False
    done = bool(libc.mallopt(M_ARENA_MAX, count) == 1)
    if not done:
        log.warning("mallopt(M_ARENA_MAX, %d) failed: the allocator keeps its default", count)
    return done


def trim() -> None:
    """Return free heap memory to the system (glibc only)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
