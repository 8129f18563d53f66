"""End to end with a real schema registry: Apicurio Registry run by ``deploy/registry/registry.sh``.

The module starts the registry (unless this checkout's is already up; then it is left running),
and one worker with ``LEADSCORE_SCHEMA_REGISTRY_URL`` set. A producer registers the page-visit
schema under ``<topic>-value``, then a compatible new version with an optional field
(``utm_source``, default null; the registry's BACKWARD rule accepts it and refuses an
incompatible one), after the schema as it was before the tenant's rename (field ``account_id``,
docs/migration.md; ours renames it with the old name as alias, which the registry accepts), and
sends framed Avro written with all three, JSON emails (JSON topics
stay JSON), a value with an unknown schema id and a plain Avro value (no framing). ``leadscore
demo`` then publishes framed traffic of its own. Each test checks one aspect of that run:

- the scores of the framed inputs are what the offline scorer gives for the same events, the
  old-schema record's under the tenant its ``account_id`` names;
- every ``score-changed`` and ``scores`` value is framed with an id that the registry resolves to
  our ``score_changed`` / ``score`` schema, registered under ``<topic>-value``;
- the unknown id and the unframed value are dead letters with their reasons, nothing else is;
- a worker whose registry is unreachable stops at start-up with one line naming the variable.

And, with a worker of its own that reaches the registry through a gate the test closes: a registry
outage while a new schema id comes in aborts and retries, and dead-letters nothing.

Traffic goes to 127.0.0.1 only. Bounded: every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streams.wire.codec import Codec, RegistryError, Source, frame_header, schema_text
from streams.wire.registry import HttpRegistry
from tests.integration.service import REPO, Service, _without_settings, free_port
from tests.integration.verify import exactly_once, final_values, offline_finals

SCRIPT = REPO / "deploy" / "registry" / "registry.sh"
UNKNOWN_ID = 987_654
START_TIMEOUT_S = 900  # the first run builds the registry from Maven Central (2-3 min measured)


def _script(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def registry_url() -> Iterator[str]:
    """The registry's Confluent-compatible API; started here (and stopped after) if not up."""
    env = dict(os.environ)
    if _script("status", env=env).returncode != 0 and _script("port-free", env=env).returncode:
        env["REGISTRY_PORT"] = _script("free-port", env=env).stdout.strip()  # 8081 is taken
    started = _script("status", env=env).returncode != 0
    if started:
        up = _script("up", env=env, timeout=START_TIMEOUT_S)
        if up.returncode != 0:
            if "is required" in up.stderr:  # no Java 17+ or no Maven on this machine
                pytest.skip(f"the registry cannot run here: {up.stderr.strip()}")
            pytest.fail(f"deploy/registry/registry.sh up failed:\n{up.stderr}", pytrace=False)
    url = _script("url", env=env).stdout.strip()
    try:
        yield url
    finally:
        if started:
            _script("down", env=env)


def at(minutes_ago: int) -> int:
    return int(time.time() * 1000) - minutes_ago * 60_000


def old_visit(eid: str, contact: str, url: str, t: int) -> dict[str, Any]:
    """A page visit as a producer on the schema before the rename writes it (no ``tenant_id``)."""
    record = visit(eid, contact, url, t)
    del record["tenant_id"]
    return record


def visit(eid: str, contact: str, url: str, t: int, **extra: Any) -> dict[str, Any]:
    return {"event_id": eid, "tenant_id": None, "occurred_at": t, "contact_id": contact,
            "deal_id": None, "url": url, **extra}  # fmt: skip


def compact(schema: Any) -> str:
    return json.dumps(schema, separators=(",", ":"))


def framed(schema: Any, record: dict[str, Any], schema_id: int) -> bytes:
    buf = io.BytesIO(frame_header(schema_id))
    buf.seek(5)
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return buf.getvalue()


@dataclass
class Run:
    service: Service
    v1: int
    v2: int
    v_old: int
    incompatible_refused: str
    sent: list[tuple[Source, dict[str, Any]]]  # the valid framed and JSON inputs, as events
    changed_raw: list[Any]
    scores_raw: list[Any]
    dead: list[Any]
    registry: HttpRegistry
    demo_output: str
    alive: bool


@pytest.fixture(scope="module")
def run(registry_url: str, bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("registry")
    service = Service(
        bootstrap, f"sr{int(time.time())}", root, partitions=2,
        json_sources=frozenset({Source.EMAIL_EVENTS}),
        extra={"LEADSCORE_SCHEMA_REGISTRY_URL": registry_url},
    )  # fmt: skip
    registry = HttpRegistry(registry_url, timeout_s=10)
    return asyncio.run(_scenario(service, registry))


async def _scenario(service: Service, registry: HttpRegistry) -> Run:
    worker = service.worker("w1").start()
    try:
        await worker.wait_ready(timeout_s=120)
        subject = f"{service.topic(Source.PAGE_VISITS)}-value"
        v1_schema = json.loads(schema_text("page_visit"))
        v2_schema = json.loads(schema_text("page_visit"))
        v2_schema["fields"].append(
            {"name": "utm_source", "type": ["null", "string"], "default": None}
        )
        bad_schema = json.loads(json.dumps(v2_schema))
        bad_schema["fields"][0]["type"] = "long"
        # the schema before the tenant's rename, registered first as it was in a real
        # deployment; ours (the field renamed, with the old name as alias) is a compatible version
        old_schema = json.loads(schema_text("page_visit"))
        [tenant_field] = [f for f in old_schema["fields"] if f["name"] == "tenant_id"]
        tenant_field["name"] = "account_id"
        del tenant_field["aliases"]
        v_old = registry.register(subject, compact(old_schema))
        v1 = registry.register(subject, compact(v1_schema))
        v2 = registry.register(subject, compact(v2_schema))
        try:
            registry.register(subject, compact(bad_schema))
            refused = ""
        except RegistryError as exc:
            refused = str(exc)

        t = at(10)
        events = [
            (Source.PAGE_VISITS, visit("sr-e1", "sr-1", "https://x.io/pricing", t), v1),
            (
                Source.PAGE_VISITS,
                visit("sr-e2", "sr-1", "https://x.io/features", t + 1000, utm_source="mail"),
                v2,
            ),
            (Source.PAGE_VISITS, visit("sr-e3", "sr-2", "https://x.io/blog", t + 2000), v2),
            (Source.PAGE_VISITS, visit("sr-e4", "sr-2", "https://x.io/features", t + 3000), v1),
            (
                Source.PAGE_VISITS,
                {
                    **old_visit("sr-e6", "sr-4", "https://x.io/pricing", t + 5000),
                    "account_id": "acme",
                },
                v_old,
            ),
        ]
        schema_of = {v1: v1_schema, v2: v2_schema, v_old: old_schema}
        out: list[tuple[Source, dict[str, Any] | bytes]] = [
            (source, framed(schema_of[sid], record, sid)) for source, record, sid in events
        ]
        mail = {"event_id": "sr-e5", "tenant_id": None, "occurred_at": t + 4000,
                "contact_id": "sr-2", "action": "open", "campaign_id": "spring"}  # fmt: skip
        out.append((Source.EMAIL_EVENTS, mail))  # JSON
        unknown = framed(v1_schema, visit("sr-bad1", "sr-3", "https://x.io/pricing", t), v1)
        unknown = frame_header(UNKNOWN_ID) + unknown[5:]
        plain = Codec.load()
        unframed = plain.encode(plain.inputs[Source.PAGE_VISITS],
                                visit("sr-bad2", "sr-3", "https://x.io/pricing", t))  # fmt: skip
        out += [(Source.PAGE_VISITS, unknown), (Source.PAGE_VISITS, unframed)]
        await service.produce(out)

        # the demo producer, framed too (its contacts are c-*, ours sr-*)
        env = {**_without_settings(os.environ), **service.env("demo", free_port())}
        demo = subprocess.run(
            [sys.executable, "-m", "streams.cli", "demo", "--events", "300", "--rate", "0"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert demo.returncode == 0, demo.stderr

        await service.wait_drained(timeout_s=180)
        alive = worker.exited() is None
        sent = [(source, dict(record)) for source, record, _ in events]
        for _, record in sent:
            record.pop("utm_source", None)  # not in the reader schema: the offline scorer's view
        sent.append((Source.EMAIL_EVENTS, mail))
        return Run(
            service=service, v1=v1, v2=v2, v_old=v_old, incompatible_refused=refused, sent=sent,
            changed_raw=await service.read_all(service.changed),
            scores_raw=await service.read_all(service.scores),
            dead=await service.read_all(service.dead),
            registry=registry, demo_output=demo.stdout + demo.stderr, alive=alive,
        )  # fmt: skip
    finally:
        if worker.exited() is None:
            worker.terminate()
        service.stop_all()


# ----- the checks -------------------------------------------------------------------------------


def test_the_registry_took_a_compatible_new_version_and_refused_an_incompatible_one(
    run: Run,
) -> None:
    assert run.v2 != run.v1
    subject = f"{run.service.topic(Source.PAGE_VISITS)}-value"
    # three versions (the one before the tenant's rename, ours, ours with utm_source): the demo
    # registered the same text as v1 again, which gave v1's id back
    assert run.registry._call("GET", f"/subjects/{subject}/versions") == [1, 2, 3]
    assert run.registry._call("GET", f"/subjects/{subject}/versions/1")["id"] == run.v_old
    assert run.registry._call("GET", f"/subjects/{subject}/versions/2")["id"] == run.v1
    assert run.registry._call("GET", f"/subjects/{subject}/versions/3")["id"] == run.v2
    assert "HTTP 409" in run.incompatible_refused, run.incompatible_refused


def _framed_id(value: bytes) -> int:
    assert value[0] == 0, f"magic byte {value[0]}"
    return int.from_bytes(value[1:5], "big")


def test_outputs_are_framed_with_the_ids_of_our_schemas(run: Run) -> None:
    assert run.changed_raw and run.scores_raw
    for records, stem, topic in (
        (run.changed_raw, "score_changed", run.service.changed),
        (run.scores_raw, "score", run.service.scores),
    ):
        ids = {_framed_id(rec.value) for rec in records}
        assert len(ids) == 1, ids
        [schema_id] = ids
        kind, text = run.registry.schema(schema_id)
        assert kind == "AVRO"
        assert json.loads(text) == json.loads(schema_text(stem))
        latest = run.registry._call("GET", f"/subjects/{topic}-value/versions/latest")
        assert latest["id"] == schema_id


def _changes(run: Run) -> list[dict[str, Any]]:
    codec = Codec.load().registered(run.registry, {})  # resolves writer schemas by id
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    out = []
    for rec in run.changed_raw:
        change = codec.decode(codec.score_changed, rec.value)
        for name in ("occurred_at", "emitted_at"):
            change[name] = (change[name] - epoch) // dt.timedelta(milliseconds=1)
        out.append(change)
    return out


def test_framed_inputs_of_both_schema_versions_are_scored_as_offline(
    run: Run, tmp_path: Path
) -> None:
    finals = final_values(exactly_once(_changes(run)))
    ours = {key: value for key, value in finals.items() if key[2].startswith("sr-")}
    expected = offline_finals(run.service.plan, run.sent, tmp_path)
    # the offline scorer lists scores that never changed (value 0); the worker publishes none
    assert ours == {key: value for key, value in expected.items() if value or key in ours}
    # pricing 30 + any-page 1, then features 10 + any-page 1 (the v2 record)
    assert ours[(None, "contact", "sr-1", "engagement")] == 42
    # any-page 1 (v2), features 10 + any-page 1 (v1), the JSON email open: engaged 10
    assert ours[(None, "contact", "sr-2", "engagement")] == 22
    # pricing 30 + any-page 1, written with the schema before the rename: scored for its tenant
    assert ours[("acme", "contact", "sr-4", "engagement")] == 31
    assert not any(key[2] == "sr-3" for key in finals)  # both bad records were not scored


def test_the_demo_traffic_was_framed_and_scored(run: Run) -> None:
    assert "published 300 records" in run.demo_output
    changes = _changes(run)
    assert any(c["entity_id"].startswith(("c-", "d-")) for c in changes)


def test_unknown_schema_id_and_unframed_value_are_dead_letters_with_reasons(run: Run) -> None:
    letters = {}
    for rec in run.dead:
        headers = {k: v.decode() for k, v in rec.headers}
        letters[headers["leadscore.error.class"]] = headers["leadscore.error.reason"]
    assert len(run.dead) == 2, letters
    assert letters["UnknownSchemaId"] == f"schema id {UNKNOWN_ID} is not in the registry"
    assert letters["BadMagicByte"].startswith("first byte is 14, not the magic byte 0 of the "
                                              "registry framing")  # fmt: skip
    assert run.alive


def test_an_unreachable_registry_stops_the_worker_at_start_up(
    bootstrap: str, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}/apis/ccompat/v6"
    service = Service(bootstrap, f"srx{int(time.time())}", tmp_path,
                      extra={"LEADSCORE_SCHEMA_REGISTRY_URL": url})  # fmt: skip
    env = {**_without_settings(os.environ), **service.env("w", free_port())}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        f"leadscore worker: LEADSCORE_SCHEMA_REGISTRY_URL: the schema registry at {url} "
    ), lines[0]


class Gate:
    """A TCP forwarder to the registry that can refuse connections: a registry outage."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port, self.open = host, port, True

    async def start(self) -> asyncio.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def test_a_registry_outage_aborts_and_retries_instead_of_dead_lettering(
    registry_url: str, bootstrap: str, tmp_path: Path
) -> None:
    """The worker reaches the registry through a gate that is closed while a new id comes in.

    It cannot fetch the writer schema: it aborts and retries, dead-letters nothing, and scores the
    record once the gate opens again.
    """
    asyncio.run(_outage(registry_url, bootstrap, tmp_path))


async def _outage(registry_url: str, bootstrap: str, root: Path) -> None:
    parts = urllib.parse.urlsplit(registry_url)
    gate = Gate(parts.hostname or "127.0.0.1", parts.port or 80)
    server = await gate.start()
    gated = registry_url.replace(parts.netloc, f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
    service = Service(bootstrap, f"sro{int(time.time())}", root, partitions=1,
                      extra={"LEADSCORE_SCHEMA_REGISTRY_URL": gated})  # fmt: skip
    registry = HttpRegistry(registry_url, timeout_s=10)
    worker = service.worker("w1").start()
    try:
        await worker.wait_ready(timeout_s=120)
        subject = f"{service.topic(Source.PAGE_VISITS)}-value"
        v3 = json.loads(schema_text("page_visit"))  # a version only this test registers
        v3["fields"].append({"name": "outage", "type": ["null", "string"], "default": None})
        v3_id = registry.register(subject, compact(v3))
        gate.open = False
        record = visit("sro-e1", "sro-1", "https://x.io/pricing", at(5), outage="yes")
        await service.produce([(Source.PAGE_VISITS, framed(v3, record, v3_id))])
        deadline = time.monotonic() + 60
        while "aborting, retrying" not in worker.tail(200) and time.monotonic() < deadline:
            worker.assert_alive()
            await asyncio.sleep(0.25)
        await asyncio.sleep(2)  # a few more attempts
        gate.open = True
        await service.wait_drained(timeout_s=120)
        assert worker.tail(400).count("aborting, retrying in 1 s") >= 2, worker.tail()
        assert await service.read_all(service.dead) == []
        changes = await service.read_all(service.changed)
        assert changes, "the record was not scored after the registry came back"
        worker.assert_alive()
    finally:
        if worker.exited() is None:
            worker.terminate()
        service.stop_all()
        server.close()


def test_the_client_and_watch_read_the_registry_wire_format(
    registry_url: str, bootstrap: str
) -> None:
    """Downstream readers (streams.client, leadscore watch) resolve framed score changes."""
    from confluent_kafka import Producer

    from streams.client import ScoreChanges
    from tests.integration.score_changes import changes, new_topic

    topic = new_topic(bootstrap)
    plain = Codec.load()
    codec = plain.registered(HttpRegistry(registry_url, timeout_s=5),
                             {f"{topic}-value": plain.score_changed})  # fmt: skip
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
    for rec in changes(3):
        value = codec.encode(codec.score_changed, rec)
        assert value[0] == 0  # framed: magic byte, then the schema id
        producer.produce(topic, value)
    assert producer.flush(30) == 0
    with ScoreChanges(bootstrap, f"g-{topic}", topic=topic, registry_url=registry_url,
                      idle_timeout_s=3) as stream:  # fmt: skip
        assert [c.seq for c in stream] == [1, 2, 3] and stream.undecodable == 0
    env = {
        **_without_settings(os.environ),
        "LEADSCORE_BOOTSTRAP_SERVERS": bootstrap,
        "LEADSCORE_TOPIC_SCORE_CHANGED": topic,
        "LEADSCORE_SCHEMA_REGISTRY_URL": registry_url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "watch", "--json", "--from-beginning",
         "--idle-exit", "3"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["seq"] for line in done.stdout.splitlines()] == [1, 2, 3]
