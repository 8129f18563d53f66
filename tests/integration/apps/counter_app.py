"""A minimal Faust app for the recovery canary: counts messages per key in a RocksDB table.

Run as ``python -m tests.integration.apps.counter_app``; configured by the test through
``CANARY_*`` environment variables (a test fixture, not part of the service).
Every input message increments its key's count and publishes ``key -> count`` to the output topic.
"""

from __future__ import annotations

import os
import sys

import faust

BROKER = os.environ["CANARY_BROKER"]
APP_ID = os.environ["CANARY_APP_ID"]
SOURCE = os.environ["CANARY_SOURCE"]
SINK = os.environ["CANARY_SINK"]
DATADIR = os.environ["CANARY_DATADIR"]

app = faust.App(
    APP_ID,
    broker=f"kafka://{BROKER}",
    store="rocksdb://",
    datadir=DATADIR,
    topic_replication_factor=1,
    topic_partitions=1,
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
)
source = app.topic(SOURCE, key_serializer="raw", value_serializer="raw", partitions=1)
sink = app.topic(SINK, key_serializer="raw", value_serializer="raw", partitions=1)
counts = app.Table(
    "counts",
    default=int,
    partitions=1,
    key_type=str,
    value_type=int,
    options={
        "driver": "rocksdict",
        "block_cache_size": 8 * 1024 * 1024,
        "block_cache_compressed_size": 1024 * 1024,
        "write_buffer_size": 4 * 1024 * 1024,
        "max_write_buffer_number": 2,
    },
)


@app.agent(source)
async def count(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        key = event.key.decode()
        counts[key] += 1
        await sink.send(key=key.encode(), value=str(counts[key]).encode())


if __name__ == "__main__":
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    sys.exit(worker.execute_from_commandline())
