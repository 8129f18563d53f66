"""The Kafka clients as the loop sees them: Protocols it runs on, and the one value it reads.

The loop never touches a ``confluent_kafka.Message``: :class:`KafkaConsumer` makes one
:class:`Record` of each at the edge (the only allocation per consumed record), and the loop's
clients are the Protocols below, so it runs as well on the hand-written fakes of
``tests/engine`` as on librdkafka (``streams.bootstrap`` builds the real ones).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streams.engine.kafka import Fatal
from streams.engine.transaction import TransactionalProducer

log = logging.getLogger(__name__)


class Record(NamedTuple):
    """One consumed record (a tuple: made once per message, read many times)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int  # the Kafka timestamp, ms (-1: none)
    headers: list[tuple[str, bytes]] | None = None


#: A rebalance callback: the partitions assigned, revoked or lost.
Rebalanced = Callable[[list[TopicPartition]], None]


class ConsumerLike(Protocol):
    """The loop's group consumer (``confluent_kafka.Consumer`` behind :class:`KafkaConsumer`)."""

    def subscribe(self, topics: list[str], on_assign: Rebalanced, on_revoke: Rebalanced,
                  on_lost: Rebalanced) -> None: ...  # fmt: skip
    def consume(self, max_records: int, timeout_s: float) -> list[Record]: ...
    def assignment(self) -> list[TopicPartition]: ...
    def incremental_assign(self, partitions: list[TopicPartition]) -> None: ...
    def committed(
        self, partitions: list[TopicPartition], timeout: float
    ) -> list[TopicPartition]: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...
    def seek(self, partition: TopicPartition) -> None: ...
    def pause(self, partitions: list[TopicPartition]) -> None: ...
    def resume(self, partitions: list[TopicPartition]) -> None: ...
    def consumer_group_metadata(self) -> Any: ...
    def watermarks(self, partition: TopicPartition) -> tuple[int, int] | None: ...
    def partition_count(self, topic: str, timeout_s: float) -> int | None: ...
    def close(self) -> None: ...


class ProducerLike(TransactionalProducer, Protocol):
    """The transactional producer, with what starting and disposing of it takes."""

    def init_transactions(self, timeout: float) -> None: ...
    def purge(self, in_queue: bool = ..., in_flight: bool = ..., blocking: bool = ...) -> None: ...
    def flush(self, timeout: float) -> int: ...
    def close(self) -> Any: ...


class LogReader(Protocol):
    """A consumer outside the group that reads one partition's history (a recompute)."""

    def offsets_for_times(self, partitions: list[TopicPartition],
                          timeout: float) -> list[TopicPartition]: ...  # fmt: skip
    def assign(self, partitions: list[TopicPartition]) -> None: ...
    def consume(self, max_records: int, timeout_s: float) -> list[Record]: ...
    def unassign(self) -> None: ...


def record_of(msg: Any) -> Record:
    """The :class:`Record` of a ``confluent_kafka.Message`` without an error."""
    return Record(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(),
                  msg.timestamp()[1], msg.headers())  # fmt: skip


class KafkaConsumer:
    """``confluent_kafka.Consumer`` as a :class:`ConsumerLike` (and a :class:`LogReader`).

    Error events of ``consume`` are handled here: a fatal one raises ``Fatal``; with ``strict``
    (a history read) any other but the end of a partition raises ``KafkaException``; else they
    are logged and dropped."""

    def __init__(self, consumer: Consumer, *, strict: bool = False) -> None:
        self.consumer, self.strict = consumer, strict

    def subscribe(self, topics: list[str], on_assign: Rebalanced, on_revoke: Rebalanced,
                  on_lost: Rebalanced) -> None:  # fmt: skip
        self.consumer.subscribe(
            topics,
            on_assign=lambda _, partitions: on_assign(partitions),
            on_revoke=lambda _, partitions: on_revoke(partitions),
            on_lost=lambda _, partitions: on_lost(partitions),
        )

    def consume(self, max_records: int, timeout_s: float) -> list[Record]:
        out: list[Record] = []
        for msg in self.consumer.consume(max_records, timeout_s):
            err = msg.error()
            if err is None:
                out.append(record_of(msg))
            elif err.fatal():
                raise Fatal(f"consumer error: {err}")
            elif err.code() == KafkaError._PARTITION_EOF:
                continue
            elif self.strict:
                raise KafkaException(err)
            else:
                log.warning("consumer: %s", err)
        return out

    def assignment(self) -> list[TopicPartition]:
        return self.consumer.assignment()

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.consumer.incremental_assign(partitions)

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return self.consumer.committed(partitions, timeout=timeout)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return self.consumer.position(partitions)

    def seek(self, partition: TopicPartition) -> None:
        self.consumer.seek(partition)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.consumer.pause(partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.consumer.resume(partitions)

    def consumer_group_metadata(self) -> Any:
        return self.consumer.consumer_group_metadata()

    def watermarks(self, partition: TopicPartition) -> tuple[int, int] | None:
        found = self.consumer.get_watermark_offsets(partition, cached=True)
        return None if found is None else (int(found[0]), int(found[1]))

    def partition_count(self, topic: str, timeout_s: float) -> int | None:
        topics = self.consumer.list_topics(timeout=timeout_s).topics
        return len(topics[topic].partitions) if topic in topics else None

    def offsets_for_times(self, partitions: list[TopicPartition],
                          timeout: float) -> list[TopicPartition]:  # fmt: skip
        return self.consumer.offsets_for_times(partitions, timeout=timeout)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.consumer.assign(partitions)

    def unassign(self) -> None:
        self.consumer.unassign()

    def close(self) -> None:
        self.consumer.close()
