"""Exactly once (docs/operations.md) through zombies and aborts: a frozen worker and failed
transactions lose and double nothing.

- **Zombie**: a worker is frozen with SIGSTOP past its session timeout while traffic flows; the
  other worker takes its partitions; the frozen one is continued. Its open transaction is fenced
  or aborted (by the group generation in ``send_offsets_to_transaction``, KIP-447, or by the
  coordinator's transaction timeout), it exits with the fatal code or rejoins, and a
  ``read_committed`` reader sees every change exactly once.
- **Abort**: the fault drill ``LEADSCORE_FAULT_ABORT_EVERY`` makes every third transaction fail
  after all its records were produced and before its commit; the loop aborts, rewinds, and the
  replay publishes the same changes: nothing of an aborted transaction is visible.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from streams.commands.traffic import TrafficShape, generate
from streams.engine.loop import EXIT_FATAL
from streams.wire.codec import Source
from tests.integration.service import PLAN, Service
from tests.integration.verify import LiveReader, check_run, finish_live

EVENTS = 4000


def _records(seed: int) -> list[tuple[Source, dict[str, Any]]]:
    now = int(time.time() * 1000)
    shape = replace(TrafficShape(), contacts=400, deals=80, step_ms=50,
                    start_ms=now - EVENTS * 50)  # fmt: skip
    return list(generate(EVENTS, seed=seed, shape=shape))


@pytest.mark.parametrize(
    "frozen_s",
    [
        8.0,  # past the 6 s session, within the 10 s transaction timeout: the generation fences
        14.0,  # past the transaction timeout too: the coordinator aborts it, the epoch is bumped
    ],
)
async def test_a_zombie_is_fenced_and_nothing_is_lost_or_doubled(
    bootstrap: str, unique: str, tmp_path: Path, frozen_s: float
) -> None:
    records = _records(random.Random(unique).randrange(1000))
    quarter = len(records) // 4
    service = Service(bootstrap, unique, tmp_path, extra={"LEADSCORE_SESSION_TIMEOUT_S": "6"})
    zombie, survivor = service.worker("w1"), service.worker("w2")
    try:
        zombie.start()
        await zombie.wait_ready()
        live = LiveReader(bootstrap, service.changed).start()  # reads during the whole fault
        survivor.start()
        await survivor.wait_ready()
        await service.produce(records[:quarter])
        await service.produce(records[quarter : 2 * quarter])
        zombie.stop_signal()  # mid-stream: it holds an open transaction
        await service.produce(records[2 * quarter : 3 * quarter])
        await asyncio.sleep(frozen_s)
        await service.produce(records[3 * quarter :])
        zombie.continue_signal()
        # Either outcome is correct: the zombie finds its assignment lost, aborts and rejoins; or
        # the coordinator has already fenced it (a newer epoch after the transaction timeout), and
        # it exits with the fatal code. The survivor must drain either way.
        zombie.running = False  # not required to stay alive
        await service.wait_drained(timeout_s=120)
        code = zombie.exited()
        if code is not None:  # fenced: the documented fatal exit, with its reason in the log
            assert code == EXIT_FATAL, zombie.tail()
            assert "exiting with 70" in zombie.log.read_text()
        await finish_live(live, service)
        published = await service.changes()
        order = await service.applied_order()
    finally:
        service.stop_all()
    check_run(PLAN, records, published, order, tmp_path)
    assert len(order) >= EVENTS


async def test_aborted_transactions_leave_nothing_and_the_replay_publishes_the_same(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    records = _records(random.Random(unique).randrange(1000))
    service = Service(bootstrap, unique, tmp_path, extra={"LEADSCORE_FAULT_ABORT_EVERY": "3"})
    worker = service.worker()
    try:
        worker.start()
        await worker.wait_ready()
        live = LiveReader(bootstrap, service.changed).start()
        tenth = len(records) // 10
        for k in range(10):  # in steps, so that the work spreads over many transactions
            await service.produce(records[k * tenth : (k + 1) * tenth if k < 9 else None])
            await asyncio.sleep(0.3)
        await service.wait_drained(timeout_s=120)
        await finish_live(live, service)  # saw no record of the aborted transactions
        status, _ = worker.get("/healthz")
        assert status == 200
        metrics = worker.get_text("/metrics")
        published = await service.changes()
        order = await service.applied_order()
    finally:
        service.stop_all()
    aborted = _sample(metrics, 'leadscore_transactions_total{result="aborted"}')
    committed = _sample(metrics, 'leadscore_transactions_total{result="committed"}')
    assert aborted >= 3 and committed >= 3, (aborted, committed)
    check_run(PLAN, records, published, order, tmp_path)
    assert len(order) >= EVENTS


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")
