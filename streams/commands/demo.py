"""``leadscore demo``: publish realistic sample traffic, in Avro, to the input topics.

Bounded by ``--events`` and paced by ``--rate``; event times start at the wall clock so that quiet
hours and expiry behave as they would live. Sends only to the configured bootstrap servers (and,
with ``LEADSCORE_SCHEMA_REGISTRY_URL`` set, registers the input schemas there and frames each
value with the registry's schema id, as a Confluent serializer does).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from decimal import Decimal

from confluent_kafka import Producer

from streams.commands.traffic import TrafficShape, generate
from streams.engine.kafka import client_base_config
from streams.errors import StartupError
from streams.settings import Settings
from streams.wire.codec import Source
from streams.wire.registry import registered_codec
from streams.wire.topics import ensure_topics, input_topics


def publish(
    settings: Settings, *, events: int, rate: float, contacts: int, deals: int, seed: int
) -> int:
    ensure_topics(settings)  # a demo may run before the first worker created them
    codec = registered_codec(settings, outputs=False, inputs=True)
    topic_of = {source: topic for topic, source in input_topics(settings).items()}
    shape = replace(
        TrafficShape(),
        contacts=contacts,
        deals=deals,
        start_ms=int(time.time() * 1000),
        step_ms=max(1, int(1000 / max(rate, 1))),
    )
    producer = Producer(
        {
            **client_base_config(settings),
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    failed: list[str] = []

    def delivered(err: object, msg: object) -> None:
        if err is not None:
            failed.append(str(err))

    sent, started = 0, time.monotonic()
    for source, record in generate(events, seed=seed, shape=shape):
        topic = topic_of[source]
        key = (record.get("contact_id") or record.get("entity_id") or "").encode()
        value = (
            _json(record)
            if settings.input_format(topic) == "json"
            else codec.encode(codec.inputs[source], record)
        )
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        sent += 1
        if rate > 0:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    left = producer.flush(60)
    if left or failed:
        raise RuntimeError(f"{left} records undelivered, {len(failed)} failed: {failed[:3]}")
    return sent


def _json(record: dict[str, object]) -> bytes:
    return json.dumps(record, default=lambda v: str(v) if isinstance(v, Decimal) else v).encode()


def run_demo(
    settings: Settings, *, events: int, rate: float, contacts: int, deals: int, seed: int
) -> int:
    try:
        sent = publish(
            settings, events=events, rate=rate, contacts=contacts, deals=deals, seed=seed
        )
    except StartupError as exc:
        print(f"leadscore demo: {exc}", file=sys.stderr)
        return 2
    print(f"leadscore demo: published {sent} records to {settings.bootstrap_servers}")
    return 0


__all__ = ["Source", "publish", "run_demo"]
