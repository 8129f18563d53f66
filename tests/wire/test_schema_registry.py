"""The Confluent wire format with a schema registry: framing, writer schemas by id, dead letters.

An in-memory registry stands in for the real one here (the end-to-end test against Apicurio
Registry is ``tests/integration/test_schema_registry.py``); Avro itself is real fastavro. The
HTTP client is tested against a local ``http.server`` answering like a registry.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
import socket
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import fastavro
import pytest

from streams.client import ScoreChanged
from streams.engine.ingest import Ingest, Routed
from streams.errors import SettingsError, StartupError
from streams.scoring import Event, parse_input
from streams.settings import load_settings
from streams.wire.codec import (
    MISS_TTL_S,
    Codec,
    DecodeError,
    RegistryError,
    SchemaNotFound,
    Source,
    frame_header,
    schema_text,
)
from streams.wire.deadletter import DeadLetter
from streams.wire.registry import HttpRegistry, registered_codec
from tests.commands.test_client import record
from tests.wire.test_avro_interop import old_schema

T0 = dt.datetime(2026, 3, 29, 9, 30, tzinfo=dt.UTC)
VISIT = {
    "event_id": "e-1",
    "tenant_id": None,
    "occurred_at": T0,
    "contact_id": "c-1",
    "deal_id": None,
    "url": "https://x.io/pricing",
    "referrer": None,
    "title": "Pricing",
    "session_id": None,
}


class FakeRegistry:
    """A registry in memory: ids by schema text (the same text, the same id), as real ones do."""

    def __init__(self, first_id: int = 1) -> None:
        self.ids: dict[str, int] = {}
        self.types: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.lookups: list[int] = []
        self.next_id = first_id
        self.down = False

    def register(self, subject: str, schema: str, schema_type: str = "AVRO") -> int:
        if self.down:
            raise RegistryError("POST /subjects: connection refused")
        if schema not in self.ids:
            self.ids[schema] = self.next_id
            self.types[self.next_id] = schema_type
            self.next_id += 1
        schema_id = self.ids[schema]
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id

    def schema(self, schema_id: int) -> tuple[str, str]:
        self.lookups.append(schema_id)
        if self.down:
            raise RegistryError("GET /schemas/ids: connection refused")
        for text, known in self.ids.items():
            if known == schema_id:
                return self.types[schema_id], text
        raise SchemaNotFound(f"schema id {schema_id} not found")


def evolved(stem: str, **extra_field: Any) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_text(stem))
    schema["fields"].append(extra_field)
    return schema


def write(schema: Any, record: dict[str, Any], schema_id: int) -> bytes:
    buf = io.BytesIO()
    buf.write(frame_header(schema_id))
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return buf.getvalue()


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(first_id=41)


@pytest.fixture
def codec(registry: FakeRegistry) -> Codec:
    plain = Codec.load()
    return plain.registered(
        registry,
        {
            "score-changed-value": plain.score_changed,
            "scores-value": plain.score,
            "page-visits-value": plain.inputs[Source.PAGE_VISITS],
        },
    )


# ----- framing of what we write ----------------------------------------------------------------


def test_outputs_carry_the_magic_byte_and_the_id_registered_under_the_topic_subject(
    codec: Codec, registry: FakeRegistry
) -> None:
    score = {
        "tenant_id": None, "entity": "contact", "entity_id": "c-1", "score": "engagement",
        "value": 5, "seq": 2, "categories": {"web": 5}, "thresholds_reached": [],
        "updated_at": T0, "plan_version": "v1",
    }  # fmt: skip
    value = codec.encode(codec.score, score)
    [score_id] = registry.subjects["scores-value"]
    assert value[:5] == b"\x00" + score_id.to_bytes(4, "big")
    plain = Codec.load()
    assert plain.decode(plain.score, value[5:]) == plain.decode(
        plain.score, plain.encode(plain.score, score)
    )
    assert codec.decode(codec.score, value) == plain.decode(plain.score, value[5:])


def test_ids_are_the_registrys_and_differ_per_schema(registry: FakeRegistry, codec: Codec) -> None:
    ids = {subject: versions[0] for subject, versions in registry.subjects.items()}
    assert set(ids) == {"score-changed-value", "scores-value", "page-visits-value"}
    assert len(set(ids.values())) == 3
    assert min(ids.values()) == 41
    assert registry.ids[schema_text("score_changed")] == ids["score-changed-value"]


def test_without_a_registry_values_stay_plain_avro() -> None:
    plain = Codec.load()
    assert plain.framing is None
    value = plain.encode(plain.inputs[Source.PAGE_VISITS], VISIT)
    assert value == fastavro_plain(VISIT)
    assert plain.decode_input(Source.PAGE_VISITS, value, fmt="avro")["event_id"] == "e-1"


def fastavro_plain(record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(json.loads(schema_text("page_visit"))),
                               record)  # fmt: skip
    return buf.getvalue()


# ----- inputs: writer schemas by id ------------------------------------------------------------


def test_an_input_written_with_our_schema_decodes_and_the_schema_is_fetched_once(
    codec: Codec, registry: FakeRegistry
) -> None:
    [schema_id] = registry.subjects["page-visits-value"]
    value = write(json.loads(schema_text("page_visit")), VISIT, schema_id)
    for _ in range(3):
        record = codec.decode_input(Source.PAGE_VISITS, value, fmt="avro")
        assert record["url"] == "https://x.io/pricing"
        assert record["occurred_at"] == int(T0.timestamp() * 1000)
        assert record["type"] == "page_visit"
    assert registry.lookups == [schema_id]
    assert codec.framing is not None
    # our own schema comes back from the registry: read without resolution (the same object)
    assert codec.framing.writers[schema_id] is codec.inputs[Source.PAGE_VISITS]


def test_a_new_optional_field_registered_as_a_new_version_still_decodes(
    codec: Codec, registry: FakeRegistry
) -> None:
    v2 = evolved("page_visit", name="utm_source", type=["null", "string"], default=None)
    v2_id = registry.register("page-visits-value", json.dumps(v2))
    assert registry.subjects["page-visits-value"][-1] == v2_id
    value = write(v2, {**VISIT, "event_id": "e-2", "utm_source": "newsletter"}, v2_id)
    record = codec.decode_input(Source.PAGE_VISITS, value, fmt="avro")
    assert record["event_id"] == "e-2"
    assert "utm_source" not in record  # our reader schema does not know it
    assert record["title"] == "Pricing"


def test_an_older_writer_without_an_optional_field_gets_the_default(
    codec: Codec, registry: FakeRegistry
) -> None:
    old: dict[str, Any] = json.loads(schema_text("page_visit"))
    old["fields"] = [f for f in old["fields"] if f["name"] != "session_id"]
    old_id = registry.register("page-visits-value", json.dumps(old))
    record = {k: v for k, v in VISIT.items() if k != "session_id"}
    decoded = codec.decode_input(Source.PAGE_VISITS, write(old, record, old_id), fmt="avro")
    assert decoded["session_id"] is None
    assert decoded["contact_id"] == "c-1"


def test_an_old_writer_naming_the_tenant_account_id_resolves_through_the_alias(
    codec: Codec, registry: FakeRegistry
) -> None:
    """A producer still on the schema before the rename (docs/migration.md): its writer schema,
    fetched by id, resolves ``account_id`` to our ``tenant_id`` through the alias."""
    old_id = registry.register("page-visits-value", json.dumps(old_schema("page_visit")))
    record = {**{k: v for k, v in VISIT.items() if k != "tenant_id"}, "account_id": "acme"}
    decoded = codec.decode_input(Source.PAGE_VISITS, write(old_schema("page_visit"), record,
                                                           old_id), fmt="avro")  # fmt: skip
    assert decoded["tenant_id"] == "acme" and "account_id" not in decoded
    item = parse_input(decoded)
    assert type(item) is Event and item.tenant_id == "acme"


def test_a_consumer_resolving_an_old_score_change_gets_its_tenant(
    codec: Codec, registry: FakeRegistry
) -> None:
    """``streams.client`` in registry mode reading a change written before the rename."""
    old_id = registry.register("score-changed-value", json.dumps(old_schema("score_changed")))
    change = {**record(), "account_id": "acme"}
    del change["tenant_id"]
    value = write(old_schema("score_changed"), change, old_id)
    reader = Codec.load().registered(registry, {})  # as ScoreChanges(registry_url=...) builds it
    assert ScoreChanged.from_record(reader.decode(reader.score_changed, value)).tenant_id == "acme"


def test_a_reader_still_on_the_old_schema_loses_the_tenant_of_new_records(
    codec: Codec, registry: FakeRegistry
) -> None:
    """Why docs/migration.md asks registry-mode readers to upgrade their reader schema first: an
    old reader schema has no alias for ``tenant_id``, so resolution gives its default, null."""
    value = codec.encode(codec.score_changed, record(tenant_id="acme"))
    writer = registry.schema(int.from_bytes(value[1:5], "big"))[1]
    old = fastavro.parse_schema(old_schema("score_changed"))
    read = fastavro.schemaless_reader(io.BytesIO(value[5:]), fastavro.parse_schema(
        json.loads(writer)), old)  # fmt: skip
    assert read["account_id"] is None


def decode_error(codec: Codec, value: bytes, source: Source = Source.PAGE_VISITS) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        codec.decode_input(source, value, fmt="avro")
    return caught.value


def test_a_plain_avro_value_is_refused_for_its_magic_byte(codec: Codec) -> None:
    plain = Codec.load()
    error = decode_error(codec, b"\x02" + plain.encode(plain.inputs[Source.PAGE_VISITS], VISIT))
    assert error.error_class == "BadMagicByte"
    assert "magic byte 0" in error.reason


def test_a_value_shorter_than_the_frame_is_refused(codec: Codec) -> None:
    error = decode_error(codec, b"\x00\x00\x01")
    assert error.error_class == "NotFramed"


def test_an_unknown_schema_id_is_a_dead_letter_reason_and_is_asked_again_after_a_while(
    registry: FakeRegistry,
) -> None:
    now = [1000.0]
    plain = Codec.load()
    codec = plain.registered(registry, {})
    assert codec.framing is not None
    codec.framing.clock = lambda: now[0]
    value = write(json.loads(schema_text("page_visit")), VISIT, 9999)
    for _ in range(3):
        error = decode_error(codec, value)
        assert error.error_class == "UnknownSchemaId"
        assert error.reason == "schema id 9999 is not in the registry"
    assert registry.lookups == [9999]  # misses are remembered...
    now[0] += MISS_TTL_S + 1
    decode_error(codec, value)
    assert registry.lookups == [9999, 9999]  # ...for a while only


def test_an_incompatible_writer_schema_is_a_dead_letter_reason(
    codec: Codec, registry: FakeRegistry
) -> None:
    bad: dict[str, Any] = json.loads(schema_text("page_visit"))
    bad["fields"][0]["type"] = "long"  # event_id: string -> long
    bad_id = registry.register("other-value", json.dumps(bad))
    error = decode_error(codec, write(bad, {**VISIT, "event_id": 7}, bad_id))
    assert error.error_class == "IncompatibleSchema"
    assert f"writer schema id {bad_id} cannot be read as io.leadscore.PageVisit" in error.reason


def test_a_writer_schema_of_another_record_is_incompatible(
    codec: Codec, registry: FakeRegistry
) -> None:
    purchase_id = registry.register("purchases-value", schema_text("purchase"))
    sample = {
        "event_id": "e-9", "tenant_id": None, "occurred_at": T0, "contact_id": "c-1",
        "deal_id": None, "order_id": "o-1", "amount": Decimal("12.500000"), "currency": "EUR",
    }  # fmt: skip
    error = decode_error(codec, write(json.loads(schema_text("purchase")), sample, purchase_id))
    assert error.error_class == "IncompatibleSchema"


def test_a_schema_that_is_not_avro_is_refused(codec: Codec, registry: FakeRegistry) -> None:
    json_id = registry.register("x-value", '{"type": "object"}', schema_type="JSON")
    error = decode_error(codec, frame_header(json_id) + b"{}")
    assert error.error_class == "UnsupportedSchema"
    assert "JSON schema, not Avro" in error.reason


def test_a_registry_that_cannot_be_asked_is_not_a_decode_error(
    codec: Codec, registry: FakeRegistry
) -> None:
    v2 = evolved("page_visit", name="utm_source", type=["null", "string"], default=None)
    v2_id = registry.register("page-visits-value", json.dumps(v2))
    registry.down = True
    value = write(v2, {**VISIT, "utm_source": None}, v2_id)
    with pytest.raises(RegistryError) as caught:
        codec.decode_input(Source.PAGE_VISITS, value, fmt="avro")
    assert not isinstance(caught.value, SchemaNotFound)
    registry.down = False  # nothing was remembered: the next try asks again and succeeds
    assert codec.decode_input(Source.PAGE_VISITS, value, fmt="avro")["event_id"] == "e-1"


def test_json_topics_stay_json(codec: Codec) -> None:
    value = json.dumps({**VISIT, "occurred_at": "2026-03-29T09:30:00Z"}).encode()
    record = codec.decode_input(Source.PAGE_VISITS, value, fmt="json")
    assert record["event_id"] == "e-1"


def test_ingest_turns_each_framing_error_into_a_dead_letter_with_its_class(
    codec: Codec, registry: FakeRegistry
) -> None:
    ingest = Ingest(codec, {"pv": Source.PAGE_VISITS}, {"pv": "avro"})
    [schema_id] = registry.subjects["page-visits-value"]
    good = write(json.loads(schema_text("page_visit")), VISIT, schema_id)
    cases = {
        "UnknownSchemaId": frame_header(123456) + good[5:],
        "BadMagicByte": b"\x01" + good[1:],
        "NotFramed": b"\x00",
    }
    for error_class, value in cases.items():
        result = ingest.handle(topic="pv", partition=0, offset=1, key=b"k", value=value,
                               appended_ms=0, now_ms=0)  # fmt: skip
        assert isinstance(result, DeadLetter), error_class
        assert result.error_class == error_class
        assert result.value == value  # the original bytes, unchanged
    arrival = int(T0.timestamp() * 1000)  # (an event far ahead of its arrival is refused)
    routed = ingest.handle(topic="pv", partition=0, offset=2, key=b"k", value=good,
                           appended_ms=arrival, now_ms=arrival)  # fmt: skip
    assert isinstance(routed, Routed)


# ----- settings and start-up -------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("LEADSCORE_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_env")
def test_settings_refuse_a_url_that_is_not_http_and_half_of_basic_auth() -> None:
    with pytest.raises(SettingsError, match="LEADSCORE_SCHEMA_REGISTRY_URL"):
        load_settings(schema_registry_url="file:///etc/passwd")
    with pytest.raises(SettingsError, match="LEADSCORE_SCHEMA_REGISTRY_PASSWORD go together"):
        load_settings(schema_registry_url="http://127.0.0.1:1", schema_registry_username="u")
    settings = load_settings()
    assert settings.schema_registry_url is None
    assert registered_codec(settings).framing is None


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.usefixtures("clean_env")
def test_an_unreachable_registry_stops_start_up_in_one_line_naming_variable_and_url() -> None:
    url = f"http://127.0.0.1:{closed_port()}/apis/ccompat/v6"
    settings = load_settings(schema_registry_url=url, schema_registry_timeout_s=2)
    with pytest.raises(StartupError) as caught:
        registered_codec(settings)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"LEADSCORE_SCHEMA_REGISTRY_URL: the schema registry at {url} ")
    assert "refused" in message.lower()


class _Handler(BaseHTTPRequestHandler):
    """Answers like a registry that refuses every new schema as incompatible."""

    seen: list[tuple[str, str, str | None, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.append(("POST", self.path, self.headers.get("Authorization"), body))
        self._answer(409, {"error_code": 409, "message": "Schema being registered is incompatible"})

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path, self.headers.get("Authorization"), b""))
        if self.path == "/schemas/ids/7":
            self._answer(200, {"schema": schema_text("page_visit")})
        else:
            self._answer(404, {"error_code": 40403, "message": "Schema not found"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_registry() -> Iterator[str]:
    _Handler.seen = []
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.usefixtures("clean_env")
def test_a_refused_schema_stops_start_up_and_basic_auth_is_sent_but_never_shown(
    http_registry: str,
) -> None:
    settings = load_settings(
        schema_registry_url=http_registry, schema_registry_username="svc",
        schema_registry_password="s3cret", topic_score_changed="sc",  # noqa: S106
    )  # fmt: skip
    with pytest.raises(StartupError) as caught:
        registered_codec(settings)
    message = str(caught.value)
    assert "\n" not in message and "s3cret" not in message
    assert "POST" in message and "/subjects/sc-value/versions" in message
    assert "HTTP 409: Schema being registered is incompatible (error_code 409)" in message
    method, path, auth, body = _Handler.seen[0]
    assert (method, path) == ("POST", "/subjects/sc-value/versions")
    assert auth == "Basic " + base64.b64encode(b"svc:s3cret").decode()
    assert json.loads(body) == {"schema": schema_text("score_changed")}


def test_the_http_client_fetches_schemas_by_id_and_maps_404_to_not_found(
    http_registry: str,
) -> None:
    client = HttpRegistry(http_registry + "/", timeout_s=2)
    assert client.schema(7) == ("AVRO", schema_text("page_visit"))
    with pytest.raises(SchemaNotFound, match="Schema not found"):
        client.schema(8)
