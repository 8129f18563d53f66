"""Bulk restore of the tables from their changelogs, on the real broker and RocksDB.

The restored files must be exactly what Faust's own recovery would have produced: every latest
value per key, tombstones applied, and Faust's persisted-offset key at the last offset applied, so
that Faust's recovery afterwards starts where the restore stopped.
"""

from __future__ import annotations

from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from streams.app import rocksdb_options
from streams.records import partition_for
from streams.restore import OFFSET_KEY, restore_tables, table_path
from streams.settings import Settings
from streams.topics import TABLES
from tests.integration.conftest import create_topics

PARTITIONS = 3


def read_partition(settings: Settings, table: str, partition: int) -> dict[bytes, bytes]:
    from faust.stores.rocksdb import RocksDBOptions

    opts = {k: v for k, v in rocksdb_options(settings).items() if k != "driver"}
    db = RocksDBOptions(use_rocksdict=True, **opts).open(table_path(settings, table, partition))
    try:
        return {bytes(k): bytes(v) for k, v in db.items()}
    finally:
        db.close()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(
                topic, value, key=key, partition=partition_for(key, PARTITIONS)
            )
    finally:
        await producer.stop()


async def test_restore_writes_latest_values_tombstones_and_offsets(
    bootstrap: str, admin: AIOKafkaAdminClient, unique: str, tmp_path: Path
) -> None:
    settings = Settings(
        bootstrap_servers=bootstrap,
        app_id=f"restore-{unique}",
        data_dir=tmp_path / "data",
        partitions=PARTITIONS,
    )
    entities = f"{settings.app_id}-entities-changelog"
    await create_topics(admin, entities, partitions=PARTITIONS)
    first = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(300)]
    # later values for k0..k9, and tombstones for k10..k14
    updates: list[tuple[bytes, bytes | None]] = [(f"k{i}".encode(), b"new") for i in range(10)]
    updates += [(f"k{i}".encode(), None) for i in range(10, 15)]
    await produce(bootstrap, entities, [*first, *updates])

    # the `due` changelog does not exist yet: skipped, not created
    done = await restore_tables(settings, TABLES, rocksdb_options(settings))
    assert (done.records, done.partitions) == (315, PARTITIONS)

    expected = {k: v for k, v in first}
    expected.update({k: b"new" for k, _ in updates[:10]})
    for key, _ in updates[10:]:
        del expected[key]
    restored: dict[bytes, bytes] = {}
    for partition in range(PARTITIONS):
        data = read_partition(settings, "entities", partition)
        count = sum(1 for k, _ in [*first, *updates] if partition_for(k, PARTITIONS) == partition)
        assert data.pop(OFFSET_KEY) == str(count - 1).encode()  # last offset of the partition
        restored.update(data)
    assert restored == expected

    # nothing new in the changelog: nothing to do
    again = await restore_tables(settings, TABLES, rocksdb_options(settings))
    assert again.records == 0

    # only what was appended since is read
    await produce(bootstrap, entities, [(b"k20", b"newer"), (b"late", b"x")])
    tail = await restore_tables(settings, TABLES, rocksdb_options(settings))
    assert tail.records == 2
    merged: dict[bytes, bytes] = {}
    for partition in range(PARTITIONS):
        merged.update(read_partition(settings, "entities", partition))
    merged.pop(OFFSET_KEY, None)
    assert merged == {**expected, b"k20": b"newer", b"late": b"x"}
