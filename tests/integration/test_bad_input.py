"""Dead letters, and "bad input never stops the service" (docs/operations.md), on the real broker.

One worker serves the module. Valid events and bad records are interleaved on every input topic
(one key, so one partition per topic and a fixed order; a few bad records with other keys or none):
random bytes, truncated Avro, a datum of another schema, missing required fields, unknown enum
symbols (JSON text and an out-of-range Avro enum index), invalid timestamps, oversized strings,
invalid UTF-8, JSON that is not an object or is pathologically nested, tombstones and empty
values. Emails are JSON, every other topic Avro.

Then: each bad record is in the dead-letter topic exactly once, with its original key and value
bytes and headers naming its source topic, partition and offset, an error class and a readable
reason; nothing else is there; every valid event was scored; the worker is alive and ready; the
``leadscore_dead_letters_total`` counters add up to the number of bad records.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import random
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest
from aiokafka import AIOKafkaProducer

from streams.wire.codec import Codec, Source, load_schema
from tests.integration.service import SOURCES, Service
from tests.integration.verify import exactly_once, metric_sum

KEY = b"any-key"
JSON_SOURCES = frozenset({Source.EMAIL_EVENTS})
OVERSIZED = "x" * 10_000


@dataclass
class Sent:
    """One record produced: what it was, where it landed."""

    label: str
    source: Source
    key: bytes | None
    value: bytes | None
    bad: bool
    classes: frozenset[str] = frozenset()  # acceptable error classes of a bad record
    partition: int = -1
    offset: int = -1


@dataclass
class Run:
    sent: list[Sent]
    topics: dict[Source, str]
    dead: list[Any]
    grouped: dict[Any, list[dict[str, Any]]]
    expected: dict[Any, tuple[int, int, str]]
    readyz: tuple[int, bytes]
    metrics: str
    alive: bool
    log_tail: str = ""
    sources: dict[tuple[str, int, int], tuple[bytes | None, bytes | None]] = field(
        default_factory=dict
    )


# ----- records ----------------------------------------------------------------------------------

CODEC = Codec.load()


def avro(source: Source, record: dict[str, Any]) -> bytes:
    return CODEC.encode(CODEC.inputs[source], record)


def avro_with_wider_enum(stem: str, field_name: str, record: dict[str, Any], symbol: str) -> bytes:
    """A datum whose enum index is past the real schema's symbols (written with a wider enum)."""
    raw = json.loads((Path(__file__).parents[2] / "schemas" / f"{stem}.avsc").read_text())
    schema = copy.deepcopy(raw)
    for f in schema["fields"]:
        if f["name"] == field_name:
            enum = next(t for t in (f["type"] if isinstance(f["type"], list) else [f["type"]])
                        if isinstance(t, dict) and t.get("type") == "enum")  # fmt: skip
            enum["symbols"] = [*enum["symbols"], "x1", "x2", "x3", symbol]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), {**record, field_name: symbol})
    value = buf.getvalue()
    with pytest.raises(IndexError):  # the real schema cannot read it
        fastavro.schemaless_reader(io.BytesIO(value), load_schema(stem), None)
    return value


def traffic(now: int, rng: random.Random) -> tuple[list[Sent], dict[Any, tuple[int, int, str]]]:
    """Valid and bad records, interleaved per topic; and each valid event's expected change."""
    t = now - 60_000
    expected: dict[Any, tuple[int, int, str]] = {}
    n = iter(range(10_000))

    def pv(contact: str | None, url: str = "https://x.io/blog", **kw: Any) -> dict[str, Any]:
        return {"event_id": f"pv-{next(n)}", "occurred_at": t, "contact_id": contact,
                "url": url, **kw}  # fmt: skip

    def em(contact: str | None, action: str = "open", **kw: Any) -> dict[str, Any]:
        return {"event_id": f"em-{next(n)}", "occurred_at": t, "contact_id": contact,
                "action": action, **kw}  # fmt: skip

    def pu(contact: str, amount: str = "100", currency: str = "EUR") -> dict[str, Any]:
        return {"event_id": f"pu-{next(n)}", "occurred_at": t, "contact_id": contact,
                "order_id": "o-1", "amount": Decimal(amount), "currency": currency}  # fmt: skip

    def ds(deal: str | None, contact: str | None = None) -> dict[str, Any]:
        return {"event_id": f"ds-{next(n)}", "occurred_at": t, "deal_id": deal,
                "contact_id": contact, "pipeline": "sales", "to_stage": "proposal",
                "status": "open"}  # fmt: skip

    def pr(contact: str, **attrs: Any) -> dict[str, Any]:
        return {"event_id": f"pr-{next(n)}", "occurred_at": t, "contact_id": contact,
                "attributes": attrs}  # fmt: skip

    def adj(contact: str, op: str = "add", points: int | None = 7) -> dict[str, Any]:
        return {"command_id": f"ad-{next(n)}", "occurred_at": t, "entity": "contact",
                "entity_id": contact, "score": "engagement", "op": op,
                "points": points}  # fmt: skip

    def valid(source: Source) -> Sent:
        i = next(n)
        contact = f"ok-{source.value}-{i}"
        if source is Source.PAGE_VISITS:
            record, want = pv(contact), ("contact", "engagement", 1, "rule")
        elif source is Source.EMAIL_EVENTS:
            record, want = em(contact), ("contact", "engagement", 10, "rule")
        elif source is Source.PURCHASES:
            record, want = pu(contact), ("contact", "engagement", 10, "rule")
        elif source is Source.DEAL_STAGE_CHANGES:
            record, want = ds(contact), ("deal", "deal-health", 40, "state")
        elif source is Source.CONTACT_PROFILES:
            record, want = pr(contact, industry="saas"), ("contact", "fit", 25, "state")
        else:
            record, want = adj(contact), ("contact", "engagement", 7, "adjustment")
        kind, score, points, cause = want
        expected[(None, kind, contact, score)] = (0, points, cause)
        value = (json.dumps(record, default=str).encode() if source in JSON_SOURCES
                 else avro(source, record))  # fmt: skip
        return Sent(f"valid {source.value}", source, KEY, value, bad=False)

    def bad(label: str, source: Source, value: bytes | None, *classes: str,
            key: bytes | None = KEY) -> Sent:  # fmt: skip
        return Sent(label, source, key, value, True, frozenset(classes))

    pv_ok = avro(Source.PAGE_VISITS, pv("c-1"))
    pu_ok = avro(Source.PURCHASES, pu("c-1"))
    ad_ok = avro(Source.SCORE_ADJUSTMENTS, adj("c-1"))
    avro_broken = ("InvalidAvro", "TruncatedAvro")
    P, E, B = Source.PAGE_VISITS, Source.EMAIL_EVENTS, Source.PURCHASES
    D, C, A = Source.DEAL_STAGE_CHANGES, Source.CONTACT_PROFILES, Source.SCORE_ADJUSTMENTS
    deep = b"[" * 100_000 + b"]" * 100_000
    bads = [
        # page-visits (Avro)
        bad("random bytes", P, rng.randbytes(64), *avro_broken),
        bad("truncated datum", P, pv_ok[: len(pv_ok) // 2], *avro_broken),
        bad("purchase datum on page-visits", P, pu_ok, *avro_broken),
        bad("empty value", P, b"", *avro_broken),
        bad("tombstone", P, None, "EmptyValue", key=b"tomb\x00stone"),
        bad("url of 10,000 chars", P, avro(P, pv("c-1", url=OVERSIZED)), "InvalidRecord"),
        bad("invalid UTF-8 url", P,
            avro(P, pv("c-1", url="UTF8-HERE")).replace(b"UTF8-HERE", b"\xff\xfe\xfd\xfc\xfb\xfa"
                                                        b"\xf9\xf8\xf7"), *avro_broken),
        bad("occurred_at before 1970", P, avro(P, {**pv("c-1"), "occurred_at": -1000}),
            "InvalidRecord"),
        bad("occurred_at after 9999", P, avro(P, {**pv("c-1"), "occurred_at": 10**15}),
            "future_event"),
        bad("no contact_id and no deal_id", P, avro(P, pv(None)), "InvalidRecord", "Unroutable"),
        bad("random bytes, no key", P, rng.randbytes(33), *avro_broken, key=None),
        # email-events (JSON)
        bad("no event_id", E, json.dumps({k: v for k, v in em("c-1").items()
                                          if k != "event_id"}).encode(), "InvalidRecord"),
        bad("no contact_id and no deal_id", E, json.dumps(em(None)).encode(),
            "InvalidRecord", "Unroutable"),
        bad("unknown action", E, json.dumps(em("c-1", action="teleport")).encode(),
            "InvalidRecord"),
        bad("occurred_at yesterday", E, json.dumps({**em("c-1"), "occurred_at": "yesterday"})
            .encode(), "InvalidRecord"),
        bad("naive ISO occurred_at", E,
            json.dumps({**em("c-1"), "occurred_at": "2024-05-01T10:00:00"}).encode(),
            "InvalidRecord"),
        bad("boolean occurred_at", E, json.dumps({**em("c-1"), "occurred_at": True}).encode(),
            "InvalidRecord"),
        bad("link_url of 10,000 chars", E, json.dumps(em("c-1", link_url=OVERSIZED)).encode(),
            "InvalidRecord"),
        bad("event_id a number", E, json.dumps({**em("c-1"), "event_id": 42}).encode(),
            "InvalidRecord"),
        bad("not JSON", E, b"{not json", "InvalidJson"),
        bad("invalid UTF-8", E, b'\xff\xfe{"a": 1}', "InvalidJson"),
        bad("JSON array", E, b"[1, 2]", "InvalidJson"),
        bad("JSON null", E, b"null", "InvalidJson"),
        bad("empty value", E, b"", "InvalidJson"),
        bad("tombstone", E, None, "EmptyValue", key=b"gone"),
        bad("deeply nested JSON", E, deep, "InvalidJson"),
        bad("5000-digit integer", E, b'{"occurred_at": 1' + b"0" * 5000 + b"}", "InvalidJson"),
        # purchases (Avro)
        bad("page-visit datum on purchases", B, pv_ok, *avro_broken),
        bad("currency not ISO 4217", B, avro(B, pu("c-1", currency="euro")), "InvalidRecord"),
        bad("truncated datum", B, pu_ok[:-3], *avro_broken),
        # deal-stage-changes (Avro)
        bad("status enum index out of range", D,
            avro_with_wider_enum("deal_stage_change", "status", ds("d-1"), "teleport"),
            *avro_broken),
        bad("no deal_id", D, avro(D, ds(None, contact="c-1")), "InvalidRecord"),
        # contact-profiles (Avro)
        bad("attribute of 10,000 chars", C, avro(C, pr("c-1", title=OVERSIZED)), "InvalidRecord"),
        bad("random bytes", C, rng.randbytes(200), *avro_broken),
        # score-adjustments (Avro)
        bad("op enum index out of range", A,
            avro_with_wider_enum("score_adjustment", "op", adj("c-1"), "teleport"), *avro_broken),
        bad("subtract of negative points", A, avro(A, adj("c-1", "subtract", -5)),
            "InvalidRecord"),
        bad("set without points", A, avro(A, adj("c-1", "set", None)), "InvalidRecord"),
        bad("random bytes", A, rng.randbytes(16), *avro_broken, key=b"\x00\x01"),
        bad("adjustment datum truncated", A, ad_ok[:5], *avro_broken),
    ]  # fmt: skip
    out: list[Sent] = []
    for source in Source:
        out.append(valid(source))
        for item in (b for b in bads if b.source is source):
            out += [item, valid(source)]
    return out, expected


# ----- the run ----------------------------------------------------------------------------------


async def send_all(service: Service, sent: list[Sent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=service.bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=5)  # fmt: skip
    await producer.start()
    try:
        for item in sent:  # one at a time: the order per topic is the interleaving
            meta = await (await producer.send(service.topic(item.source), item.value, item.key))
            item.partition, item.offset = meta.partition, meta.offset
    finally:
        await producer.stop()


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def scenario(bootstrap: str, root: Path) -> Run:
    sent, expected = traffic(int(time.time() * 1000), random.Random(20240501))
    n_bad = sum(item.bad for item in sent)
    service = Service(bootstrap, uuid.uuid4().hex[:12], root, json_sources=JSON_SOURCES)
    worker = service.worker()
    try:
        worker.start()
        await worker.wait_ready()
        await send_all(service, sent)
        deadline = time.monotonic() + 60
        while True:
            dead = await service.read_all(service.dead)
            grouped = exactly_once(await service.changes())
            if len(dead) >= n_bad and all(k in grouped for k in expected):
                break
            worker.assert_alive()
            assert time.monotonic() < deadline, (
                f"{len(dead)}/{n_bad} dead letters, "
                f"{sum(k in grouped for k in expected)}/{len(expected)} valid events scored"
            )
            await asyncio.sleep(0.5)
        await service.wait_drained(60)
        await asyncio.sleep(1)  # anything more (a second copy) would be here by now
        dead = await service.read_all(service.dead)
        grouped = exactly_once(await service.changes())
        originals = {}
        for source in Source:
            for rec in await service.read_all(service.topic(source)):
                originals[(rec.topic, rec.partition, rec.offset)] = (rec.key, rec.value)
        readyz = get(worker.port, "/readyz")
        metrics = get(worker.port, "/metrics")[1].decode(errors="replace")
        alive = worker.proc is not None and worker.proc.poll() is None
        tail = worker.tail(80)
    finally:
        service.stop_all()
    topics = {s: service.topic(s) for s in SOURCES}
    return Run(sent, topics, dead, grouped, expected, readyz, metrics, alive, tail, originals)


@pytest.fixture(scope="module")
def run(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    yield asyncio.run(scenario(bootstrap, tmp_path_factory.mktemp("bad")))


def headers(record: Any) -> dict[str, str]:
    return {name: value.decode("utf-8") for name, value in record.headers}


def letter_of(run: Run, item: Sent) -> list[Any]:
    topic = run.topics[item.source]
    return [d for d in run.dead
            if headers(d).get("leadscore.source.topic") == topic
            and headers(d).get("leadscore.source.partition") == str(item.partition)
            and headers(d).get("leadscore.source.offset") == str(item.offset)]  # fmt: skip


# ----- the checks -------------------------------------------------------------------------------


def test_the_worker_survives_and_stays_ready(run: Run) -> None:
    assert run.alive, run.log_tail
    assert run.readyz[0] == 200, run.readyz


def test_every_bad_record_is_dead_lettered_once_with_its_bytes(run: Run) -> None:
    bads = [item for item in run.sent if item.bad]
    assert len(run.dead) == len(bads)
    for item in bads:
        letters = letter_of(run, item)
        assert len(letters) == 1, f"{item.source.value} / {item.label}: {len(letters)} letters"
        (letter,) = letters
        assert letter.value == item.value, f"{item.label}: value bytes changed"
        assert letter.key == item.key, f"{item.label}: key bytes changed"
        # The coordinates point at the very record that was sent.
        topic = run.topics[item.source]
        assert run.sources[(topic, item.partition, item.offset)] == (item.key, item.value)


def test_no_valid_record_is_dead_lettered(run: Run) -> None:
    for item in run.sent:
        if not item.bad:
            assert letter_of(run, item) == [], f"valid {item.source.value} dead-lettered"


def test_dead_letter_headers_are_complete_and_readable(run: Run) -> None:
    wanted = {
        "leadscore.source.topic", "leadscore.source.partition", "leadscore.source.offset",
        "leadscore.error.class", "leadscore.error.reason",
    }  # fmt: skip
    for letter in run.dead:
        h = headers(letter)  # raises if a header is not UTF-8
        assert wanted <= set(h), h
        assert h["leadscore.error.class"].strip(), h
        assert h["leadscore.error.reason"].strip(), h
        assert h["leadscore.error.reason"].replace("\n", " ").isprintable(), h
        assert len(h["leadscore.error.reason"]) <= 2000, h


def test_dead_letter_error_classes(run: Run) -> None:
    """Undecodable bytes are a decode error of the codec, not an ``Unexpected:*`` failure.

    ``streams.wire.codec`` promises that decoding never raises on bad bytes but a ``DecodeError``;
    JSON nested too deep (``RecursionError``) or with an integer over Python's digit limit
    (``ValueError``) must be ``InvalidJson`` like any other unparsable JSON.
    """
    wrong = []
    for item in (i for i in run.sent if i.bad):
        letters = letter_of(run, item)
        if letters:
            h = headers(letters[0])
            if h["leadscore.error.class"] not in item.classes:
                wrong.append((item.source.value, item.label, h["leadscore.error.class"],
                              h["leadscore.error.reason"][:120]))  # fmt: skip
    assert wrong == [], "\n".join(map(str, wrong))


def test_every_valid_event_is_scored_once(run: Run) -> None:
    for key, (old, new, cause) in run.expected.items():
        changes = run.grouped.get(key, [])
        got = [(c["old_value"], c["new_value"], c["cause"]) for c in changes]
        assert got == [(old, new, cause)], key
    assert set(run.grouped) == set(run.expected)  # bad records changed nothing


def test_dead_letter_metrics_add_up(run: Run) -> None:
    n_bad = sum(item.bad for item in run.sent)
    assert metric_sum(run.metrics, "leadscore_dead_letters_total") == n_bad
    assert metric_sum(run.metrics, "leadscore_events_total", outcome="dead_letter") == n_bad
    per_class = Counter(headers(d)["leadscore.error.class"] for d in run.dead)
    for error_class, count in per_class.items():
        assert metric_sum(run.metrics, "leadscore_dead_letters_total", reason=error_class) == count
