"""Roll-ups through the real service: contacts' member updates cross the entity-events topic to
their account's and deal's partitions. Across a ``kill -9`` of the worker, contacts moving
between accounts and a deal joined by a contact's event, the published changes pass the
exactly-once checks and end at the offline scorer's finals, and HTTP explain lists which
contacts contribute what."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from streams.wire.codec import Source
from tests.integration.service import Service
from tests.integration.verify import exactly_once, final_values, metric_sum, offline_finals

PLAN = """
version: rollup-test
scores:
  - name: engagement
    entity: contact
    rules:
      - {id: visit, on: page_visit, points: 10}
      - {id: click, on: email.click, points: 3}
  - name: team
    entity: account
    thresholds: [{name: engaged-account, at: 50}]
    rollup: {from: engagement, aggregate: sum}
  - name: champions
    entity: account
    rollup: {from: engagement, aggregate: top, k: 2}
  - name: deal-heat
    entity: deal
    rollup: {from: engagement, aggregate: sum}
    rules:
      - {id: proposal, on: deal.stage_changed, where: {to_stage: {eq: proposal}}, points: 5}
"""


def visit(eid: str, contact: str, t: int, deal: str | None = None) -> tuple[Source, dict[str, Any]]:
    return Source.PAGE_VISITS, {"event_id": eid, "tenant_id": None, "occurred_at": t,
                                "contact_id": contact, "deal_id": deal, "url": "/x"}  # fmt: skip


def member(eid: str, contact: str, t: int, account: str | None) -> tuple[Source, dict[str, Any]]:
    return Source.CONTACT_PROFILES, {"event_id": eid, "tenant_id": None, "occurred_at": t,
                                     "contact_id": contact, "deal_id": None,
                                     "attributes": {"account_id": account}}  # fmt: skip


def stage(eid: str, deal: str, t: int) -> tuple[Source, dict[str, Any]]:
    return Source.DEAL_STAGE_CHANGES, {"event_id": eid, "tenant_id": None, "occurred_at": t,
                                       "contact_id": None, "deal_id": deal, "pipeline": "sales",
                                       "from_stage": None, "to_stage": "proposal",
                                       "status": "open", "value": None}  # fmt: skip


async def test_rollups_end_to_end_across_a_crash(bootstrap: str, tmp_path: Path) -> None:
    plan = tmp_path / "rollup.yaml"
    plan.write_text(PLAN)
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path, plan=plan, partitions=3)
    now = int(time.time() * 1000)
    first = [member(f"p{i}", f"c{i}", now + i, "acme") for i in range(1, 5)]
    first += [visit(f"v{i}-{n}", f"c{i}", now + 10 * n + i) for i in range(1, 5) for n in range(i)]
    second = [
        member("p3b", "c3", now + 100, "globex"),  # c3 moves: leaves acme, joins globex
        member("p4b", "c4", now + 101, None),  # c4 leaves every account
        visit("v3-late", "c3", now + 102),
        visit("v1-deal", "c1", now + 103, deal="d1"),  # c1 joins d1 with its engagement
        stage("s1", "d1", now + 104),
        visit("v1-more", "c1", now + 105),  # moves acme and d1 alike
        member("p3-old", "c3", now + 50, "initech"),  # older than p3b: changes nothing
    ]
    expected = offline_finals(plan, first + second, tmp_path)
    worker = service.worker("w1").start()
    try:
        await worker.wait_ready()
        await service.produce(first)
        deadline = time.monotonic() + 60
        changes: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not any(c["entity"] == "account" for c in changes):
            changes = await service.changes()
        worker.kill()  # kill -9 with member updates on their way, maybe
        worker = service.worker("w2").start()
        await worker.wait_ready()
        await service.produce(second)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            changes = await service.changes()
            if final_values(exactly_once(changes)) == _moved(expected):
                break
            time.sleep(0.5)
        status, view = worker.get("/scores/account/acme/explain?score=champions")
        deal_status, deal_view = worker.get("/scores/deal/d1/explain?score=deal-heat")
        metrics = worker.get_text("/metrics")
    finally:
        service.stop_all()
    assert final_values(exactly_once(changes)) == _moved(expected)
    # acme: c1 = 10 + 10 (deal visit) + 10 = 30, c2 = 20; c3 and c4 left
    assert expected[(None, "account", "acme", "team")] == 50
    assert expected[(None, "account", "globex", "team")] == 40  # c3: 30 + 10
    assert (None, "account", "initech", "team") not in expected  # the stale move did nothing
    assert expected[(None, "deal", "d1", "deal-heat")] == 5 + 30
    assert status == 200 and view["value"] == 50
    assert view["rollup"] == {
        "from": "engagement", "aggregate": "top", "k": 2, "value": 50, "members": 2,
        "contributors": [{"contact_id": "c1", "value": 30, "counted": True},
                         {"contact_id": "c2", "value": 20, "counted": True}],
    }  # fmt: skip
    assert deal_status == 200 and deal_view["rollup"]["contributors"] == [
        {"contact_id": "c1", "value": 30, "counted": True}
    ]
    # w2 sent at least the second batch's 8 updates (2 for c3's move, c4's leave, c3's late
    # visit, c1's deal visit to acme and d1, its last visit to both) and received them
    for direction in ("sent", "received"):
        assert metric_sum(metrics, "leadscore_member_updates_total", direction=direction) >= 8
    ups = [c for c in changes if c["score"] == "team" and c["thresholds"]]
    assert [(c["entity_id"], c["thresholds"][0]["direction"], c["cause"]) for c in ups][:1] == [
        ("acme", "up", "rollup")
    ]


def _moved(finals: dict[Any, int]) -> dict[Any, int]:
    """The offline finals of the scores that ever moved (the service publishes only changes;
    the offline scorer also lists scores still at 0)."""
    return {key: value for key, value in finals.items() if value != 0}
