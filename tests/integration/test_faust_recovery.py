"""Canary: a faust-streaming app with a rocksdb:// (rocksdict) table recovers from its changelog.

The app counts messages per key. It is stopped, its local RocksDB folder is deleted, it is started
again, and the next messages must continue the counts: the state came back from the changelog.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.conftest import create_topics

REPO = Path(__file__).resolve().parents[2]


def _start_app(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.integration.apps.counter_app", "worker"],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop_app(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


async def _produce(bootstrap: str, topic: str, keys: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key in keys:
            await producer.send_and_wait(topic, b"x", key=key)
    finally:
        await producer.stop()


async def _read(
    consumer: AIOKafkaConsumer, n: int, proc: subprocess.Popen[bytes], timeout_s: float
) -> list[tuple[bytes, int]]:
    out: list[tuple[bytes, int]] = []
    async with asyncio.timeout(timeout_s):
        while len(out) < n:
            assert proc.poll() is None, "the Faust worker exited early (see its log)"
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend((r.key, int(r.value)) for r in records)
    return out


async def test_rocksdb_table_recovers_from_changelog(
    bootstrap: str, admin: AIOKafkaAdminClient, unique: str, tmp_path: Path
) -> None:
    source, sink = f"canary-in-{unique}", f"canary-out-{unique}"
    await create_topics(admin, source, sink)
    datadir = tmp_path / "faust-data"
    log = tmp_path / "worker.log"
    env = {
        "CANARY_BROKER": bootstrap,
        "CANARY_APP_ID": f"canary-{unique}",
        "CANARY_SOURCE": source,
        "CANARY_SINK": sink,
        "CANARY_DATADIR": str(datadir),
    }
    consumer = AIOKafkaConsumer(
        sink, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        proc = _start_app(env, log)
        try:
            await _produce(bootstrap, source, [b"a", b"b", b"a", b"a", b"b"])
            first = await _read(consumer, 5, proc, timeout_s=90)
        finally:
            assert _stop_app(proc) == 0, log.read_text()
        assert first == [(b"a", 1), (b"b", 1), (b"a", 2), (b"a", 3), (b"b", 2)]
        assert any(datadir.rglob("*.sst")) or any(datadir.rglob("CURRENT")), "no RocksDB files"

        shutil.rmtree(datadir)  # lose every local byte of state

        proc = _start_app(env, log)
        try:
            await _produce(bootstrap, source, [b"b", b"a"])
            second = await _read(consumer, 2, proc, timeout_s=90)
        finally:
            assert _stop_app(proc) == 0, log.read_text()
        # The counts continue from 3 and 2: they were rebuilt from the changelog topic.
        assert second == [(b"b", 3), (b"a", 4)]
    finally:
        await consumer.stop()
