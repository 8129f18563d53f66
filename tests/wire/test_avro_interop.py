"""The bytes we write with fastavro decode with the official ``avro`` package, and the reverse.

The official package is the interoperability reference: any Avro consumer in another language
reads what it reads.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import fastavro
import pytest

from streams.wire.codec import SCHEMA_DIR, Codec, DecodeError, Source

T0 = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)

COMMON = {"event_id": "e-1", "tenant_id": "acme", "occurred_at": T0, "contact_id": "c-1"}
SAMPLES: dict[str, dict[str, Any]] = {
    "page_visit": {
        **COMMON,
        "deal_id": None,
        "url": "https://x.io/pricing",
        "referrer": None,
        "title": "Pricing",
        "session_id": "s-9",
    },
    "email_event": {
        **COMMON,
        "deal_id": None,
        "action": "click",
        "campaign_id": "cmp-1",
        "message_id": None,
        "link_url": "https://x.io/demo",
    },
    "purchase": {
        **COMMON,
        "deal_id": "d-1",
        "order_id": "o-1",
        "amount": Decimal("1234.560000"),
        "currency": "EUR",
    },
    "deal_stage_change": {
        **COMMON,
        "deal_id": "d-1",
        "pipeline": "sales",
        "from_stage": "demo",
        "to_stage": "proposal",
        "status": "open",
        "value": Decimal("5000.000000"),
    },
    "contact_profile": {
        **COMMON,
        "deal_id": None,
        "attributes": {
            "industry": "saas",
            "employees": 120,
            "arr": 1.5,
            "customer": False,
            "region": None,
        },
    },
    "score_adjustment": {
        "command_id": "cmd-1",
        "tenant_id": None,
        "occurred_at": T0,
        "entity": "contact",
        "entity_id": "c-1",
        "score": "engagement",
        "op": "add",
        "points": 15,
        "expires_after": "30d",
        "reason": "webinar",
    },
    "score_changed": {
        "change_id": "7f1c",
        "tenant_id": "acme",
        "entity": "contact",
        "entity_id": "c-1",
        "score": "engagement",
        "seq": 3,
        "old_value": 90,
        "new_value": 120,
        "delta": 30,
        "cause": "rule",
        "rule_ids": ["pricing-page"],
        "source_event_id": "e-1",
        "occurred_at": T0,
        "emitted_at": T0,
        "thresholds": [{"name": "mql", "direction": "up"}],
        "plan_version": "v1",
        "tier_before": "warm",
        "tier_after": "hot",
    },
    "score": {
        "tenant_id": None,
        "entity": "deal",
        "entity_id": "d-1",
        "score": "deal-health",
        "value": 40,
        "seq": 2,
        "categories": {"fit": 25},
        "thresholds_reached": ["hot"],
        "updated_at": T0,
        "plan_version": "v1",
        "tier": "hot",
    },
}


def _official(stem: str) -> avro.schema.Schema:
    return avro.schema.parse((SCHEMA_DIR / f"{stem}.avsc").read_text(encoding="utf-8"))


def test_every_schema_has_a_sample() -> None:
    assert {p.stem for p in Path(SCHEMA_DIR).glob("*.avsc")} == set(SAMPLES)


@pytest.mark.parametrize("stem", sorted(SAMPLES))
def test_fastavro_bytes_decode_with_official_avro(stem: str) -> None:
    parsed = fastavro.parse_schema(json.loads((SCHEMA_DIR / f"{stem}.avsc").read_text()))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, SAMPLES[stem])
    reader = avro.io.DatumReader(_official(stem))
    decoded = reader.read(avro.io.BinaryDecoder(io.BytesIO(buf.getvalue())))
    assert decoded == SAMPLES[stem]


@pytest.mark.parametrize("stem", sorted(SAMPLES))
def test_official_avro_bytes_decode_with_fastavro(stem: str) -> None:
    out = io.BytesIO()
    avro.io.DatumWriter(_official(stem)).write(SAMPLES[stem], avro.io.BinaryEncoder(out))
    parsed = fastavro.parse_schema(json.loads((SCHEMA_DIR / f"{stem}.avsc").read_text()))
    assert fastavro.schemaless_reader(io.BytesIO(out.getvalue()), parsed, None) == SAMPLES[stem]


def _avro(stem: str, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    avro.io.DatumWriter(_official(stem)).write(record, avro.io.BinaryEncoder(out))
    return out.getvalue()


def test_codec_normalises_type_and_time() -> None:
    codec = Codec.load()
    record = codec.decode_input(
        Source.EMAIL_EVENTS, _avro("email_event", SAMPLES["email_event"]), fmt="avro"
    )
    # email-events carry their type in `action`; timestamps become epoch millis.
    assert record["type"] == "email.click"
    assert record["occurred_at"] == 1774744200000


@pytest.mark.parametrize(
    ("value", "error_class"),
    [
        (b"", "TruncatedAvro"),  # nothing at all
        (b"\x06e-1", "TruncatedAvro"),  # a valid first field, then the datum stops
        (_avro("page_visit", SAMPLES["page_visit"]) + b"\x00\x01", "InvalidAvro"),  # trailing bytes
        (None, "EmptyValue"),  # a tombstone
    ],
)
def test_codec_rejects_bad_avro_with_a_reason(value: bytes | None, error_class: str) -> None:
    with pytest.raises(DecodeError) as caught:
        Codec.load().decode_input(Source.PAGE_VISITS, value, fmt="avro")
    assert caught.value.error_class == error_class


def test_codec_json_keeps_decimals_exact() -> None:
    value = (
        b'{"event_id": "e", "occurred_at": 5, "contact_id": "c", "order_id": "o", '
        b'"amount": 0.1, "currency": "EUR"}'
    )
    record = Codec.load().decode_input(Source.PURCHASES, value, fmt="json")
    # 0.1 parsed as Decimal, never as a binary float.
    assert record["amount"] == Decimal("0.1") and record["type"] == "purchase"


# ----- the tenant's old field name (docs/migration.md) --------------------------------------


def old_schema(stem: str) -> dict[str, Any]:
    """A schema as it was before the rename: the tenant field named ``account_id``, no alias."""
    doc = json.loads((SCHEMA_DIR / f"{stem}.avsc").read_text(encoding="utf-8"))
    for f in doc["fields"]:
        if f["name"] == "tenant_id":
            f["name"] = "account_id"
            del f["aliases"]
    return doc


def _old_sample(stem: str) -> dict[str, Any]:
    sample = dict(SAMPLES[stem])
    sample["account_id"] = sample.pop("tenant_id")
    return sample


def test_every_schema_names_the_tenant_tenant_id_with_the_old_name_as_alias() -> None:
    for stem in SAMPLES:
        doc = json.loads((SCHEMA_DIR / f"{stem}.avsc").read_text(encoding="utf-8"))
        fields = {f["name"]: f for f in doc["fields"]}
        assert "account_id" not in fields, stem
        assert fields["tenant_id"]["aliases"] == ["account_id"], stem
        old = [f["name"] for f in old_schema(stem)["fields"]]
        assert old.index("account_id") == [f["name"] for f in doc["fields"]].index("tenant_id")


@pytest.mark.parametrize("stem", sorted(SAMPLES))
def test_old_writers_bytes_are_ours_and_resolve_to_the_tenant(stem: str) -> None:
    """Without a registry the bytes are all there is: an old producer's record is the same bytes.
    With its writer schema (a registry), fastavro resolves the alias; a reader still on the old
    schema (the official library here) reads our new records as before."""
    old, new = (
        fastavro.parse_schema(old_schema(stem)),
        fastavro.parse_schema(json.loads((SCHEMA_DIR / f"{stem}.avsc").read_text())),
    )
    old_bytes, new_bytes = io.BytesIO(), io.BytesIO()
    fastavro.schemaless_writer(old_bytes, old, _old_sample(stem))
    fastavro.schemaless_writer(new_bytes, new, SAMPLES[stem])
    assert old_bytes.getvalue() == new_bytes.getvalue()
    resolved = fastavro.schemaless_reader(io.BytesIO(old_bytes.getvalue()), old, new)
    assert resolved == SAMPLES[stem]
    official = avro.io.DatumReader(avro.schema.parse(json.dumps(old_schema(stem))))
    decoded = official.read(avro.io.BinaryDecoder(io.BytesIO(new_bytes.getvalue())))
    assert decoded == _old_sample(stem)  # a reader still on the old schema reads our records


def test_the_official_python_library_does_not_resolve_field_aliases() -> None:
    """Pinned, as docs/migration.md warns: ``avro`` (Python) resolving an old writer schema
    against the new reader schema ignores the alias and gives the default, null. Our codec
    (fastavro) and Java readers resolve it; a Python ``avro`` reader upgrades with both."""
    out = io.BytesIO()
    old = avro.schema.parse(json.dumps(old_schema("score_changed")))
    avro.io.DatumWriter(old).write(_old_sample("score_changed"), avro.io.BinaryEncoder(out))
    reader = avro.io.DatumReader(old, _official("score_changed"))
    assert reader.read(avro.io.BinaryDecoder(io.BytesIO(out.getvalue())))["tenant_id"] is None


@pytest.mark.parametrize(
    ("stem", "source"),
    [("page_visit", Source.PAGE_VISITS), ("contact_profile", Source.CONTACT_PROFILES),
     ("score_adjustment", Source.SCORE_ADJUSTMENTS)],
)  # fmt: skip
def test_an_input_from_an_old_producer_is_scored_for_its_tenant(stem: str, source: Source) -> None:
    from streams.scoring.events import parse_input

    sample = {**_old_sample(stem), "account_id": "globex"}
    old_bytes = _avro_with(old_schema(stem), sample)
    item = parse_input(Codec.load().decode_input(source, old_bytes, fmt="avro"))
    assert item.tenant_id == "globex", item  # type: ignore[union-attr]


def test_a_contact_profile_keeps_its_account_id_attribute_apart_from_the_tenant() -> None:
    from streams.scoring.events import parse_input

    sample = {**SAMPLES["contact_profile"], "attributes": {"account_id": "initech"}}
    record = Codec.load().decode_input(
        Source.CONTACT_PROFILES, _avro("contact_profile", sample), fmt="avro"
    )
    item = parse_input(record)
    assert item.tenant_id == "acme"  # type: ignore[union-attr]  # the tenant
    assert item.fields["attributes"] == {"account_id": "initech"}  # type: ignore[union-attr]


def test_our_codec_still_encodes_a_dict_with_the_old_name() -> None:
    codec = Codec.load()
    value = codec.encode(codec.inputs[Source.PAGE_VISITS], _old_sample("page_visit"))
    assert value == _avro("page_visit", SAMPLES["page_visit"])


def _avro_with(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    avro.io.DatumWriter(avro.schema.parse(json.dumps(schema))).write(
        record, avro.io.BinaryEncoder(out)
    )
    return out.getvalue()
