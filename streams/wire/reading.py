"""Reading the service's topics from outside the loop: a topic to its end, and the input topics
as parsed items (``leadscore top``, ``calibrate`` and ``replay``).

Input records are decoded and validated as the worker's ingest does them (JSON within the bounds
of ``streams.wire.jsonlimits``); :func:`read_arrivals` also gives each item its record's Kafka
timestamp, the arrival time the worker bounds event times against (the plan's ``max_future``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from streams.engine.kafka import client_base_config
from streams.scoring import Invalid, Item, parse_input
from streams.settings import Settings
from streams.wire.codec import Codec, DecodeError, Source
from streams.wire.topics import input_topics


def read_to_end(config: dict[str, Any], topic: str, handle: Callable[[bytes], None],
                timeout_s: float, *, from_ms: int | None = None) -> str | None:  # fmt: skip
    """Every committed record of ``topic`` as it stands (from the first record whose Kafka
    timestamp is at or after ``from_ms``, if given), oldest first per partition, to
    ``handle``; None when done, else why not (not there, a fatal error, too slow)."""
    return read_timestamped(config, topic, lambda value, _: handle(value), timeout_s,
                            from_ms=from_ms)  # fmt: skip


def read_timestamped(config: dict[str, Any], topic: str, handle: Callable[[bytes, int], None],
                     timeout_s: float, *, from_ms: int | None = None) -> str | None:  # fmt: skip
    """:func:`read_to_end`, each value with its Kafka timestamp (-1 if the record has none)."""
    consumer = Consumer({**config, "group.id": "leadscore-reader", "enable.auto.commit": False,
                         "enable.partition.eof": True, "isolation.level": "read_committed",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        metadata = consumer.list_topics(topic, timeout=max(1.0, min(10.0, timeout_s)))
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            return f"topic {topic} is not there"
        pending = set(found.partitions)
        starts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)]
        if from_ms is not None and starts:
            asked = [TopicPartition(topic, p, from_ms) for p in sorted(pending)]
            starts = consumer.offsets_for_times(asked, timeout=max(1.0, min(10.0, timeout_s)))
            # no record at or after the instant: nothing to read there (offset -1: the end)
            pending -= {tp.partition for tp in starts if tp.offset < 0}
            starts = [tp for tp in starts if tp.offset >= 0]
        consumer.assign(starts)
        while pending:
            if time.monotonic() > deadline:
                return f"topic {topic} was not read to its end in {timeout_s:g} s"
            msg, fatal = poll_message(consumer, pending)
            if fatal is not None:
                return fatal
            if msg is not None:
                handle(msg.value(), msg.timestamp()[1])  # type: ignore[arg-type]
        return None
    finally:
        consumer.close()


def read_inputs(settings: Settings, codec: Codec, sources: Iterable[Source],
                handle: Callable[[Item], None], timeout_s: float, *,
                from_ms: int | None = None) -> tuple[str | None, int]:  # fmt: skip
    """The valid items of the input topics carrying ``sources``, topic by topic, to ``handle``
    (as the worker's ingest decodes and validates them); returns why a topic could not be read
    (None if all were) and how many records were not valid items (the worker dead-letters
    those)."""
    return read_arrivals(settings, codec, sources, lambda item, _: handle(item), timeout_s,
                         from_ms=from_ms)  # fmt: skip


def read_arrivals(settings: Settings, codec: Codec, sources: Iterable[Source],
                  handle: Callable[[Item, int], None], timeout_s: float, *,
                  from_ms: int | None = None) -> tuple[str | None, int]:  # fmt: skip
    """:func:`read_inputs`, each item with its arrival: its record's Kafka timestamp (the wall
    clock now for a record without one, as the worker's ingest takes its own)."""
    wanted = set(sources)
    bad = 0

    for topic, source in input_topics(settings).items():
        if source not in wanted:
            continue
        fmt = settings.input_format(topic)

        def take(value: bytes, stamp: int, source: Source = source, fmt: str = fmt) -> None:
            nonlocal bad
            try:
                item = parse_input(codec.decode_input(source, value, fmt=fmt))
            except DecodeError:
                bad += 1
                return
            if isinstance(item, Invalid):
                bad += 1
            else:
                handle(item, stamp if stamp >= 0 else int(time.time() * 1000))

        config = client_base_config(settings)
        why = read_timestamped(config, topic, take, timeout_s, from_ms=from_ms)
        if why is not None:
            return why, bad
    return None, bad


def service_codec(command: str) -> tuple[Settings, Codec] | int:
    """The settings and codec of the service for a command reading its topics (2 after
    printing why, if the settings or the schema registry are not usable)."""
    from streams.errors import LeadscoreError
    from streams.settings import load_settings
    from streams.wire.registry import registered_codec

    try:
        settings = load_settings()
        return settings, registered_codec(settings, outputs=False)
    except LeadscoreError as exc:
        print(f"leadscore {command}: {exc}", file=sys.stderr)
        return 2


def consume_values(consumer: Consumer, pending: set[int],
                   batch: int = 500) -> tuple[list[bytes], str | None]:  # fmt: skip
    """Up to ``batch`` records' values in one client call (one Python call per batch instead of
    per record), in log order, and a fatal error if one came (the values before it are still
    returned); an end of partition reached is taken out of ``pending``."""
    values: list[bytes] = []
    for msg in consumer.consume(batch, 0.5):
        error = msg.error()
        if error is None:
            value = msg.value()
            if value is not None:
                values.append(value)
        elif error.code() == KafkaError._PARTITION_EOF:
            pending.discard(msg.partition())
        elif error.fatal():
            return values, str(error)
    return values, None


def poll_message(consumer: Consumer, pending: set[int]) -> tuple[Message | None, str | None]:
    """One poll: (a record, None), or (None, a fatal error), or (None, None) for nothing (an
    end of partition reached is taken out of ``pending``)."""
    msg = consumer.poll(0.5)
    if msg is None:
        return None, None
    error = msg.error()
    if error is None:
        return msg, None
    if error.code() == KafkaError._PARTITION_EOF:
        pending.discard(msg.partition())
    elif error.fatal():
        return None, str(error)
    return None, None
