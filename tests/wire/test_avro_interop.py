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

COMMON = {"event_id": "e-1", "account_id": "acme", "occurred_at": T0, "contact_id": "c-1"}
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
        "account_id": None,
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
        "account_id": "acme",
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
        "account_id": None,
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
