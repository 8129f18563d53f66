"""Exactly once (docs/operations.md) under every worker fault at once: kill -9s, zombies, and
workers joining and leaving.

A pool of two workers serves the input while the traffic arrives in rounds. Each round sends its
share of the events and, while they arrive, applies one fault:

- **kill -9** of a random live worker, which is started again at once (a supervisor's restart);
- **zombie**: a random live worker is frozen with SIGSTOP past its session timeout (the others
  take its partitions), then continued: it is fenced and either rejoins or exits with the fatal
  code 70, after which it is started again;
- **join / leave**: one of two extra workers joins the group, or leaves it with SIGTERM.

A concurrent ``read_committed`` reader runs through all of it. At the end :func:`check_run`
checks every change exactly once with seqs 1..n and chained values, the changes equal to the pure
core over the order the service applied, and the finals equal to the offline scorer.

``make test`` runs a short version; ``make soak`` the long one (SOAK_EVENTS=200000,
SOAK_ENTITIES=20000, SOAK_KILLS=100, SOAK_ZOMBIES=20, SOAK_JOINS=10; each can be overridden).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import replace
from pathlib import Path

from streams.commands.traffic import TrafficShape, generate
from streams.engine.loop import EXIT_FATAL
from tests.integration.service import PLAN, Service, Worker
from tests.integration.verify import LiveReader, check_run

EVENTS = int(os.environ.get("SOAK_EVENTS", "8000"))
ENTITIES = int(os.environ.get("SOAK_ENTITIES", "1000"))  # contacts; a fifth as many deals more
KILLS = int(os.environ.get("SOAK_KILLS", "4"))
ZOMBIES = int(os.environ.get("SOAK_ZOMBIES", "2"))
JOINS = int(os.environ.get("SOAK_JOINS", "1"))  # join-then-leave cycles of the two extra workers
SESSION_S = 6.0
FROZEN_S = 8.0  # past the session timeout (6 s), within the transaction timeout (10 s)


async def test_kills_zombies_joins_and_leaves_lose_and_double_nothing(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    rng = random.Random(unique)
    now = int(time.time() * 1000)
    shape = replace(TrafficShape(), contacts=ENTITIES, deals=max(1, ENTITIES // 5), step_ms=20,
                    start_ms=now - EVENTS * 20)  # fmt: skip
    records = list(generate(EVENTS, seed=rng.randrange(1000), shape=shape))
    service = Service(bootstrap, unique, tmp_path, partitions=6,
                      extra={"LEADSCORE_SESSION_TIMEOUT_S": str(SESSION_S)})  # fmt: skip
    pool = [service.worker("w1"), service.worker("w2")]
    extras = [service.worker("w3"), service.worker("w4")]
    faults = ["kill"] * KILLS + ["zombie"] * ZOMBIES + ["join"] * (2 * JOINS)
    rng.shuffle(faults)
    counts = {"kill": 0, "zombie": 0, "join": 0, "leave": 0}
    live: LiveReader | None = None
    started = time.monotonic()

    def live_workers() -> list[Worker]:
        return [w for w in pool + extras if w.running and w.exited() is None]

    def leave(extra: Worker) -> None:
        """SIGTERM: it commits and leaves (0), or finds at that commit that it was fenced while
        it was a zombie and exits with the fatal code (70), which is as correct."""
        assert extra.terminate() in (0, EXIT_FATAL), extra.tail()
        counts["leave"] += 1

    async def fault(kind: str) -> None:
        if kind == "kill":
            victim = rng.choice(live_workers())
            victim.kill()
            victim.start()
            counts["kill"] += 1
            await victim.wait_ready(timeout_s=120)
        elif kind == "zombie":
            victim = rng.choice(live_workers())
            victim.stop_signal()
            await asyncio.sleep(FROZEN_S)
            victim.continue_signal()
            counts["zombie"] += 1
            await asyncio.sleep(2.0)  # it finds itself fenced: aborts and rejoins, or exits 70
        else:  # join or leave: an extra worker comes when out, goes (SIGTERM) when in
            await service.supervise()  # a fenced former zombie is running again first
            extra = rng.choice(extras)
            if extra.running:
                leave(extra)
            else:
                extra.start()
                await extra.wait_ready(timeout_s=120)
                counts["join"] += 1

    try:
        for worker in pool:
            worker.start()
        for worker in pool:
            await worker.wait_ready(timeout_s=120)
        live = LiveReader(bootstrap, service.changed).start()
        rounds = len(faults) + 1
        share = -(-len(records) // rounds)
        for k in range(rounds):
            sending = asyncio.create_task(service.produce(records[k * share : (k + 1) * share]))
            if k < len(faults):
                await asyncio.sleep(rng.uniform(0.1, 0.8))  # strike while the round arrives
                await fault(faults[k])
            await sending
            await service.supervise()
        for extra in extras:  # the extras leave; the pool drains the rest
            if extra.running:
                leave(extra)
        seen_live, published, order = await service.settle(live, timeout_s=max(180, EVENTS / 100))
    finally:
        service.shut(live)
    wall_s = time.monotonic() - started
    check_run(PLAN, records, published, order, tmp_path)
    assert len(order) >= EVENTS  # every valid record reached its entities
    assert counts["kill"] == KILLS and counts["zombie"] == ZOMBIES
    print(
        f"soak: {EVENTS} events over {ENTITIES} contacts and {max(1, ENTITIES // 5)} deals; "
        f"{counts['kill']} kill -9s, {counts['zombie']} zombies ({FROZEN_S:.0f} s frozen, "
        f"session {SESSION_S:.0f} s), {counts['join']} joins, {counts['leave']} leaves, "
        f"{service.restarts} exits 70 restarted; {len(published)} changes, 0 lost, "
        f"0 duplicated; a concurrent read_committed reader saw {seen_live}, none aborted; "
        f"wall time {wall_s:.0f} s"
    )
