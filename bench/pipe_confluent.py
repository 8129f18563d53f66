"""Plain pipes on confluent-kafka: consume -> decode -> produce, one output per input.

The most a Python worker on librdkafka could do with these topics, with no framework, state or
repartition: ``consume(2000)``, decode each record exactly as the service does
(``Codec.decode_input``), encode the internal record its ingest stage writes
(``records.encode_item``), produce it keyed by the event id (the benchmark maps outputs back to
inputs by that id). Two guarantees:

- ``--transactional``: one transaction every ``--commit-ms`` carrying the outputs and the consumed
  offsets (``send_offsets_to_transaction``), ``read_committed``: the service's shape, minus state;
- otherwise at least once: every ``--commit-ms``, flush the producer, then commit the offsets.

Run by ``bench/run.py``; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from streams.wire import records
from streams.wire.codec import Codec, DecodeError, Source


def pipe(args: argparse.Namespace) -> None:
    codec = Codec.load()
    topics = args.inputs.split(",")
    sources = dict(zip(topics, Source, strict=True))
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": args.group,
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "isolation.level": "read_committed", "log_level": 3,
    })  # fmt: skip
    config: dict[str, Any] = {"bootstrap.servers": args.bootstrap, "linger.ms": 5, "acks": "all",
                              "log_level": 3}  # fmt: skip
    if args.transactional:
        config["transactional.id"] = f"{args.group}-{uuid.uuid4().hex[:8]}"
    producer = Producer(config)
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    if args.transactional:
        producer.init_transactions(30)
    consumer.subscribe(topics)
    offsets: dict[tuple[str, int], int] = {}
    opened = False
    last_commit = time.monotonic()

    def commit() -> None:
        nonlocal opened
        if not offsets:
            return
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        if args.transactional:
            producer.send_offsets_to_transaction(tps, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
            opened = False
        else:
            producer.flush(30)
            consumer.commit(offsets=tps, asynchronous=False)
        offsets.clear()

    while not stop:
        messages = consumer.consume(2000, 0.05)
        now_ms = int(time.time() * 1000)
        for msg in messages:
            if msg.error() is not None:
                continue
            if args.transactional and not opened:
                producer.begin_transaction()
                opened = True
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            offsets[(topic, partition)] = offset + 1  # type: ignore[index,operator]
            try:
                record = codec.decode_input(sources[topic], msg.value(), fmt="avro")  # type: ignore[index]
            except DecodeError:
                continue
            ident = record.get("event_id") or record.get("command_id") or ""
            value = records.encode_item(record, now_ms=now_ms, source=(topic, partition, offset),  # type: ignore[arg-type]
                                        appended_ms=msg.timestamp()[1])  # fmt: skip
            while True:
                try:
                    producer.produce(args.output, value, ident.encode())
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
        if time.monotonic() - last_commit >= args.commit_ms / 1000:
            commit()
            last_commit = time.monotonic()
    commit()
    consumer.close()
    producer.flush(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument(
        "--inputs", required=True, help="six topics, in streams.wire.codec.Source order"
    )
    parser.add_argument("--output", required=True)
    parser.add_argument("--transactional", action="store_true")
    parser.add_argument("--commit-ms", type=int, default=100)
    pipe(parser.parse_args())


if __name__ == "__main__":
    main()
