"""A busy contact's seen ids and property history in sealed segments
(``streams.scoring.segments``), on the real broker and RocksDB: the segments go to the changelog
beside the state, a worker whose data directory is gone rebuilds the state with them, serves it
over HTTP, and still knows every id: a repeat of an event sealed long ago is a duplicate, a new
event scores. A profile update that lands among sealed values rewrites the state, which a second
rebuild reads back the same."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from streams.scoring.segments import SEAL
from streams.wire.topics import Source
from tests.integration.service import Service

T0 = 1_795_000_000_000
EVENTS = 2 * SEAL + 10  # 1 point each: under the plan's category cap (200)


def visit(i: int, at_ms: int) -> tuple[Source, dict[str, Any]]:
    record = {"event_id": f"busy-{i}", "tenant_id": None, "occurred_at": at_ms,
              "contact_id": "busy", "deal_id": None, "url": "https://x.io/a"}  # fmt: skip
    return Source.PAGE_VISITS, record


def profile(i: int, at_ms: int, industry: str) -> tuple[Source, dict[str, Any]]:
    record = {"event_id": f"profile-{i}", "occurred_at": at_ms, "contact_id": "busy",
              "attributes": {"industry": industry}}  # fmt: skip
    return Source.CONTACT_PROFILES, record


def inputs(first: int, last: int) -> list[tuple[Source, dict[str, Any]]]:
    """Visits and profile updates (the industry changes every time) for ``first`` to ``last``."""
    out = []
    for i in range(first, last):
        out.append(visit(i, T0 + i * 1000))
        out.append(profile(i, T0 + i * 1000 + 500, "saas" if i % 2 else "retail"))
    return out


async def rebuild(service: Service, worker: Any, root: Path) -> None:
    assert worker.terminate() == 0
    shutil.rmtree(root / "w1")  # every local byte of state is gone: rebuild from the changelog
    worker.start()
    await worker.wait_ready(timeout_s=120)


def duplicates(worker: Any) -> float:
    text = worker.get_text("/metrics")
    found = re.findall(r'^leadscore_events_total\{outcome="duplicate",topic="[^"]*"\} (\S+)$',
                       text, re.M)  # fmt: skip
    return sum(float(n) for n in found)


async def test_a_busy_contact_keeps_its_seen_ids_through_a_rebuild(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    service = Service(bootstrap, unique, tmp_path, partitions=2)
    worker = service.worker("w1")
    try:
        worker.start()
        await worker.wait_ready()
        for chunk in range(0, EVENTS, SEAL + 5):  # each chunk committed before the next
            await service.produce(inputs(chunk, min(EVENTS, chunk + SEAL + 5)))
            await service.wait_drained()
        status, before = worker.get("/scores/contact/busy")
        assert status == 200, before
        logged = await service.read_all(f"{service.app_id}-state-changelog")
        sealed = [r.key for r in logged if r.key.startswith(b"\x00g")]
        assert len(sealed) == len(set(sealed)) >= 2  # each written once, by the commit sealing it
        await rebuild(service, worker, tmp_path)
        status, after = worker.get("/scores/contact/busy")
        assert (status, after) == (200, before)
        # a repeat of the first events (in the first segment) and one new event
        at = T0 + EVENTS * 1000
        await service.produce([*(visit(i, T0 + i * 1000) for i in range(5)), visit(EVENTS, at)])
        await service.wait_drained()
        assert duplicates(worker) == 5
        changes = [c for c in await service.changes() if c["entity_id"] == "busy"]
        assert changes[-1]["source_event_id"] == f"busy-{EVENTS}"
        assert len(changes) == len({c["change_id"] for c in changes})
        # a late profile update among the sealed values: the state is written anew
        await service.produce([profile(EVENTS, T0 + 1700, "fintech")])
        await service.wait_drained()
        status, late = worker.get("/scores/contact/busy")
        assert status == 200, late
        await rebuild(service, worker, tmp_path)
        assert worker.get("/scores/contact/busy") == (200, late)
    finally:
        service.stop_all()
