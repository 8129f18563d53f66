"""Top lists through the real service: two workers, each with its own view of the compacted
``scores`` topic, answer ``GET /top`` alike, and as a brute-force sort of the topic's latest
values; ``leadscore top`` gives the same answer; a tenant sees only its own list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from streams.wire.codec import Codec, Source
from tests.integration.service import Service

PLAN = """
version: top-test
scores:
  - name: engagement
    entity: contact
    tiers: [{name: cold, below: 30}, {name: hot}]
    rules: [{id: visit, on: page_visit, points: 10}]
"""


def visit(eid: str, contact: str, t: int, tenant: str | None) -> tuple[Source, dict[str, Any]]:
    return Source.PAGE_VISITS, {"event_id": eid, "tenant_id": tenant, "occurred_at": t,
                                "contact_id": contact, "deal_id": None, "url": "/x"}  # fmt: skip


async def test_top_lists_agree_on_every_worker_and_with_a_sort(bootstrap: str,
                                                               tmp_path: Path) -> None:  # fmt: skip
    plan = tmp_path / "top.yaml"
    plan.write_text(PLAN)
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path, plan=plan, partitions=4)
    now = int(time.time() * 1000)
    records = [visit(f"e{c}-{i}", f"c{c}", now + i, None) for c in range(30) for i in range(c % 7)]
    records += [visit(f"t{c}-{i}", f"c{c}", now + i, "t1") for c in range(5) for i in range(c)]
    w1, w2 = service.worker("w1").start(), service.worker("w2").start()
    try:
        await w1.wait_ready()
        await w2.wait_ready()
        await service.produce(records)
        codec = Codec.load()
        expected: list[tuple[str, int, str]] = []
        answers: list[Any] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            latest = {rec.key: codec.decode(codec.score, rec.value)
                      for rec in await service.read_all(service.scores)}  # fmt: skip
            default = [v for v in latest.values() if v["tenant_id"] is None]
            expected = [(v["entity_id"], v["value"], v["tier"]) for v in
                        sorted(default, key=lambda v: (-v["value"], v["entity_id"]))]  # fmt: skip
            answers = [w.get("/top/contact?score=engagement&n=100")[1] for w in (w1, w2)]
            if len(expected) == 25 and all(_rows(a) == expected and a["caught_up"]
                                           for a in answers):  # fmt: skip
                break  # (contacts with 0 visits have no score)
            time.sleep(0.5)
        hot = w2.get("/top/contact?score=engagement&n=3&tier=hot")[1]
        tenant = w1.get("/top/contact?score=engagement&tenant=t1")[1]
        env = {**os.environ, **service.env("cli", 6066)}  # (the port is not used)
        done = subprocess.run(
            [sys.executable, "-m", "streams.cli", "top", "contact", "--score", "engagement",
             "-n", "100", "--json"], capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
    finally:
        service.stop_all()
    assert len(expected) == 25
    for answer in answers:
        assert _rows(answer) == expected
        assert answer["complete"] and answer["caught_up"]
    assert [value for _, value, _ in expected[:4]] == [60, 60, 60, 60]  # c6, c13, c20, c27
    assert [(e["entity_id"], e["value"]) for e in hot["entries"]] == [
        (entity, value) for entity, value, _ in expected[:3]
    ]
    assert [(e["entity_id"], e["value"]) for e in tenant["entries"]] == [
        ("c4", 40), ("c3", 30), ("c2", 20), ("c1", 10)
    ]  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _rows(json.loads(done.stdout)) == expected


def _rows(answer: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(e["entity_id"], e["value"], e["tier"]) for e in answer["entries"]]
