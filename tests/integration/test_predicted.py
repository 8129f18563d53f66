"""Predicted scores through the real service (docs/plans.md, Predicted scores).

A worker scores a plan with a predicted contact score (features: two scores, rule hits within a
window, an attribute equal to a value and a numeric attribute) while visits, replies and profile
updates of 24 contacts arrive, and is killed with ``kill -9`` once mid-stream. The changes pass
every exactly-once check (each once, seqs 1..n, values chained, change for change the pure core
replayed in the applied order); the predicted score's final values equal those of the offline
scorer fed the same events in event-time order, and explain over HTTP shows the same value.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

from streams.commands.offline import OfflineScorer
from streams.scoring import Invalid, load_plan, parse_input
from streams.wire.codec import Source
from tests.integration.service import Service
from tests.integration.verify import as_offline_line, check_run

PLAN = """
version: predicted-test
lateness: 30d
scores:
  - name: engagement
    entity: contact
    rules:
      - {id: pricing, on: page_visit, where: {url: {contains: pricing}}, points: 30}
      - {id: page, on: page_visit, points: 1}
      - {id: reply, on: email.reply, points: 10}
  - name: fit
    entity: contact
    tiers: [{name: poor, below: 20}, {name: good}]
    rules: [{id: saas, while: {attributes.industry: {eq: saas}}, points: 40}]
  - name: conversion
    entity: contact
    predicted:
      model: conv-it-1
      intercept: -3.2104
      features:
        - {name: engagement, score: engagement, weight: 0.0213}
        - {name: fit, score: fit, weight: 0.01}
        - {name: pricing-2d, score: engagement, rule: pricing, within: 2d, weight: 0.41}
        - {name: replies-1d, score: engagement, rule: reply, within: 1d, of: points,
           weight: 0.05}
        - {name: saas, attribute: industry, equals: saas, weight: 0.8}
        - {name: employees, attribute: employees, weight: 0.0003, max: 10000}
    thresholds: [{name: likely, at: 5000}]
    tiers: [{name: unlikely, below: 1000}, {name: possible, below: 5000}, {name: likely}]
"""
CONTACTS = 24
MINUTE = 60_000


def records(now: int, rng: random.Random) -> list[tuple[Source, dict[str, Any]]]:
    """Visits, replies and profile updates over the last four days (each at its own minute, so
    event-time order is one order), in a shuffled order."""
    out: list[tuple[Source, dict[str, Any]]] = []
    minutes = rng.sample(range(4 * 24 * 60), CONTACTS * 10)
    for n, minute in enumerate(minutes):
        contact = f"c-{rng.randrange(CONTACTS)}"
        at = now - 4 * 24 * 60 * MINUTE + minute * MINUTE
        base = {"event_id": f"x-{n}", "tenant_id": None, "occurred_at": at,
                "contact_id": contact, "deal_id": None}  # fmt: skip
        kind = rng.choice(["pricing", "page", "page", "reply", "profile"])
        if kind in ("pricing", "page"):
            url = "https://example.com/pricing" if kind == "pricing" else "https://example.com/"
            out.append((Source.PAGE_VISITS, {**base, "url": url, "referrer": None,
                                             "title": None, "session_id": None}))  # fmt: skip
        elif kind == "reply":
            out.append((Source.EMAIL_EVENTS, {**base, "action": "reply", "campaign_id": None,
                                              "message_id": None, "link_url": None}))  # fmt: skip
        else:
            attributes = {"industry": rng.choice(["saas", "retail", None]),
                          "employees": rng.choice([40, 1200, 25000, 1234.5, "many"])}  # fmt: skip
            out.append((Source.CONTACT_PROFILES, {**base, "attributes": attributes}))
    return out


async def test_predicted_scores_end_to_end(bootstrap: str, unique: str, tmp_path: Path) -> None:
    plan_path = tmp_path / "predicted.yaml"
    plan_path.write_text(PLAN)
    plan = load_plan(PLAN, source="predicted.yaml")
    rng = random.Random(unique)
    inputs = records(int(time.time() * 1000), rng)
    service = Service(bootstrap, unique, tmp_path, plan=plan_path, partitions=2)
    worker = service.worker()
    try:
        worker.start()
        await worker.wait_ready()
        half = len(inputs) // 2
        await service.produce(inputs[:half])
        sending = asyncio.create_task(service.produce(inputs[half:]))
        await asyncio.sleep(rng.uniform(0.2, 1.0))
        worker.kill()  # kill -9 while the second half arrives
        worker.start()
        await worker.wait_ready()
        await sending
        await service.wait_drained(timeout_s=180)
        published = await service.changes()
        order = await service.applied_order()
        views = {}
        for contact in sorted({r["contact_id"] for _, r in inputs})[:3]:
            status, body = worker.get(f"/scores/contact/{contact}/explain?score=conversion")
            assert status == 200, body
            views[contact] = body
    finally:
        service.stop_all()

    finals = check_run(plan_path, inputs, published, order, tmp_path)
    offline = OfflineScorer(plan)
    for source, record in sorted(inputs, key=lambda r: r[1]["occurred_at"]):
        item = parse_input(as_offline_line(source, record))
        assert not isinstance(item, Invalid), item
        offline.feed(item)
    expected = {(None, r["entity"], r["entity_id"], r["score"]): r["value"]
                for r in offline.finals() if r["kind"] == "score"
                and r["score"] == "conversion"}  # fmt: skip
    predicted = {key: value for key, value in finals.items() if key[3] == "conversion"}
    assert len(predicted) == len({r[1]["contact_id"] for r in inputs})  # every contact has one
    assert predicted == expected
    changes = [c for c in published if c["score"] == "conversion"]
    assert {c["cause"] for c in changes} == {"predicted", "tier"}
    assert all(c["rule_ids"] == ["predicted"] for c in changes)
    profiles = {r["event_id"] for s, r in inputs if s is Source.CONTACT_PROFILES}
    assert any(c["source_event_id"] in profiles for c in changes if c["cause"] == "predicted")
    for contact, view in views.items():
        model = view["predicted"]
        assert view["value"] == model["basis_points"] == predicted[(None, "contact", contact,
                                                                    "conversion")]  # fmt: skip
        assert model["model"] == "conv-it-1" and len(model["features"]) == 6
    print(
        f"predicted: {len(inputs)} inputs, a kill -9, {len(published)} changes "
        f"({len(changes)} of the predicted score), each once; finals equal offline"
    )
