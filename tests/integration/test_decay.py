"""Decay and inactivity through the real service.

Decay: events from the last days decay while the worker runs; the published changes (causes
``decay`` and ``tier``, a threshold crossed at its exact millisecond) pass the exactly-once
checks, and HTTP explain agrees with the offline scorer at the instant the service evaluated
each score. Inactivity: a deal silent for 65 days is deducted twice at once; a reply from inside
the silence that arrives afterwards undoes the second deduction, as in event-time order."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from streams.commands.offline import OfflineScorer
from streams.scoring import EntityKey, Invalid, load_plan, parse_input
from streams.scoring.decay import decayed_total
from streams.wire.codec import Source
from tests.integration.service import Service
from tests.integration.verify import as_offline_line, exactly_once

PLAN = """
version: decay-test
scores:
  - name: engagement
    entity: contact
    decay_granularity: 6h
    thresholds: [{name: mql, at: 60}]
    tiers: [{name: cold, below: 30}, {name: warm, below: 60}, {name: hot}]
    rules:
      - {id: pricing, on: page_visit, where: {url: {contains: pricing}}, points: 100,
         decay: {half_life: 1d}}
      - {id: page, on: page_visit, points: 10, decay: {linear_to_zero: 3d}}
"""
H = 3_600_000


def visit(eid: str, contact: str, t: int, url: str) -> tuple[Source, dict[str, Any]]:
    return Source.PAGE_VISITS, {"event_id": eid, "tenant_id": None, "occurred_at": t,
                                "contact_id": contact, "deal_id": None, "url": url}  # fmt: skip


async def test_decay_end_to_end(bootstrap: str, tmp_path: Path) -> None:
    plan_path = tmp_path / "decay.yaml"
    plan_path.write_text(PLAN)
    plan = load_plan(PLAN, source="decay.yaml")
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path, plan=plan_path, partitions=2)
    now = int(time.time() * 1000)
    records = [
        visit("a1", "c-1", now - 60 * H, "/pricing"),  # 100 halved daily + 10: crossed mql
        visit("b1", "c-2", now - 50 * H, "/blog"),  # 10, linear over 3 days
        visit("b2", "c-2", now - 20 * H, "/pricing"),
        visit("b3", "c-2", now - 2 * H, "/pricing"),
        visit("d1", "c-3", now - 1 * H, "/home"),
    ]
    worker = service.worker().start()
    try:
        await worker.wait_ready()
        await service.produce(records)
        views: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(views) < 3:
            for contact in ("c-1", "c-2", "c-3"):
                status, body = worker.get(f"/scores/contact/{contact}/explain?score=engagement")
                # every visit scores "page"; pricing visits score "pricing" too
                if status == 200 and len(body["contributions"]) == {"c-1": 2, "c-2": 5}.get(
                    contact, 1
                ):
                    views[contact] = body
            time.sleep(0.5)
        changes = await service.changes()
    finally:
        service.stop_all()
    assert set(views) == {"c-1", "c-2", "c-3"}, views
    grouped = exactly_once(changes)
    offline = OfflineScorer(plan)
    for source, record in records:
        parsed = parse_input(as_offline_line(source, record))
        assert not isinstance(parsed, Invalid), parsed
        offline.feed(parsed)
    score = plan.by_name["engagement"]
    for contact, view in views.items():
        at = view["evaluated_at"]
        ledger = offline.states[EntityKey(None, "contact", contact)].scores["engagement"]
        # the service's value at the instant it evaluated the score is the offline fold's
        assert view["value"] == decayed_total(score, ledger, at), (contact, view)
        assert round(sum(c["value"] for c in view["contributions"])) == view["value"]
        mine = grouped[(None, "contact", contact, "engagement")]
        # (a check after the explain was read would add decay changes later than ``at``)
        upto = [c for c in mine if not (c["cause"] in ("decay", "tier") and c["occurred_at"] > at)]
        assert upto[-1]["new_value"] == view["value"]
    c1 = grouped[(None, "contact", "c-1", "engagement")]
    # c-1: 100 at the visit 60 h ago, which the worker evaluates at once in closed form: one
    # decay change for the 60 hours, at the last check by then (a multiple of 6 h), reporting
    # mql crossed down on the way; the move from hot to cold is its own tier record
    assert [(c["seq"], c["cause"]) for c in c1[:4]] == [
        (1, "rule"), (2, "tier"), (3, "decay"), (4, "tier")
    ]  # fmt: skip
    catch_up = c1[2]
    assert catch_up["thresholds"] == [{"name": "mql", "direction": "down"}]
    assert (catch_up["tier_before"], catch_up["tier_after"]) == ("hot", "cold")
    assert catch_up["occurred_at"] % (6 * H) == 0 and catch_up["occurred_at"] > now - 6 * H
    ledger = offline.states[EntityKey(None, "contact", "c-1")].scores["engagement"]
    assert catch_up["new_value"] == decayed_total(score, ledger, catch_up["occurred_at"])
    assert {c["cause"] for c in changes} >= {"rule", "decay", "tier"}
    assert all(c["source_event_id"] is None for c in changes if c["cause"] == "decay")


INACTIVITY_PLAN = """
version: inactivity-test
scores:
  - name: deal-health
    entity: deal
    inactivity: {after: 30d, points: -10}
    rules:
      - {id: stage, on: deal.stage_changed, points: 30}
      - {id: replied, on: email.reply, points: 5}
"""
D = 24 * H


async def test_inactivity_end_to_end(bootstrap: str, tmp_path: Path) -> None:
    plan_path = tmp_path / "inactivity.yaml"
    plan_path.write_text(INACTIVITY_PLAN)
    plan = load_plan(INACTIVITY_PLAN, source="inactivity.yaml")
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path, plan=plan_path, partitions=2)
    now = int(time.time() * 1000)
    stage = (
        Source.DEAL_STAGE_CHANGES,
        {
            "event_id": "s1",
            "tenant_id": None,
            "occurred_at": now - 65 * D,
            "deal_id": "d-1",
            "pipeline": "sales",
            "from_stage": None,
            "to_stage": "proposal",
            "status": "open",
            "value": None,
        },
    )
    reply = (
        Source.EMAIL_EVENTS,
        {
            "event_id": "r1",
            "tenant_id": None,
            "occurred_at": now - 25 * D,
            "contact_id": "c-1",
            "deal_id": "d-1",
            "action": "reply",
            "campaign_id": None,
            "message_id": None,
            "link_url": None,
        },
    )
    worker = service.worker().start()
    try:
        await worker.wait_ready()
        await service.produce([stage])
        first = await _wait_for(service, "d-1", 2)  # +30, then -10 at -35 d and -5 d at once
        await service.produce([reply])
        changes = await _wait_for(service, "d-1", 3)
        status, view = worker.get("/scores/deal/d-1/explain?score=deal-health")
    finally:
        service.stop_all()
    assert [(c["cause"], c["new_value"], c["occurred_at"] - now) for c in first] == [
        ("rule", 30, -65 * D), ("inactivity", 10, -5 * D)
    ]  # fmt: skip
    assert first[1]["old_value"] == 30  # the silence's two deductions, in one evaluation
    # the reply (day -25) undoes the deduction at -5 d and scores 5 in one change
    last = changes[-1]
    assert (last["cause"], last["rule_ids"], last["old_value"], last["new_value"]) == (
        "rule", ["replied", "inactivity"], 10, 25
    )  # fmt: skip
    exactly_once(changes)
    assert status == 200 and view["value"] == 25
    assert view["next_inactivity"] == now - 25 * D + 30 * D
    # older than the lateness before the newest event: folded per rule
    assert view["folded"] == [{"rule": "inactivity", "category": None, "points": -10},
                              {"rule": "stage", "category": None, "points": 30}]  # fmt: skip
    assert [(c["kind"], c["points"]) for c in view["contributions"]] == [("event", 5)]
    offline = OfflineScorer(plan)
    for source, record in (stage, reply):
        parsed = parse_input(as_offline_line(source, record))
        assert not isinstance(parsed, Invalid), parsed
        offline.feed(parsed)
    offline.advance_to(now)
    ledger = offline.states[EntityKey(None, "deal", "d-1")].scores["deal-health"]
    assert (ledger.total, ledger.inactive_due_ms) == (25, view["next_inactivity"])


async def _wait_for(service: Service, deal: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    mine: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(mine) < count:
        mine = [c for c in await service.changes() if c["entity_id"] == deal]
    assert len(mine) == count, mine
    return mine
