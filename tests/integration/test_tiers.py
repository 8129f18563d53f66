"""Tiers through the real service: score-changed carries tier before and after, a tier change is
also a record of its own (cause ``tier``), the ``scores`` topic and HTTP show the tier, and the
published changes pass the exactly-once checks and equal the offline scorer's finals."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from streams.codec import Codec, Source
from tests.integration.service import Service
from tests.integration.verify import exactly_once, final_values, offline_finals

PLAN = """
version: tiers-test
scores:
  - name: engagement
    entity: contact
    thresholds: [{name: mql, at: 40}]
    tiers: [{name: cold, below: 20}, {name: warm, below: 40}, {name: hot}]
    rules:
      - {id: visit, on: page_visit, points: 15}
"""


def visit(eid: str, contact: str, t: int) -> tuple[Source, dict[str, Any]]:
    return Source.PAGE_VISITS, {"event_id": eid, "account_id": None, "occurred_at": t,
                                "contact_id": contact, "deal_id": None, "url": "/x"}  # fmt: skip


async def test_tiers_end_to_end(bootstrap: str, tmp_path: Path) -> None:
    plan = tmp_path / "tiers.yaml"
    plan.write_text(PLAN)
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path, plan=plan, partitions=2)
    worker = service.worker().start()
    try:
        await worker.wait_ready()
        now = int(time.time() * 1000)
        records = [visit(f"e{i}", "c-1", now + i) for i in range(4)]  # 15, 30, 45, 60
        records += [visit("f0", "c-2", now)]  # 15: cold, no tier change
        await service.produce(records)
        deadline = time.monotonic() + 60
        changes: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(changes) < 7:
            changes = await service.changes()
        status, body = worker.get("/scores/contact/c-1")
        scores = await service.read_all(service.scores)
    finally:
        service.stop_all()
    mine = [c for c in changes if c["entity_id"] == "c-1"]
    assert [(c["seq"], c["old_value"], c["new_value"], c["cause"], c["tier_before"],
             c["tier_after"]) for c in mine] == [
        (1, 0, 15, "rule", "cold", "cold"),
        (2, 15, 30, "rule", "cold", "warm"),
        (3, 30, 30, "tier", "cold", "warm"),
        (4, 30, 45, "rule", "warm", "hot"),
        (5, 45, 45, "tier", "warm", "hot"),
        (6, 45, 60, "rule", "hot", "hot"),
    ]  # fmt: skip
    assert mine[3]["thresholds"] == [{"name": "mql", "direction": "up"}]
    assert mine[4]["thresholds"] == []  # the tier record reports no crossing again
    grouped = exactly_once(changes)
    assert final_values(grouped) == offline_finals(plan, records, tmp_path)
    assert status == 200 and body["scores"]["engagement"]["tier"] == "hot"
    codec = Codec.load()
    latest = {rec.key: codec.decode(codec.score, rec.value) for rec in scores}
    assert sorted((v["entity_id"], v["value"], v["tier"]) for v in latest.values()) == [
        ("c-1", 60, "hot"), ("c-2", 15, "cold")
    ]  # fmt: skip
