"""Tiers through the real service: score-changed carries tier before and after, a tier change is
also a record of its own (cause ``tier``), the ``scores`` topic and HTTP show the tier, and the
published changes pass the exactly-once checks and equal the offline scorer's finals."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from streams.wire.codec import Codec, Source
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
    return Source.PAGE_VISITS, {"event_id": eid, "tenant_id": None, "occurred_at": t,
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


MATRIX_PLAN = """
version: matrix-test
matrices:
  - {name: grade, entity: contact, rows: fit, cols: engagement,
     labels: [[B2, B1], [A2, A1]]}
scores:
  - name: fit
    entity: contact
    tiers: [{name: poor, below: 30}, {name: good}]
    rules: [{id: saas, while: {attributes.industry: {eq: saas}}, points: 40}]
  - name: engagement
    entity: contact
    tiers: [{name: low, below: 20}, {name: high}]
    rules: [{id: visit, on: page_visit, points: 15}]
"""


async def test_matrix_end_to_end(bootstrap: str, tmp_path: Path) -> None:
    plan = tmp_path / "matrix.yaml"
    plan.write_text(MATRIX_PLAN)
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path, plan=plan, partitions=2)
    worker = service.worker().start()
    now = int(time.time() * 1000)
    profile = (
        Source.CONTACT_PROFILES,
        {
            "event_id": "p1",
            "tenant_id": None,
            "occurred_at": now + 2,
            "contact_id": "c-1",
            "deal_id": None,
            "attributes": {"industry": "saas"},
        },
    )
    visits = [visit("e1", "c-1", now), visit("e2", "c-1", now + 1)]
    records = [*visits, profile]
    try:
        await worker.wait_ready()
        # Kafka orders nothing across topics: the profile goes out only once the
        # visits' grade change is published, so the records' order is the test's.
        grades: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        for batch, want in ((visits, 1), ([profile], 2)):
            await service.produce(batch)
            while time.monotonic() < deadline and len(grades) < want:
                changes = await service.changes()
                grades = [c for c in changes if c["score"] == "grade"]
        status, body = worker.get("/scores/contact/c-1")
    finally:
        service.stop_all()
    # 15 (low), 30 (high: B2 -> B1), then fit 40 (good: B1 -> A1)
    assert [(c["seq"], c["cause"], c["tier_before"], c["tier_after"], c["rule_ids"],
             c["source_event_id"]) for c in grades] == [
        (1, "tier", "B2", "B1", ["visit"], "e2"),
        (2, "tier", "B1", "A1", ["saas"], "p1"),
    ]  # fmt: skip
    exactly_once(changes)
    assert status == 200 and body["matrices"] == {"grade": "A1"}
    # the offline scorer's finals, and the matrix at A1 (position 1 * 2 + 1)
    expected = offline_finals(plan, records, tmp_path) | {(None, "contact", "c-1", "grade"): 3}
    assert final_values(exactly_once(changes)) == expected
