"""Input fuzzing against the real service (docs/operations.md: bad input never stops it, never loses
the valid events around it). ``FUZZ_RECORDS`` records (5,000 in ``make test``; ``make fuzz`` sends
100,000) go to the six input topics: every fifth one a valid baseline page visit of a contact of its
own, the rest mutations of valid records: one flipped bit, a truncation, another topic's datum, JSON
garbage, deep nesting, values near the broker's size limit, odd Unicode, null and random keys,
random headers.

Which mutations are still valid records is decided by the service's own ingest stage run as a
pure function (``streams.engine.ingest.Ingest``, no Kafka): a flipped bit in a string is often still
a valid event. The verdicts:

- the worker never restarts and is ready at the end;
- every record ingest rejects is in the dead-letter topic exactly once, with its original key and
  value bytes (or, past 900,000 bytes, without the value and with its size) and a reason;
  no record ingest accepts is there;
- every baseline visit is scored exactly once (engagement 0 -> 31 for its contact), and all
  published changes pass the exactly-once checks (one per (entity, score, seq), contiguous seqs).

Bounded: the record count, a deadline that grows with it, traffic only to the test broker.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from streams.engine.ingest import Ingest, Routed
from streams.scoring import Invalid, parse_input
from streams.scoring.arrival import future_reason
from streams.scoring.plan.spec import DEFAULT_MAX_FUTURE_MS
from streams.wire.codec import Codec, Source
from streams.wire.deadletter import DeadLetter
from streams.wire.records import ItemRecord, decode
from tests.integration.service import SOURCES, Service
from tests.integration.verify import exactly_once

RECORDS = int(os.environ.get("FUZZ_RECORDS", "5000"))
SEED = int(os.environ.get("FUZZ_SEED", "20261130"))
JSON_SOURCES = frozenset({Source.EMAIL_EVENTS, Source.SCORE_ADJUSTMENTS})
CODEC = Codec.load()
ODD = ["\u202e", "\u0000", "\ud7ff", "\U0001f4a5", "e\u0301", "\ufeff", "\u2028", "Ω" * 300]


@dataclass
class Record:
    source: Source
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    bad: bool = False
    #: dead letters the entity stage writes for it (one per entity it routes to): a named
    #: tenant's item beyond its plan's max_future, which ingest cannot know
    entity_letters: int = 0
    baseline: str | None = None  # the contact of a baseline visit
    partition: int = -1
    offset: int = -1


def template(source: Source, i: int, t: int) -> dict[str, Any]:
    """A valid record of ``source``; contacts and ids start with m- (a flipped bit never makes
    them start with b-, the baseline's prefix)."""
    contact = f"m-{i % 300}"
    base = {"event_id": f"m-{source.value}-{i}", "occurred_at": t, "tenant_id": None}
    if source is Source.PAGE_VISITS:
        return {**base, "contact_id": contact, "deal_id": None, "url": f"https://x.io/p/{i}"}
    if source is Source.EMAIL_EVENTS:
        return {**base, "contact_id": contact, "action": "open", "campaign_id": "c1"}
    if source is Source.PURCHASES:
        return {**base, "contact_id": contact, "order_id": f"o{i}", "amount": Decimal("12.50"),
                "currency": "EUR"}  # fmt: skip
    if source is Source.DEAL_STAGE_CHANGES:
        return {**base, "deal_id": f"m-d{i % 50}", "contact_id": None, "pipeline": "sales",
                "to_stage": "proposal", "status": "open"}  # fmt: skip
    if source is Source.CONTACT_PROFILES:
        return {**base, "contact_id": contact, "attributes": {"industry": "saas"}}
    del base["event_id"]
    return {**base, "command_id": f"m-adj-{i}", "entity": "contact", "entity_id": contact,
            "score": "engagement", "op": "add", "points": 3}  # fmt: skip


def encode(source: Source, record: dict[str, Any]) -> bytes:
    if source in JSON_SOURCES:
        return json.dumps(record, default=str).encode()
    return CODEC.encode(CODEC.inputs[source], record)


def mutate(rng: random.Random, source: Source, i: int, t: int) -> bytes | None:
    valid = encode(source, template(source, i, t))
    kind = rng.randrange(12)
    if kind <= 3:  # one flipped bit
        pos = rng.randrange(len(valid))
        return valid[:pos] + bytes([valid[pos] ^ (1 << rng.randrange(8))]) + valid[pos + 1 :]
    if kind <= 5:  # truncated
        return valid[: rng.randrange(len(valid))]
    if kind == 6:  # another topic's datum
        other = rng.choice([s for s in Source if s is not source])
        return encode(other, template(other, i, t))
    if kind == 7:  # JSON garbage, on any topic
        return rng.choice([b"{", b"[1, 2", b'"\\ud800"', b"null", b"{}", b"[]", b"1e999999",
                           b'{"event_id": 7}', b"\xff\xfe\x00", b'{"a": ' * 2000])  # fmt: skip
    if kind == 8:  # deeply nested
        return b"[" * rng.choice([100, 10_000, 200_000]) + b"]" * rng.choice([0, 100])
    if kind == 9:  # huge: around the 900,000-byte dead-letter limit (rare)
        if rng.random() < 0.05:
            return bytes(rng.choice([899_000, 950_000]))
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    if kind == 10:  # odd Unicode in every text field
        record = template(source, i, t)
        for name, value in record.items():
            if isinstance(value, str) and name not in ("action", "op", "entity", "currency",
                                                      "status", "score"):  # fmt: skip
                record[name] = value + rng.choice(ODD)
        return encode(source, record)
    return None if rng.random() < 0.5 else b""  # tombstone or empty


def traffic(rng: random.Random, t: int) -> list[Record]:
    formats = {SOURCES[s]: ("json" if s in JSON_SOURCES else "avro") for s in Source}
    ingest = Ingest(CODEC, {SOURCES[s]: s for s in Source}, formats)
    out = []
    for i in range(RECORDS):
        headers = [(rng.choice(["x", "trace", "\u00e9", ""]), rng.randbytes(rng.randrange(20)))
                   for _ in range(rng.randrange(3))]  # fmt: skip
        key = rng.choice([None, b"", rng.randbytes(8), b"k"])
        if i % 5 == 0:
            contact = f"b-{i}"
            record = {"event_id": f"b-{i}", "occurred_at": t, "tenant_id": None,
                      "contact_id": contact, "deal_id": None,
                      "url": "https://x.io/pricing"}  # fmt: skip
            out.append(Record(Source.PAGE_VISITS, key, encode(Source.PAGE_VISITS, record),
                              headers, baseline=contact))  # fmt: skip
            continue
        source = rng.choice(list(Source))
        value = mutate(rng, source, i, t)
        try:  # the oracle: the service's ingest stage as a pure function
            verdict = ingest.handle(topic=SOURCES[source], partition=0, offset=0, key=key,
                                    value=value, appended_ms=t, now_ms=t)  # fmt: skip
            bad = isinstance(verdict, DeadLetter)
        except Exception:  # the loop turns an unexpected failure into a dead letter too
            bad, verdict = True, None
        out.append(Record(source, key, value, headers, bad=bad,
                          entity_letters=refused_later(verdict, t)))  # fmt: skip
    return out


def refused_later(verdict: Routed | DeadLetter | None, t: int) -> int:
    """How many entity-stage dead letters a routed item gets: one per entity when its event
    time is beyond the test plan's max_future (the default) for a named tenant."""
    if not isinstance(verdict, Routed):
        return 0
    item = decode(verdict.outputs[0][1])
    assert isinstance(item, ItemRecord)
    parsed = parse_input(item.record)
    assert not isinstance(parsed, Invalid)
    late = future_reason(parsed.occurred_at_ms, t, DEFAULT_MAX_FUTURE_MS)
    return len(verdict.outputs) if parsed.tenant_id is not None and late is not None else 0


def send(service: Service, records: list[Record]) -> None:
    producer = Producer({"bootstrap.servers": service.bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 20,
                         "message.max.bytes": 1_000_000, "log_level": 3})  # fmt: skip

    def delivered(record: Record) -> Any:
        def report(err: Any, msg: Any) -> None:
            assert err is None, err
            record.partition, record.offset = msg.partition(), msg.offset()

        return report

    for record in records:
        producer.produce(service.topic(record.source), record.value, record.key,
                         headers=record.headers, on_delivery=delivered(record))  # fmt: skip
        producer.poll(0)
    assert producer.flush(120) == 0


def header(letter: Any, name: str) -> str | None:
    for key, value in letter.headers:
        if key == name:
            return str(value.decode())
    return None


def coordinates(letter: Any, of: str = "source") -> tuple[str | None, int, int]:
    return (header(letter, f"leadscore.{of}.topic"),
            int(header(letter, f"leadscore.{of}.partition") or -1),
            int(header(letter, f"leadscore.{of}.offset") or -1))  # fmt: skip


async def test_fuzzed_inputs(bootstrap: str, tmp_path: Path) -> None:
    t = int(time.time() * 1000) - 60_000
    records = traffic(random.Random(SEED), t)
    bad = [r for r in records if r.bad]
    later = sum(r.entity_letters for r in records)
    baseline = {r.baseline for r in records if r.baseline}
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path, json_sources=JSON_SOURCES,
                      extra={"LEADSCORE_BATCH_SIZE": "500"})  # fmt: skip
    worker = service.worker().start()
    try:
        await worker.wait_ready()
        pid = worker.proc.pid if worker.proc else None
        send(service, records)
        deadline = time.monotonic() + 120 + RECORDS / 100
        while True:
            worker.assert_alive()
            dead = await service.read_all(service.dead)
            scored = {c["entity_id"] for c in await service.changes()
                      if c["entity_id"] in baseline}  # fmt: skip
            if len(dead) >= len(bad) + later and scored >= baseline:
                break
            assert time.monotonic() < deadline, (
                f"{len(dead)}/{len(bad)} dead letters, {len(scored)}/{len(baseline)} baseline "
                f"visits scored\n{worker.tail(40)}"
            )
            await asyncio.sleep(1)
        await service.wait_drained(120)
        dead = await service.read_all(service.dead)
        changes = await service.changes()
        status, _ = worker.get("/readyz")
        assert worker.proc is not None and worker.proc.pid == pid and worker.proc.poll() is None
    finally:
        service.stop_all()

    assert status == 200
    where = {(service.topic(r.source), r.partition, r.offset): r for r in records}
    from_entities = [d for d in dead if header(d, "leadscore.input.topic") is not None]
    assert Counter(coordinates(d, "input") for d in from_entities) == {
        (service.topic(r.source), r.partition, r.offset): r.entity_letters
        for r in records if r.entity_letters
    }  # fmt: skip
    dead = [d for d in dead if header(d, "leadscore.input.topic") is None]
    letters = Counter(coordinates(d) for d in dead)
    assert max(letters.values()) == 1, "a record was dead-lettered twice"
    assert set(letters) == {(service.topic(r.source), r.partition, r.offset) for r in bad}
    for letter in dead:
        original = where[coordinates(letter)]
        assert letter.key == original.key
        assert header(letter, "leadscore.error.class") and header(letter, "leadscore.error.reason")
        if header(letter, "leadscore.value.omitted") is None:
            assert (letter.value or b"") == (original.value or b"")
        else:
            assert (
                letter.value is None
                and len(original.key or b"") + len(original.value or b"") > 900_000
            )
    grouped = exactly_once(changes)  # no duplicate, contiguous seqs, values chain
    print(f"fuzz: {len(records)} records (seed {SEED}): {len(dead)} dead letters as predicted "
          f"(and {later} from the entity stage), "
          f"{len(baseline)} baseline visits scored once, {len(changes)} changes checked, "
          f"worker pid {pid} never restarted")  # fmt: skip
    for contact in baseline:
        got = grouped[(None, "contact", contact, "engagement")]
        assert [(c["old_value"], c["new_value"]) for c in got] == [(0, 31)], contact
