"""Three-node KRaft cluster (RF 3, min.insync.replicas 2): losing a node to kill -9 loses nothing.

Starts the cluster with ``deploy/kafka/kafka.sh cluster-up`` unless it is already running, and stops
it afterwards only if this test started it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.conftest import create_topics, kafka_sh

pytestmark = pytest.mark.cluster


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

    kafka_sh("cluster-kill", "2")
    try:
        # acks=all with min.insync.replicas=2 still succeeds on the two surviving nodes.
        batch2 = [f"during-{i}".encode() for i in range(100)]
        await _produce(cluster, topic, batch2)
        assert await _consume_all(cluster, topic, 200) == set(batch1 + batch2)
    finally:
        kafka_sh("cluster-start", "2")

    async with asyncio.timeout(60):
        while await _isr_sizes(cluster, topic) != [3, 3, 3]:
            await asyncio.sleep(0.5)

    # With node 2 back in sync, another node may go: nothing written so far is lost.
    kafka_sh("cluster-kill", "1")
    try:
        batch3 = [f"after-{i}".encode() for i in range(50)]
        await _produce(cluster, topic, batch3)
        assert await _consume_all(cluster, topic, 250) == set(batch1 + batch2 + batch3)
    finally:
        kafka_sh("cluster-start", "1")


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


CYCLES = int(os.environ.get("CLUSTER_CYCLES", "3"))
INTERVAL_S = tuple(float(x) for x in os.environ.get("CLUSTER_INTERVAL_S", "4,8").split(","))
ALL_DOWN_S = float(os.environ.get("CLUSTER_ALL_DOWN_S", "10"))
CLUSTER_EVENTS = int(os.environ.get("CLUSTER_EVENTS", "6000"))


async def test_broker_kills_every_few_seconds_and_all_three_down(
    cluster: str, unique: str, tmp_path: Path
) -> None:
    """Exactly once (docs/operations.md) on a cluster that keeps losing nodes: traffic flows while a
    node is killed with -9 every ``CLUSTER_INTERVAL_S`` seconds (in turn the transaction coordinator
    of the worker, the coordinator of its group, and a random node) and brought back; halfway, all
    three are down for ``CLUSTER_ALL_DOWN_S`` seconds. The worker waits and resumes in the same
    process: a lost producer is replaced in the process (docs/operations.md, Recovery in the
    process), so the worker process never exits (an exit 70 would be restarted, as a supervisor
    would, and counted: 0 are allowed); nothing is lost or doubled; a concurrent read_committed
    reader never sees an aborted record; and no transaction is left hanging (a marker written at the
    end is readable by a read_committed consumer on every output partition).

    ``make soak-cluster`` runs 50 cycles, 10-30 s apart, with all three down for 30 s."""
    import random
    import time
    from dataclasses import replace

    from streams.commands.traffic import TrafficShape, generate
    from tests.integration.conftest import coordinator_of
    from tests.integration.service import PLAN, Service
    from tests.integration.verify import LiveReader, assert_no_hanging_transaction, check_run

    rng = random.Random(unique)
    now = int(time.time() * 1000)
    shape = replace(TrafficShape(), contacts=max(100, CLUSTER_EVENTS // 10),
                    deals=max(20, CLUSTER_EVENTS // 50), step_ms=50,
                    start_ms=now - CLUSTER_EVENTS * 50)  # fmt: skip
    records = list(generate(CLUSTER_EVENTS, seed=rng.randrange(1000), shape=shape))
    service = Service(cluster, unique, tmp_path, partitions=3,
                      extra={"LEADSCORE_REPLICATION_FACTOR": "3",
                             "LEADSCORE_INSTANCE_ID": "soak"})  # fmt: skip
    txn_id = f"{service.app_id}-soak"
    worker = service.worker()
    live: LiveReader | None = None
    kills: dict[str, int] = {"transaction coordinator": 0, "group coordinator": 0, "random": 0}
    started = time.monotonic()
    rounds = CYCLES + 1  # traffic in rounds: one per cycle, and the all-down pause between two
    share = -(-len(records) // rounds)
    try:
        worker.start()
        await worker.wait_ready(timeout_s=120)
        live = LiveReader(cluster, service.changed).start()
        for cycle in range(CYCLES + 1):
            if cycle == CYCLES // 2:  # once: the whole cluster down, traffic paused, then back
                for node in ("1", "2", "3"):
                    kafka_sh("cluster-kill", node)
                await asyncio.sleep(ALL_DOWN_S)
                kafka_sh("cluster-up")  # all at once: a lone node cannot form the KRaft quorum
                await service.supervise()
            sending = asyncio.create_task(
                service.produce(records[cycle * share : (cycle + 1) * share])
            )
            if cycle < CYCLES:
                kind = ("transaction coordinator", "group coordinator", "random")[cycle % 3]
                found = await coordinator_of(
                    cluster,
                    transactional_id=txn_id if kind == "transaction coordinator" else None,
                    group=service.app_id if kind == "group coordinator" else None,
                ) if kind != "random" else None  # fmt: skip
                if found is None:
                    kind = "random"
                node = str(found) if found is not None else rng.choice("123")
                await asyncio.sleep(rng.uniform(0.2, 1.0))  # while the round arrives
                kafka_sh("cluster-kill", node)
                kills[kind] += 1
                await asyncio.sleep(rng.uniform(1.0, 3.0))
                kafka_sh("cluster-start", node)
            await sending
            await service.supervise()
            if cycle < CYCLES:
                await asyncio.sleep(rng.uniform(*INTERVAL_S))
        seen_live, published, order = await service.settle(live, timeout_s=300)
        metrics = worker.get_text("/metrics")
        assert worker.terminate() == 0, worker.tail()
        markers = assert_no_hanging_transaction(
            cluster, [service.changed, service.scores, service.entity_events]
        )
    finally:
        service.shut(live)
    wall_s = time.monotonic() - started
    recoveries = _sample(metrics, "leadscore_producer_recoveries_total")
    check_run(PLAN, records, published, order, tmp_path)
    assert len(order) >= CLUSTER_EVENTS
    print(
        f"broker soak: {CLUSTER_EVENTS} events, {CYCLES} node kills ({kills}), all three down "
        f"for {ALL_DOWN_S:.0f} s once; {len(published)} changes, 0 lost, 0 duplicated; a "
        f"concurrent read_committed reader saw {seen_live}, none aborted; markers readable on "
        f"{markers} partitions (no hanging transaction); producer recoveries in the process: "
        f"{recoveries:.0f}; worker process exits: {service.restarts}; wall time {wall_s:.0f} s"
    )
    assert service.restarts == 0, f"the worker process exited {service.restarts} times"
