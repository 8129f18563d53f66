"""Canary: aiokafka produces to and consumes from the real broker on a fresh topic."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.conftest import create_topics


async def test_produce_consume_round_trip(
    bootstrap: str, admin: AIOKafkaAdminClient, unique: str
) -> None:
    topic = f"roundtrip-{unique}"
    await create_topics(admin, topic, partitions=3)

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(30)}
        for key, value in sent.items():
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"roundtrip-{unique}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: dict[bytes, bytes] = {}
    partitions: set[int] = set()
    try:
        async with asyncio.timeout(30):
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        assert record.key is not None and record.value is not None
                        received[record.key] = record.value
                        partitions.add(record.partition)
    finally:
        await consumer.stop()

    assert received == sent
    # 30 distinct keys over 3 partitions: the default partitioner spreads them.
    assert partitions == {0, 1, 2}
