"""``leadscore demo``: publish realistic sample traffic, in Avro, to the input topics.

Bounded by ``--events`` and paced by ``--rate``; event times start at the wall clock so that quiet
hours and expiry behave as they would live. Sends only to the configured bootstrap servers.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from aiokafka import AIOKafkaProducer

from streams.codec import Codec, Source
from streams.settings import Settings
from streams.topics import ensure_topics, input_topics
from streams.traffic import TrafficShape, generate


async def publish(
    settings: Settings, *, events: int, rate: float, contacts: int, deals: int, seed: int
) -> int:
    await ensure_topics(settings)  # a demo may run before the first worker created them
    codec = Codec.load()
    topic_of = {source: topic for topic, source in input_topics(settings).items()}
    shape = replace(
        TrafficShape(),
        contacts=contacts,
        deals=deals,
        start_ms=int(time.time() * 1000),
        step_ms=max(1, int(1000 / max(rate, 1))),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )
    await producer.start()
    sent, started = 0, time.monotonic()
    try:
        for source, record in generate(events, seed=seed, shape=shape):
            topic = topic_of[source]
            key = (record.get("contact_id") or record.get("entity_id") or "").encode()
            value = (
                _json(record)
                if settings.input_format(topic) == "json"
                else codec.encode(codec.inputs[source], record)
            )
            await producer.send(topic, value, key=key)
            sent += 1
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def _json(record: dict[str, object]) -> bytes:
    import json
    from decimal import Decimal

    return json.dumps(record, default=lambda v: str(v) if isinstance(v, Decimal) else v).encode()


def run_demo(
    settings: Settings, *, events: int, rate: float, contacts: int, deals: int, seed: int
) -> int:
    sent = asyncio.run(
        publish(settings, events=events, rate=rate, contacts=contacts, deals=deals, seed=seed)
    )
    print(f"leadscore demo: published {sent} records to {settings.bootstrap_servers}")
    return 0


__all__ = ["Source", "publish", "run_demo"]
