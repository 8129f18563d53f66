"""Exactly once (docs/operations.md): kill -9 the worker at random points while traffic flows.

After the run: final scores equal ``leadscore score`` offline on the same events; for each entity
and score the distinct seqs are exactly 1..n; each change_id always carries the same content; and
the changes equal, one for one, what the pure core gives for the order the service applied.

``CRASH_EVENTS``, ``CRASH_KILLS`` and ``CRASH_CONTACTS`` scale it up
(``make soak``).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from tests.integration.service import PLAN, Service, crash_traffic, produce_with_kills
from tests.integration.verify import LiveReader, check_run, finish_live

EVENTS = int(os.environ.get("CRASH_EVENTS", "20000"))
KILLS = int(os.environ.get("CRASH_KILLS", "3"))
CONTACTS = int(os.environ.get("CRASH_CONTACTS", "2000"))


async def test_kill_9_at_random_points_changes_nothing(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    rng = random.Random(unique)
    records = crash_traffic(EVENTS, CONTACTS, rng)
    service = Service(bootstrap, unique, tmp_path)
    worker = service.worker()
    try:
        worker.start()
        await worker.wait_ready()
        live = LiveReader(bootstrap, service.changed).start()  # reads through every kill -9
        # each kill while a chunk is still arriving: transactions are open, with outputs in them
        # (the concurrent reader must never see those once they are aborted)
        await produce_with_kills(service, worker, records, KILLS, rng)
        await service.wait_drained(timeout_s=max(180.0, EVENTS / 50))  # soak: big backlogs
        seen_live = await finish_live(live, service)
        published = await service.changes()
        order = await service.applied_order()
    finally:
        service.stop_all()

    check_run(PLAN, records, published, order, tmp_path)
    assert len(order) >= EVENTS  # every valid record reached its entities
    print(
        f"crash: {EVENTS} events, {KILLS} kill -9s, {len(published)} changes, each once; "
        f"a concurrent read_committed reader saw {seen_live}, none aborted"
    )
