"""Avro and JSON codecs for the service's topics. Schemas are parsed once, when a Codec is built.

Wire format: plain Avro binary datums (no registry framing), one record per Kafka value, with the
writer schema of ``schemas/<record>.avsc``. Input topics may be switched to JSON one by one
(setting ``LEADSCORE_JSON_TOPICS``); outputs are always Avro.

Decoding never raises on bad bytes: it raises :class:`DecodeError` with a readable reason, which the
ingest stage turns into a dead letter.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import fastavro

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
MAX_VALUE_BYTES = 1024 * 1024
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Source(Enum):
    """The input streams of SPEC §2; the value is the schema file stem."""

    PAGE_VISITS = "page_visit"
    EMAIL_EVENTS = "email_event"
    PURCHASES = "purchase"
    DEAL_STAGE_CHANGES = "deal_stage_change"
    CONTACT_PROFILES = "contact_profile"
    SCORE_ADJUSTMENTS = "score_adjustment"


_FIXED_TYPE = {
    Source.PAGE_VISITS: "page_visit",
    Source.PURCHASES: "purchase",
    Source.DEAL_STAGE_CHANGES: "deal.stage_changed",
    Source.CONTACT_PROFILES: "contact.updated",
    Source.SCORE_ADJUSTMENTS: "adjustment",
}


class DecodeError(Exception):
    """A record that cannot be decoded; ``reason`` is for the dead-letter headers."""

    def __init__(self, error_class: str, reason: str) -> None:
        super().__init__(reason)
        self.error_class = error_class
        self.reason = reason


def load_schema(stem: str) -> Any:
    with (SCHEMA_DIR / f"{stem}.avsc").open(encoding="utf-8") as fh:
        return fastavro.parse_schema(json.load(fh))


@dataclass(frozen=True, slots=True)
class Codec:
    """Parsed schemas for every topic, built once at start-up."""

    inputs: Mapping[Source, Any]
    score_changed: Any
    score: Any

    @classmethod
    def load(cls) -> Codec:
        return cls(
            inputs={source: load_schema(source.value) for source in Source},
            score_changed=load_schema("score_changed"),
            score=load_schema("score"),
        )

    def decode_input(self, source: Source, value: bytes | None, *, fmt: str) -> dict[str, Any]:
        """Bytes of an input topic -> a plain dict with SPEC field names and a ``type`` field."""
        if value is None:
            raise DecodeError("EmptyValue", "the record has no value (tombstone)")
        if len(value) > MAX_VALUE_BYTES:
            raise DecodeError("Oversized", f"value of {len(value)} bytes exceeds {MAX_VALUE_BYTES}")
        record = self._decode_json(value) if fmt == "json" else self._decode_avro(source, value)
        return _normalise(source, record)

    def _decode_avro(self, source: Source, value: bytes) -> dict[str, Any]:
        buf = io.BytesIO(value)
        try:
            record = fastavro.schemaless_reader(buf, self.inputs[source], None)
        except EOFError:
            raise DecodeError("TruncatedAvro", "the Avro datum ended early") from None
        except IndexError:
            raise DecodeError(
                "InvalidAvro", "an enum symbol or union branch index is out of range: wrong schema?"
            ) from None
        except Exception as exc:  # fastavro raises many types on garbage; all mean "not decodable"
            raise DecodeError("InvalidAvro", f"{type(exc).__name__}: {exc}"[:500]) from None
        if buf.tell() != len(value):
            raise DecodeError(
                "InvalidAvro",
                f"{len(value) - buf.tell()} trailing bytes after the datum: wrong schema?",
            )
        if not isinstance(record, dict):
            raise DecodeError("InvalidAvro", "the datum is not a record")
        return record

    @staticmethod
    def _decode_json(value: bytes) -> dict[str, Any]:
        try:
            record = json.loads(value, parse_float=Decimal, parse_int=int)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DecodeError("InvalidJson", str(exc)[:500]) from None
        except RecursionError:
            raise DecodeError("InvalidJson", "the JSON value is nested too deeply") from None
        except ValueError as exc:  # e.g. an integer past Python's digit limit
            raise DecodeError("InvalidJson", str(exc)[:500]) from None
        if not isinstance(record, dict):
            raise DecodeError("InvalidJson", "the JSON value is not an object")
        return record

    def encode(self, schema: Any, record: Mapping[str, Any]) -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, record)
        return buf.getvalue()

    def decode(self, schema: Any, value: bytes) -> dict[str, Any]:
        record = fastavro.schemaless_reader(io.BytesIO(value), schema, None)
        if not isinstance(record, dict):
            raise DecodeError("InvalidAvro", "the datum is not a record")
        return record


def _normalise(source: Source, record: dict[str, Any]) -> dict[str, Any]:
    """Set ``type`` from the topic (and ``action`` for emails); timestamps to epoch millis."""
    if source is Source.EMAIL_EVENTS:
        action = record.get("action")
        record["type"] = f"email.{action}" if isinstance(action, str) else None
    else:
        record["type"] = _FIXED_TYPE[source]
    occurred = record.get("occurred_at")
    if isinstance(occurred, dt.datetime):
        record["occurred_at"] = (occurred - _EPOCH) // dt.timedelta(milliseconds=1)
    return record
