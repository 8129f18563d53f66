"""Bulk restore of the tables from their changelogs, before Faust starts.

Faust's own recovery applies changelog records one at a time through a queue, with a timeout task
and bookkeeping per record: about 2,400 records/s on the benchmark machine, so rebuilding 100,000
entities took 42 s and a million would take minutes (``docs/performance.md``). This module does the
same work in bulk first: for every partition of each table's changelog it reads the records after
the offset the local RocksDB says it holds, with plain aiokafka batches, and writes them with one
RocksDB ``WriteBatch`` per fetch, together with Faust's own persisted-offset key. Faust then opens
the same files, finds them at (or near) the changelog's end, and its recovery only replays what
arrived meanwhile.

The files are Faust's: the same path (``<data_dir>/v1/tables/<table>-<partition>.db``), the same
options (opened through Faust's ``RocksDBOptions``), raw keys and values, and the persisted offset
under Faust's key with Faust's meaning (the last changelog offset applied). Partitions this
worker will not be assigned are restored too; that costs time, never correctness, since Faust
recovers any partition from its persisted offset onwards. Checked against faust-streaming 0.15.3.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rocksdict
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.stores.rocksdb import RocksDBOptions, Store

from streams.settings import Settings
from streams.topics import changelog_topic

log = logging.getLogger(__name__)
OFFSET_KEY: bytes = Store.offset_key
FETCH_RECORDS = 20_000
STALL_S = 30.0  # no record for this long: stop and leave the rest to Faust's recovery


@dataclass(frozen=True, slots=True)
class Restored:
    records: int
    partitions: int
    seconds: float


def table_path(settings: Settings, table: str, partition: int) -> Path:
    """Where Faust keeps a table partition (``Store.partition_path`` with our ``data_dir``)."""
    return settings.data_dir / "v1" / "tables" / f"{table}-{partition}.db"


async def restore_tables(
    settings: Settings, tables: tuple[str, ...], options: dict[str, Any]
) -> Restored:
    """Bring every local table partition up to its changelog's current end."""
    started = time.monotonic()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    records = partitions = 0
    try:
        existing = await consumer.topics()
        for table in tables:
            topic = changelog_topic(settings, table)
            if topic not in existing:
                continue  # first start: Faust creates the changelog
            # a table's changelog has the table's partitions (Faust checks it at start-up)
            tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            for tp in tps:
                restored = await _restore_partition(
                    consumer, settings, table, tp, starts[tp], ends[tp], options
                )
                records += restored
                partitions += 1 if restored else 0
    finally:
        await consumer.stop()
    done = Restored(records, partitions, time.monotonic() - started)
    if done.records:
        log.info(
            "restored %d changelog records into %d table partitions in %.1f s",
            done.records, done.partitions, done.seconds,
        )  # fmt: skip
    return done


async def _restore_partition(
    consumer: AIOKafkaConsumer,
    settings: Settings,
    table: str,
    tp: TopicPartition,
    start: int,
    end: int,
    options: dict[str, Any],
) -> int:
    if end <= start:
        return 0
    path = table_path(settings, table, tp.partition)
    path.parent.mkdir(parents=True, exist_ok=True)
    opts = {k: v for k, v in options.items() if k != "driver"}
    db = RocksDBOptions(use_rocksdict=True, **opts).open(path)
    try:
        persisted = db.get(OFFSET_KEY)
        position = max(start, int(persisted) + 1) if persisted is not None else start
        if position >= end:
            return 0
        consumer.assign([tp])
        consumer.seek(tp, position)
        count, progress_at = 0, time.monotonic()
        while position < end:
            if time.monotonic() - progress_at > STALL_S:
                log.warning(
                    "%s[%d]: no progress for %.0f s at offset %d of %d; Faust recovers the rest",
                    tp.topic, tp.partition, STALL_S, position, end,
                )  # fmt: skip
                break
            batch = rocksdict.WriteBatch(raw_mode=True)
            fetched = await consumer.getmany(tp, timeout_ms=2000, max_records=FETCH_RECORDS)
            last = None
            for msg in fetched.get(tp, ()):
                if msg.offset >= end:
                    break
                if msg.value is None:
                    batch.delete(msg.key)
                else:
                    batch.put(msg.key, msg.value)
                last = msg.offset
                count += 1
            if last is None:
                # nothing below ``end`` came back: transaction markers or an empty fetch
                position = await consumer.position(tp)
                continue
            batch.put(OFFSET_KEY, str(last).encode())
            db.write(batch)
            position, progress_at = last + 1, time.monotonic()
        return count
    finally:
        db.close()
