"""Exactly once (docs/operations.md) through scale-out: workers join and leave mid-stream; state
moves through the changelogs.

Also: a worker restarted with its local RocksDB folder deleted rebuilds every score from the
changelog. Both runs end with the same checks as the crash test.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from streams.commands.traffic import TrafficShape, generate
from streams.wire.codec import Source
from tests.integration.service import PLAN, Service
from tests.integration.verify import check_run, exactly_once, final_values

EVENTS = 6000


def _records(seed: int, contacts: int = 600) -> list[tuple[Source, dict[str, Any]]]:
    now = int(time.time() * 1000)
    shape = replace(TrafficShape(), contacts=contacts, deals=contacts // 5, step_ms=50,
                    start_ms=now - EVENTS * 50)  # fmt: skip
    return list(generate(EVENTS, seed=seed, shape=shape))


async def _verify(service: Service, records: list[tuple[Source, dict[str, Any]]],
                  work: Path) -> dict[Any, int]:  # fmt: skip
    return check_run(PLAN, records, await service.changes(), await service.applied_order(), work)


async def test_workers_join_and_leave_mid_stream(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    records = _records(seed=random.Random(unique).randrange(1000))
    third = len(records) // 3
    service = Service(bootstrap, unique, tmp_path)
    first, second = service.worker("w1"), service.worker("w2")
    try:
        first.start()
        await first.wait_ready()
        await service.produce(records[:third])
        second.start()  # joins mid-stream: partitions and their state move to it
        await asyncio.sleep(1.0)
        await service.produce(records[third : 2 * third])
        await service.wait_drained()
        await second.wait_ready()

        # Any worker answers for any entity: compare both workers' answers for a sample.
        finals = final_values(exactly_once(await service.changes()))
        sample = sorted((k for k in finals if k[1] == "contact"), key=str)[:40]
        assert len(sample) == 40
        for tenant, entity, entity_id, score in sample:
            path = f"/scores/{entity}/{entity_id}" + (f"?tenant={tenant}" if tenant else "")
            status1, body1 = first.get(path)
            status2, body2 = second.get(path)
            assert status1 == status2 == 200
            assert body1 == body2
            assert body1["scores"][score]["value"] == finals[(tenant, entity, entity_id, score)]

        assert first.terminate() == 0  # leaves cleanly; the second takes every partition
        await service.produce(records[2 * third :])
        await service.wait_drained()
        finals = await _verify(service, records, tmp_path)
        for tenant, entity, entity_id, score in sample:
            path = f"/scores/{entity}/{entity_id}" + (f"?tenant={tenant}" if tenant else "")
            status, body = second.get(path)
            assert status == 200
            assert body["scores"][score]["value"] == finals[(tenant, entity, entity_id, score)]
    finally:
        service.stop_all()


async def test_restart_without_local_state_recovers_from_changelog(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    records = _records(seed=random.Random(unique).randrange(1000), contacts=300)
    half = len(records) // 2
    service = Service(bootstrap, unique, tmp_path)
    worker = service.worker("w1")
    try:
        worker.start()
        await worker.wait_ready()
        await service.produce(records[:half])
        await service.wait_drained()
        assert worker.terminate() == 0
        shutil.rmtree(tmp_path / "w1")  # every local byte of state is gone

        worker.start()
        recovery_s = await worker.wait_ready()
        # The second half repeats some first-half events: recovered dedup state must drop them.
        replayed = records[half - 200 : half]
        await service.produce(replayed + records[half:])
        await service.wait_drained()
        await _verify(service, records, tmp_path)
        assert recovery_s < 60
    finally:
        service.stop_all()
