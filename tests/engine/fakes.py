"""Hand-written fakes of the loop's Kafka clients, over one in-memory cluster.

- :class:`Cluster`: committed records per partition, the group's committed offsets, each
  transactional id's epoch, and every committed transaction as it was produced;
- :class:`FakeProducer`: a transactional producer; records wait in its open transaction and reach
  the logs on ``commit_transaction``; any call can be told to fail with a given ``KafkaError``;
  a producer whose epoch is older than its id's is fenced (``_FENCED``, fatal);
- :class:`FakeConsumer`: the group consumer: assignment, fetch positions, ``position`` (-1001 after
  a seek until the next fetch, as librdkafka), pause/resume, and rebalance callbacks that run
  inside the next ``consume`` (as librdkafka serves them), after which records the consumer had
  already fetched for a revoked partition may still come back;
- :class:`FakeRestoreConsumer` and :class:`FakeReader`: the changelog restore and a recompute's
  history read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from streams.engine.clients import Rebalanced, Record
from streams.wire.routing import partition_for

OFFSET_INVALID = -1001
TP = tuple[str, int]


@dataclass
class Cluster:
    partitions: dict[str, int]
    now_ms: int = 0
    logs: dict[TP, list[Record]] = field(default_factory=dict)
    group: dict[TP, int] = field(default_factory=dict)
    epochs: dict[str, int] = field(default_factory=dict)
    #: every committed transaction: its records (topic, key, value) and offsets
    transactions: list[tuple[list[tuple[str, bytes | None, bytes | None]], dict[TP, int]]] = field(
        default_factory=list
    )
    #: called after each ``init_transactions`` (a live twin can fence the caller at once)
    on_init: Callable[[str], None] | None = None

    def log(self, topic: str, partition: int) -> list[Record]:
        return self.logs.setdefault((topic, partition), [])

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes | None,
               headers: list[tuple[str, bytes]] | None = None) -> Record:  # fmt: skip
        log = self.log(topic, partition)
        rec = Record(topic, partition, len(log), key, value, self.now_ms, headers)
        log.append(rec)
        return rec

    def partition_of(self, topic: str, key: bytes | None, partition: int) -> int:
        if partition >= 0:
            return partition
        return 0 if key is None else partition_for(key, self.partitions[topic])

    def values(self, topic: str) -> list[Record]:
        return [r for (t, _), log in sorted(self.logs.items()) if t == topic for r in log]

    def bump(self, transactional_id: str) -> int:
        epoch = self.epochs[transactional_id] = self.epochs.get(transactional_id, 0) + 1
        return epoch


def error(code: int, *, fatal: bool = False, retriable: bool = False,
          abortable: bool = False) -> KafkaException:  # fmt: skip
    return KafkaException(KafkaError(code, "injected", fatal=fatal, retriable=retriable,
                                     txn_requires_abort=abortable))  # fmt: skip


@dataclass
class Delivered:
    _partition: int
    _offset: int

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class FakeProducer:
    def __init__(self, cluster: Cluster, transactional_id: str) -> None:
        self.cluster, self.transactional_id = cluster, transactional_id
        self.epoch = 0
        self.calls: list[str] = []
        self.fail: dict[str, list[Exception]] = {}
        #: commit the first transaction with a record to this topic, then raise this error (a
        #: commit whose outcome the client lost)
        self.commit_then_fail: tuple[str, KafkaException] | None = None
        self.closed = False
        self._records: list[tuple[str, int, bytes | None, bytes | None, Any, Any]] = []
        self._offsets: dict[TP, int] = {}

    def _call(self, name: str) -> None:
        assert not self.closed, f"{name} on a closed producer"
        self.calls.append(name)
        queued = self.fail.get(name)
        if queued:
            raise queued.pop(0)
        fenced = self.epoch and self.cluster.epochs.get(self.transactional_id, 0) > self.epoch
        if fenced and name in ("commit_transaction", "send_offsets_to_transaction", "produce"):
            raise error(KafkaError._FENCED, fatal=True)

    def init_transactions(self, timeout: float) -> None:
        self._call("init_transactions")
        self.epoch = self.cluster.bump(self.transactional_id)
        if self.cluster.on_init is not None:
            self.cluster.on_init(self.transactional_id)

    def begin_transaction(self) -> None:
        self._call("begin_transaction")
        self._records.clear()
        self._offsets.clear()

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        *,
        on_delivery: Any = None,
        headers: Any = None,
    ) -> None:
        self._call("produce")
        target = self.cluster.partition_of(topic, key, partition)
        self._records.append((topic, target, key, value, headers, on_delivery))

    def send_offsets_to_transaction(self, positions: Any, group_metadata: Any,
                                    timeout: float) -> None:  # fmt: skip
        self._call("send_offsets_to_transaction")
        for tp in positions:
            self._offsets[(tp.topic, tp.partition)] = tp.offset

    def commit_transaction(self, timeout: float) -> None:
        self._call("commit_transaction")
        produced = []
        for topic, partition, key, value, headers, on_delivery in self._records:
            rec = self.cluster.append(topic, partition, key, value, headers)
            produced.append((topic, key, value))
            if on_delivery is not None:
                on_delivery(None, Delivered(partition, rec.offset))
        self.cluster.group.update(self._offsets)
        self.cluster.transactions.append((produced, dict(self._offsets)))
        self._records.clear()
        self._offsets.clear()
        if self.commit_then_fail is not None and self.commit_then_fail[0] in {
            topic for topic, _, _ in produced
        }:
            exc, self.commit_then_fail = self.commit_then_fail[1], None
            raise exc

    def abort_transaction(self, timeout: float) -> None:
        self._call("abort_transaction")
        self._records.clear()
        self._offsets.clear()

    def poll(self, timeout: float) -> int:
        return 0

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self.calls.append("purge")

    def flush(self, timeout: float) -> int:
        self.calls.append("flush")
        queued = self.fail.get("flush")
        if queued:
            raise queued.pop(0)
        return 0

    def close(self) -> None:
        self.calls.append("close")
        self.closed = True


@dataclass
class _Fetch:
    offset: int | None = None  # next offset to return; None: from the committed offset
    position: int = OFFSET_INVALID  # what ``position`` answers
    paused: bool = False


class FakeConsumer:
    def __init__(self, cluster: Cluster, *, auto_assign: bool = False) -> None:
        self.cluster, self.auto_assign = cluster, auto_assign
        self.topics: list[str] = []
        self.callbacks: dict[str, Rebalanced] = {}
        self.fetch: dict[TP, _Fetch] = {}
        #: rebalance events served by the next ``consume``: (callback name, partitions)
        self.events: list[tuple[str, list[TP]]] = []
        #: records already fetched, returned by the next ``consume`` whatever happens
        self.prefetched: list[Record] = []
        self.seeks: list[tuple[TP, int]] = []
        self.closed = False

    # --- what the test does
    def rebalance(self, kind: str, partitions: list[TP]) -> None:
        self.events.append((kind, partitions))

    def all_partitions(self) -> list[TP]:
        return [(t, p) for t in self.topics for p in range(self.cluster.partitions[t])]

    # --- ConsumerLike
    def subscribe(self, topics: list[str], on_assign: Rebalanced, on_revoke: Rebalanced,
                  on_lost: Rebalanced) -> None:  # fmt: skip
        self.topics = list(topics)
        self.callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}
        if self.auto_assign:  # every partition, served by the first consume
            self.rebalance("assign", self.all_partitions())

    def consume(self, max_records: int, timeout_s: float) -> list[Record]:
        out, self.prefetched = self.prefetched[:max_records], self.prefetched[max_records:]
        while self.events:
            kind, partitions = self.events.pop(0)
            tps = [TopicPartition(t, p) for t, p in partitions]
            self.callbacks[kind](tps)
            if kind != "assign":
                for tp in partitions:
                    self.fetch.pop(tp, None)
        for tp, fetch in self.fetch.items():
            if fetch.paused or len(out) >= max_records:
                continue
            if fetch.offset is None:
                fetch.offset = max(self.cluster.group.get(tp, 0), 0)
            log = self.cluster.log(*tp)
            taken = log[fetch.offset : fetch.offset + max_records - len(out)]
            out.extend(taken)
            if taken:
                fetch.offset += len(taken)
                fetch.position = fetch.offset
        return out

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in self.fetch]

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.fetch[(tp.topic, tp.partition)] = _Fetch()

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition,
                               self.cluster.group.get((tp.topic, tp.partition), OFFSET_INVALID))
                for tp in partitions]  # fmt: skip

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        fetch = self.fetch
        return [TopicPartition(tp.topic, tp.partition, fetch[(tp.topic, tp.partition)].position)
                for tp in partitions]  # fmt: skip

    def seek(self, partition: TopicPartition) -> None:
        tp = (partition.topic, partition.partition)
        if tp not in self.fetch:
            raise error(KafkaError._STATE)
        offset = 0 if partition.offset == OFFSET_BEGINNING else partition.offset
        self.fetch[tp].offset, self.fetch[tp].position = offset, OFFSET_INVALID
        self.prefetched = [r for r in self.prefetched if (r.topic, r.partition) != tp]
        self.seeks.append((tp, offset))

    def pause(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.fetch[(tp.topic, tp.partition)].paused = True

    def resume(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.fetch[(tp.topic, tp.partition)].paused = False

    def consumer_group_metadata(self) -> Any:
        return "group-metadata"

    def watermarks(self, partition: TopicPartition) -> tuple[int, int] | None:
        return 0, len(self.cluster.log(partition.topic, partition.partition))

    def partition_count(self, topic: str, timeout_s: float) -> int | None:
        return self.cluster.partitions.get(topic)

    def close(self) -> None:
        if self.fetch:
            self.callbacks["revoke"]([TopicPartition(t, p) for t, p in self.fetch])
        self.fetch.clear()
        self.closed = True


@dataclass
class _Message:
    """What ``streams.state.restore.Restorer`` reads: a changelog record or the partition's end."""

    _partition: int
    _offset: int
    _key: bytes | None = None
    _value: bytes | None = None
    _error: KafkaError | None = None

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> KafkaError | None:
        return self._error


class FakeRestoreConsumer:
    def __init__(self, cluster: Cluster, topic: str) -> None:
        self.cluster, self.topic = cluster, topic
        self.assigned: dict[int, int] = {}
        self.restores = 0
        #: the partitions missing from its metadata until ``list_topics`` refreshes it
        self.unknown: set[int] = set()

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        if tp.partition in self.unknown:
            raise error(KafkaError._UNKNOWN_PARTITION)
        return 0, len(self.cluster.log(self.topic, tp.partition))

    def list_topics(self, topic: str, timeout: float) -> None:
        self.unknown.clear()

    def incremental_assign(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self.assigned[tp.partition] = 0 if tp.offset == OFFSET_BEGINNING else tp.offset
            self.restores += 1

    def incremental_unassign(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self.assigned.pop(tp.partition, None)

    def consume(self, max_records: int, timeout_s: float) -> list[_Message]:
        out: list[_Message] = []
        for p, start in self.assigned.items():
            log = self.cluster.log(self.topic, p)
            out.extend(_Message(p, r.offset, r.key, r.value) for r in log[start:])
            out.append(_Message(p, len(log), _error=KafkaError(KafkaError._PARTITION_EOF)))
            self.assigned[p] = len(log)
        return out

    def close(self) -> None:
        pass


class FakeReader:
    """A recompute's history read (``streams.engine.clients.LogReader``)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.at: tuple[TP, int] | None = None
        self.reads = 0

    def offsets_for_times(self, partitions: list[TopicPartition],
                          timeout: float) -> list[TopicPartition]:  # fmt: skip
        out = []
        for tp in partitions:
            log = self.cluster.log(tp.topic, tp.partition)
            first = next((r.offset for r in log if r.timestamp >= tp.offset), -1)
            out.append(TopicPartition(tp.topic, tp.partition, first))
        return out

    def assign(self, partitions: list[TopicPartition]) -> None:
        (tp,) = partitions
        self.at = ((tp.topic, tp.partition), tp.offset)
        self.reads += 1

    def consume(self, max_records: int, timeout_s: float) -> list[Record]:
        assert self.at is not None
        tp, offset = self.at
        taken = self.cluster.log(*tp)[offset : offset + max_records]
        self.at = (tp, offset + len(taken))
        return taken

    def unassign(self) -> None:
        self.at = None
