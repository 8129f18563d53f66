"""The ceiling contender: a plain aiokafka pipe, consume -> decode -> produce, one output per input.

What the most a Python worker on this Kafka client could do with these topics: no framework, no
state, no repartition. It decodes each record exactly as the service does (``Codec.decode_input``,
Avro, plus the field normalisation), encodes the internal record the service's ingest stage
would write (``records.encode_item``), and produces it keyed by the record's event id (the
benchmark maps outputs back to inputs by that id to measure latency). Delivery is at least once,
as in the service: a batch's offsets are committed only after Kafka acknowledged its outputs.

Run by ``bench/run.py``; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.wire import records
from streams.wire.codec import Codec, DecodeError, Source


async def pipe(args: argparse.Namespace) -> None:
    codec = Codec.load()
    topics = args.inputs.split(",")
    sources = dict(zip(topics, Source, strict=True))
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=2000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await consumer.start()
    await producer.start()
    try:
        # One batch in flight while the next is decoded: a batch's offsets are committed once
        # Kafka acknowledged all of its outputs.
        previous: tuple[list[Any], dict[TopicPartition, int]] | None = None
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            now_ms = int(time.time() * 1000)
            pending: list[Any] = []
            offsets: dict[TopicPartition, int] = {}
            for tp, messages in batches.items():
                source = sources[tp.topic]
                for msg in messages:
                    offsets[tp] = msg.offset + 1
                    try:
                        record = codec.decode_input(source, msg.value, fmt="avro")
                    except DecodeError:
                        continue
                    ident = record.get("event_id") or record.get("command_id") or ""
                    value = records.encode_item(
                        record,
                        now_ms=now_ms,
                        source=(tp.topic, tp.partition, msg.offset),
                        appended_ms=msg.timestamp,
                    )
                    pending.append(await producer.send(args.output, value, key=ident.encode()))
            if previous is not None:
                await asyncio.gather(*previous[0])
                if previous[1]:
                    await consumer.commit(previous[1])
            previous = (pending, offsets)
        if previous is not None:
            await asyncio.gather(*previous[0])
            if previous[1]:
                await consumer.commit(previous[1])
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument(
        "--inputs", required=True, help="six topics, in streams.wire.codec.Source order"
    )
    parser.add_argument("--output", required=True)
    asyncio.run(pipe(parser.parse_args()))


if __name__ == "__main__":
    main()
