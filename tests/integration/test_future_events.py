"""Event times bounded ahead of their arrival, through the real service: a visit dated 9999 (a
publisher's clock bug) is a dead letter of class ``future_event`` and the contact's next real
visit still scores; the same for a score-adjustment command; epoch microseconds on a JSON topic
too. Those are refused at ingest, with their original bytes: the default tenant's plan is known
there. Another tenant's visit two hours ahead (within what some plan could accept, beyond its
plan's 1 h) is refused by the entity stage under the tenant's plan, the letter naming the input
record. The arrival named in each reason is the input record's Kafka timestamp."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import msgpack

from streams.scoring.durations import format_instant
from streams.wire.codec import Source
from tests.integration.service import Service
from tests.integration.verify import exactly_once, metric_sum

PLAN = """
version: future-test
scores:
  - name: engagement
    entity: contact
    rules:
      - {id: visit, on: page_visit, points: 1}
      - {id: pricing, on: page_visit, where: {url: {contains: pricing}}, points: 5}
"""
Y9999 = 253_370_764_800_000  # 9999-01-01T00:00:00Z


def visit(
    eid: str, contact: str, t: int, tenant: str | None = None
) -> tuple[Source, dict[str, Any]]:
    return Source.PAGE_VISITS, {"event_id": eid, "tenant_id": tenant, "occurred_at": t,
                                "contact_id": contact, "deal_id": None,
                                "url": "https://x.io/pricing"}  # fmt: skip


def adjust(cid: str, contact: str, t: int, points: int) -> tuple[Source, dict[str, Any]]:
    return Source.SCORE_ADJUSTMENTS, {"command_id": cid, "tenant_id": None, "occurred_at": t,
                                      "entity": "contact", "entity_id": contact,
                                      "score": "engagement", "op": "add",
                                      "points": points}  # fmt: skip


def headers(record: Any) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


async def test_a_future_event_is_a_dead_letter_and_the_next_event_scores(
    bootstrap: str, tmp_path: Path
) -> None:
    plan = tmp_path / "future.yaml"
    plan.write_text(PLAN)
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path, plan=plan, partitions=2,
                      json_sources=frozenset({Source.EMAIL_EVENTS}))  # fmt: skip
    worker = service.worker().start()
    try:
        await worker.wait_ready()
        now = int(time.time() * 1000)
        micros = {"event_id": "m1", "tenant_id": None, "occurred_at": now * 1000,
                  "contact_id": "c-3", "action": "open"}  # fmt: skip
        records: list[tuple[Source, dict[str, Any]]] = [
            visit("v1", "c-1", now - 60_000),
            visit("v2", "c-1", Y9999),  # the clock bug
            visit("v3", "c-1", now - 30_000),  # a real visit after it: must score
            adjust("a1", "c-2", Y9999, 50),
            adjust("a2", "c-2", now - 20_000, 7),
            (Source.EMAIL_EVENTS, micros),
            visit("v4", "c-4", now + 2 * 3_600_000, tenant="acme"),
        ]
        await service.produce(records)
        deadline = time.monotonic() + 60
        while True:
            dead = await service.read_all(service.dead)
            grouped = exactly_once(await service.changes())
            if len(dead) >= 4 and len(grouped) >= 2:
                break
            worker.assert_alive()
            assert time.monotonic() < deadline, (len(dead), grouped)
            await asyncio.sleep(0.5)
        await service.wait_drained(60)
        dead = await service.read_all(service.dead)
        grouped = exactly_once(await service.changes())
        inputs = {(rec.topic, rec.partition, rec.offset): rec.timestamp
                  for source in (Source.PAGE_VISITS, Source.SCORE_ADJUSTMENTS,
                                 Source.EMAIL_EVENTS)
                  for rec in await service.read_all(service.topic(source))}  # fmt: skip
        metrics = worker.get_text("/metrics")
    finally:
        service.stop_all()

    changes = {key[2]: [(c["source_event_id"], c["old_value"], c["new_value"], c["cause"])
                        for c in cs] for key, cs in grouped.items()}  # fmt: skip
    assert changes == {
        "c-1": [("v1", 0, 6, "rule"), ("v3", 6, 12, "rule")],
        "c-2": [("a2", 0, 7, "adjustment")],
    }
    assert len(dead) == 4
    by_id: dict[str, tuple[dict[str, str], Any]] = {}
    for letter in dead:
        h = headers(letter)
        assert h["leadscore.error.class"] == "future_event", h
        if h["leadscore.source.topic"] == service.entity_events:  # refused by the entity stage
            item = msgpack.unpackb(letter.value)
            topic, partition, offset = item["s"]
            named = (h["leadscore.input.topic"], h["leadscore.input.partition"],
                     h["leadscore.input.offset"])  # fmt: skip
            assert named == (topic, str(partition), str(offset))
            by_id[item["i"]["event_id"]] = (h, (topic, partition, offset))
        else:  # refused at ingest: the original bytes, from the input record's coordinates
            coordinates = (h["leadscore.source.topic"], int(h["leadscore.source.partition"]),
                           int(h["leadscore.source.offset"]))  # fmt: skip
            original = json.loads(letter.value) if b"{" in letter.value[:1] else None
            by_id[original["event_id"] if original else _avro_id(letter.value)] = (h, coordinates)
    assert sorted(by_id) == ["a1", "m1", "v2", "v4"]
    for name in ("v2", "a1", "v4"):
        h, where = by_id[name]
        arrival = inputs[where]
        assert h["leadscore.error.reason"].startswith(
            "occurred_at 9999-01-01T00:00:00.000Z is about " if name != "v4" else "occurred_at "
        ), h
        assert (f"ahead of its arrival {format_instant(arrival)}; at most 1h ahead is accepted "
                "(the plan's max_future)") in h["leadscore.error.reason"]  # fmt: skip
    assert "input" not in " ".join(by_id["v2"][0])  # an ingest letter names no other record
    h, _ = by_id["m1"]
    assert "it looks like microseconds since the epoch" in h["leadscore.error.reason"], h
    assert metric_sum(metrics, "leadscore_dead_letters_total", reason="future_event") == 4


def _avro_id(value: bytes) -> str:
    """The event or command id of an Avro input record (both are the first field)."""
    from streams.wire.codec import Codec

    codec = Codec.load()
    for source in (Source.PAGE_VISITS, Source.SCORE_ADJUSTMENTS):
        try:
            record = codec.decode_input(source, value, fmt="avro")
        except Exception:  # noqa: S112 - the other topic's schema
            continue
        found = record.get("event_id") or record.get("command_id")
        if found in ("v2", "a1"):
            return str(found)
    raise AssertionError(f"not an input record of the test: {value!r}")
