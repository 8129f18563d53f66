"""Recovery in the process (docs/operations.md) on the real broker: a fatal producer error is
recovered without a restart, and exactly once holds across it.

The worker is frozen (SIGSTOP) mid-stream for longer than its transaction timeout (3 s here) plus
the broker's check for timed-out transactions (10 s by default): the coordinator aborts the open
transaction and bumps the producer's epoch, so the first transactional call after SIGCONT fails
with a fatal ``_FENCED`` (our own timeout, not a newer instance). The worker must replace its
producer in the process (same pid, ``leadscore_producer_recoveries_total`` up), lose and double
nothing, and a concurrent ``read_committed`` reader must never see an aborted record.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.commands.traffic import TrafficShape, generate
from streams.wire.codec import Codec, Source
from tests.integration.service import PLAN, Service
from tests.integration.verify import LiveReader, check_run

EVENTS = 3000
FROZEN_S = 15.0  # > transaction timeout (3 s) + the broker's abort check interval (10 s)


async def _trickle(service: Service, rows: list[tuple[Source, dict[str, Any]]]) -> None:
    """A record every few ms: the worker's transactions, committed about 20 ms after they open
    when the input is this thin, are open most of the time (so at the SIGSTOP)."""
    codec = Codec.load()
    producer = AIOKafkaProducer(bootstrap_servers=service.bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=1)  # fmt: skip
    await producer.start()
    try:
        for source, record in rows:
            value = codec.encode(codec.inputs[source], record)
            await producer.send(service.topic(source), value, key=b"any-key")
            await asyncio.sleep(0.004)
        await producer.flush()
    finally:
        await producer.stop()


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def test_a_fenced_producer_is_replaced_in_the_process(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    now = int(time.time() * 1000)
    shape = replace(TrafficShape(), contacts=300, deals=60, step_ms=50,
                    start_ms=now - EVENTS * 50)  # fmt: skip
    records = list(generate(EVENTS, seed=random.Random(unique).randrange(1000), shape=shape))
    service = Service(bootstrap, unique, tmp_path, extra={
        "LEADSCORE_TRANSACTION_TIMEOUT_MS": "3000", "LEADSCORE_SESSION_TIMEOUT_S": "60",
    })  # fmt: skip
    worker = service.worker()
    live: LiveReader | None = None
    rounds = 3  # freezes at most; one is enough when a transaction was open at the SIGSTOP
    share = len(records) // (rounds + 1)
    recovered = 0.0
    try:
        worker.start()
        await worker.wait_ready()
        assert worker.proc is not None
        pid = worker.proc.pid
        live = LiveReader(bootstrap, service.changed).start()
        await service.produce(records[:share])
        for k in range(1, rounds + 1):
            sending = asyncio.create_task(
                _trickle(service, records[k * share : (k + 1) * share if k < rounds else None])
            )
            await asyncio.sleep(1.0)  # while the round trickles in: a transaction open
            worker.stop_signal()
            await asyncio.sleep(FROZEN_S)
            worker.continue_signal()
            await sending
            await service.wait_drained(timeout_s=90)
            recovered = _sample(worker.get_text("/metrics"), "leadscore_producer_recoveries_total")
            if recovered >= 1:
                if k < rounds:
                    await service.produce(records[(k + 1) * share :])
                break
        _, published, order = await service.settle(live, tries=1)
        worker.assert_alive()
        assert worker.proc.pid == pid and service.restarts == 0  # no restart, the same process
        log = worker.log.read_text()
    finally:
        service.shut(live)
    assert recovered >= 1, "no transaction was open at any SIGSTOP: nothing was fenced"
    assert "recovering in the process" in log and "exiting with 70" not in log
    check_run(PLAN, records, published, order, tmp_path)
    assert len(order) >= EVENTS
