"""Which partition of the entity-events topic (and of its state and changelog) holds an entity.

Kafka's default partitioner of the Java client: ``murmur2(key) & 0x7fffffff`` modulo the partition
count. librdkafka's default partitioner is a different one (CRC32), so the producer is configured
with ``partitioner=murmur2_random`` (the same murmur2, in C, for every keyed record) and this
module computes the same choice where the service must know it without producing: the HTTP API
finding the partition (and so the owner) of an entity, tools and tests.
"""

from __future__ import annotations

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 as ``org.apache.kafka.common.utils.Utils.murmur2``, as an unsigned 32-bit int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = length - whole
    if extra == 3:
        h ^= data[whole + 2] << 16
    if extra >= 2:
        h ^= data[whole + 1] << 8
    if extra >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition the Java producer (and librdkafka's ``murmur2_random``) picks for ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
