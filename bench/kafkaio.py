"""Kafka plumbing of the side-by-side benchmark: topics, preloading, reading back, lag.

Every topic the benchmark creates uses ``message.timestamp.type=LogAppendTime``, so each record's
timestamp is the instant the broker appended it: latency is measured between two broker appends
and throughput between the first and last output append, whatever the clocks of the contenders.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.wire.codec import Codec, Source

SHORT = {
    Source.PAGE_VISITS: "pv",
    Source.EMAIL_EVENTS: "em",
    Source.PURCHASES: "pu",
    Source.DEAL_STAGE_CHANGES: "ds",
    Source.CONTACT_PROFILES: "cp",
    Source.SCORE_ADJUSTMENTS: "sa",
}
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


@dataclass(frozen=True, slots=True)
class TopicSet:
    """The topics one contender reads and writes in one phase."""

    inputs: tuple[str, ...]  # in streams.wire.codec.Source order
    changed: str
    scores: str
    dead: str

    @classmethod
    def named(cls, inputs: Sequence[str], prefix: str) -> TopicSet:
        return cls(tuple(inputs), f"{prefix}-score-changed", f"{prefix}-scores", f"{prefix}-dead")

    @staticmethod
    def input_names(prefix: str) -> tuple[str, ...]:
        # short: Quix names its repartition topic after the group and every input topic, and
        # Kafka topic names stop at 249 characters
        return tuple(f"{prefix}-{SHORT[source]}" for source in Source)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.changed, self.scores, self.dead)


#: CreateTopics error codes that mean the topic is there.
CREATED = {0, 36}  # none, TOPIC_ALREADY_EXISTS


async def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    *,
    compacted: Iterable[str] = (),
    replication: int = 1,
    configs: Mapping[str, str] | None = None,
) -> None:
    """Create the topics (those that exist already are left as they are), with ``replication``
    replicas and ``configs`` besides broker append time. No list of every topic is asked for:
    a broker shared with other runs may hold thousands, and aiokafka decodes their metadata in
    Python."""
    compact = set(compacted)
    new = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication,
            topic_configs={
                **APPEND_TIME,
                **(configs or {}),
                **({"cleanup.policy": "compact"} if name in compact else {}),
            },
        )
        for name in names
    ]
    if not new:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(new)
    finally:
        await admin.close()
    failed = [(name, code) for name, code, *_ in response.topic_errors if code not in CREATED]
    if failed:
        raise RuntimeError(f"topics not created (name, Kafka error code): {failed}")
    # a busy broker answers before its metadata lists the new topics: a contender started now
    # could find them missing (Quix Streams exits then), so wait until they are listed
    async with EndOffsets(bootstrap) as listed:
        await listed.of([topic.name for topic in new])


async def delete_topics(bootstrap: str, marker: str) -> int:
    """Delete every topic whose name holds ``marker`` (a run's or a phase's tag: the inputs,
    the outputs, and the topics a contender made for itself). Returns how many."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if marker in name]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()
    return len(names)


def producer(bootstrap: str, **kw: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **kw)


async def produce_all(
    bootstrap: str,
    records: Iterable[tuple[str, bytes, bytes, int | None]],
    *,
    window: int = 5000,
    **config: Any,
) -> int:
    """Produce (topic, key, value, partition) records as fast as the client can.

    At most ``window`` records wait for their acknowledgement at a time.
    """
    prod = producer(bootstrap, **config)
    await prod.start()
    count = 0
    try:
        pending = []
        for topic, key, value, partition in records:
            pending.append(await prod.send(topic, value, key=key, partition=partition))
            count += 1
            if len(pending) >= window:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await prod.stop()
    return count


def entity_hint(record: dict[str, Any]) -> bytes:
    """The key a platform team would use on an input topic (the service does not trust it)."""
    return (record.get("contact_id") or record.get("deal_id") or "").encode()


async def preload(
    bootstrap: str, topics: TopicSet, events: Iterable[tuple[Source, dict[str, Any]]]
) -> int:
    """Produce every event, Avro-encoded, to its input topic."""
    codec = Codec.load()
    topic_of = dict(zip(Source, topics.inputs, strict=True))
    encoded = (
        (topic_of[source], entity_hint(record), codec.encode(codec.inputs[source], record), None)
        for source, record in events
    )
    return await produce_all(bootstrap, encoded, linger_ms=20, max_batch_size=256 * 1024)


class EndOffsets:
    """End offsets asked again and again (a drain wait) on one consumer, not one per call."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)

    async def __aenter__(self) -> EndOffsets:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def of(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        tps = []
        for topic in topics:
            parts = await _partitions(self.consumer, topic)
            tps += [TopicPartition(topic, p) for p in parts]
        ends: dict[TopicPartition, int] = await self.consumer.end_offsets(tps)
        return ends

    async def total(self, topic: str) -> int:
        return sum((await self.of([topic])).values())


async def end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
    async with EndOffsets(bootstrap) as ends:
        return await ends.of(topics)


async def _partitions(consumer: AIOKafkaConsumer, topic: str, timeout_s: float = 60) -> set[int]:
    client = consumer._client
    deadline = time.monotonic() + timeout_s  # a busy broker can take seconds to list a new topic
    while time.monotonic() < deadline:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return set(parts)
        # a topic created a moment ago; only the topics asked about (with none tracked,
        # aiokafka asks for the metadata of every topic on the broker)
        client._topics.add(topic)
        await client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no partitions after {timeout_s:.0f} s")


async def total(bootstrap: str, topic: str) -> int:
    return sum((await end_offsets(bootstrap, [topic])).values())


async def group_lag(
    bootstrap: str, group: str, topics: Sequence[str], offsets: EndOffsets | None = None
) -> int:
    """Records of ``topics`` not yet committed by ``group``."""
    ends = await offsets.of(topics) if offsets is not None else await end_offsets(bootstrap, topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    done = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
    return sum(max(0, end - done.get(tp, 0)) for tp, end in ends.items())


async def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every record of a topic, from the beginning to the end offsets seen at the start."""
    ends = {tp: off for tp, off in (await end_offsets(bootstrap, [topic])).items() if off > 0}
    out: list[Any] = []
    if not ends:
        return out
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 << 20,
        isolation_level="read_committed",  # transactional outputs: committed records only
    )
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning(*ends)
        remaining = dict(ends)
        deadline = time.monotonic() + 300
        while remaining and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for tp, messages in batches.items():
                for msg in messages:
                    if msg.offset < ends[tp]:
                        out.append(msg)
            for tp in list(remaining):  # the position also moves past transaction markers
                if await consumer.position(tp) >= ends[tp]:
                    remaining.pop(tp, None)
    finally:
        await consumer.stop()
    return out
