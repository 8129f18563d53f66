"""Three-node KRaft cluster (RF 3, min.insync.replicas 2): losing a node to kill -9 loses nothing.

Starts the cluster with ``deploy/kafka/kafka.sh cluster-up`` unless it is already running, and stops
it afterwards only if this test started it.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.conftest import create_topics

KAFKA = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"
pytestmark = pytest.mark.cluster


def _kafka(*args: str) -> str:
    done = subprocess.run(
        ["bash", str(KAFKA), *args], capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, f"kafka.sh {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    was_up = all(line.endswith(")") for line in _kafka("cluster-status").splitlines())
    _kafka("cluster-up")
    try:
        yield _kafka("bootstrap", "cluster").strip()
    finally:
        if not was_up:
            _kafka("cluster-down")


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, request_timeout_ms=20000
    )
    await producer.start()
    try:
        for i, value in enumerate(values):
            await producer.send_and_wait(topic, value, key=str(i).encode())
    finally:
        await producer.stop()


async def _consume_all(bootstrap: str, topic: str, n: int) -> set[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen: set[bytes] = set()
    try:
        async with asyncio.timeout(60):
            while len(seen) < n:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    seen.update(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return seen


async def _isr_sizes(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return sorted(len(p["isr"]) for p in described["partitions"])
    finally:
        await admin.close()


async def test_kill_one_node_then_bring_it_back(cluster: str, unique: str) -> None:
    topic = f"cluster-{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster)
    await admin.start()
    try:
        await create_topics(admin, topic, partitions=3, replication=3)
    finally:
        await admin.close()

    batch1 = [f"before-{i}".encode() for i in range(100)]
    await _produce(cluster, topic, batch1)

    _kafka("cluster-kill", "2")
    try:
        # acks=all with min.insync.replicas=2 still succeeds on the two surviving nodes.
        batch2 = [f"during-{i}".encode() for i in range(100)]
        await _produce(cluster, topic, batch2)
        assert await _consume_all(cluster, topic, 200) == set(batch1 + batch2)
    finally:
        _kafka("cluster-start", "2")

    async with asyncio.timeout(60):
        while await _isr_sizes(cluster, topic) != [3, 3, 3]:
            await asyncio.sleep(0.5)

    # With node 2 back in sync, another node may go: nothing written so far is lost.
    _kafka("cluster-kill", "1")
    try:
        batch3 = [f"after-{i}".encode() for i in range(50)]
        await _produce(cluster, topic, batch3)
        assert await _consume_all(cluster, topic, 250) == set(batch1 + batch2 + batch3)
    finally:
        _kafka("cluster-start", "1")


async def test_the_service_survives_broker_kills(cluster: str, unique: str, tmp_path: Path) -> None:
    """The worker on the cluster, every topic it creates with RF 3 and min.insync.replicas 2:
    each node in turn is killed with -9 while input arrives, then brought back. Nothing is lost
    or doubled, a concurrent read_committed reader never sees an aborted record, and every
    transaction ends (the final read_committed read reaches the end of the topic)."""
    import random
    import time
    from dataclasses import replace

    from streams.traffic import TrafficShape, generate
    from tests.integration.service import PLAN, Service
    from tests.integration.verify import LiveReader, check_run, finish_live

    now = int(time.time() * 1000)
    events = 6000
    shape = replace(TrafficShape(), contacts=600, deals=120, step_ms=50,
                    start_ms=now - events * 50)  # fmt: skip
    records = list(generate(events, seed=random.Random(unique).randrange(1000), shape=shape))
    service = Service(cluster, unique, tmp_path, partitions=3,
                      extra={"LEADSCORE_REPLICATION_FACTOR": "3"})  # fmt: skip
    worker = service.worker()
    chunk = len(records) // 4
    live: LiveReader | None = None
    restarts = 0

    async def supervise() -> None:
        """What systemd or Kubernetes does: a worker that exited 70 (a fatal transactional
        error, e.g. INVALID_TXN_STATE on the abort after its coordinator was killed) is started
        again; the restarted process settles the transaction (init_transactions) and resumes."""
        nonlocal restarts
        code = worker.exited()
        if code is not None:
            assert code == 70, worker.tail()
            restarts += 1
            worker.start()
            await worker.wait_ready(timeout_s=120)

    try:
        worker.start()
        await worker.wait_ready(timeout_s=120)
        live = LiveReader(cluster, service.changed).start()
        await service.produce(records[:chunk])
        for k, node in enumerate(("1", "2", "3"), start=1):
            sending = asyncio.create_task(
                service.produce(records[k * chunk : (k + 1) * chunk if k < 3 else None])
            )
            await asyncio.sleep(0.5)
            _kafka("cluster-kill", node)  # the coordinator of something, sooner or later
            try:
                await sending
                await asyncio.sleep(2)  # the worker works on with two nodes
                await supervise()
            finally:
                _kafka("cluster-start", node)
            await supervise()
        worker.running = False  # it may exit 70 while draining: supervised below
        for _ in range(3):
            await supervise()
            worker.running = True
            try:
                await service.wait_drained(timeout_s=180)
                break
            except AssertionError:
                if worker.exited() is None:
                    raise
        await finish_live(live, service, timeout_s=60)
        published = await service.changes()
        order = await service.applied_order()
    finally:
        if live is not None:
            live.close()
        service.stop_all()
    print(
        f"broker kills: {len(published)} changes, each once; worker restarts after exit 70: "
        f"{restarts}"
    )
    check_run(PLAN, records, published, order, tmp_path)
    assert len(order) >= events
