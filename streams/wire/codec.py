"""Avro and JSON codecs for the service's topics. Schemas are parsed once, when a Codec is built.

Wire format: plain Avro binary datums (no registry framing), one record per Kafka value, with the
writer schema of ``schemas/<record>.avsc``. Input topics may be switched to JSON one by one
(setting ``LEADSCORE_JSON_TOPICS``); outputs are always Avro.

With a schema registry (setting ``LEADSCORE_SCHEMA_REGISTRY_URL``, see ``streams.wire.registry``),
Avro values are in the Confluent wire format instead: the magic byte 0, the schema id (4 bytes,
big-endian), the datum. An input's writer schema is fetched by id from the registry (once per id)
and resolved against our reader schema, so producers may evolve their schemas compatibly;
outputs carry the id under which our schema is registered (:class:`Framing`).

The tenant field is ``tenant_id``, formerly ``account_id``: our schemas keep the old name as an
Avro alias, so a writer schema with ``account_id`` resolves (the binary encoding is the same).

Decoding never raises on bad bytes: it raises :class:`DecodeError` with a readable reason, which the
ingest stage turns into a dead letter.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import fastavro
from fastavro.read import SchemaResolutionError

from streams.scoring import ScoreChange, avro, avro_read
from streams.wire import jsonlimits

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
MAX_VALUE_BYTES = 1024 * 1024
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: The Confluent wire format: this byte, then the schema id as 4 bytes big-endian, then the datum.
MAGIC_BYTE = 0
FRAME_BYTES = 5
#: How long a schema id the registry did not know is remembered before it is asked again, s.
MISS_TTL_S = 30.0


class Source(Enum):
    """The input streams (docs/inputs.md); the value is the schema file stem."""

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


class RegistryError(Exception):
    """The schema registry refused a request or could not be reached; the message says which."""


class SchemaNotFound(RegistryError):
    """The registry has no schema with the id asked for."""


class Registry(Protocol):
    """What the codec needs of a schema registry (``streams.wire.registry.HttpRegistry``, or a
    fake)."""

    def register(self, subject: str, schema: str) -> int:
        """Register an Avro schema (JSON text) under ``subject``; its id (the same if known)."""
        ...

    def schema(self, schema_id: int) -> tuple[str, str]:
        """(schema type, schema text) of an id; raises :class:`SchemaNotFound` if unknown."""
        ...


def load_schema(stem: str) -> Any:
    return fastavro.parse_schema(json.loads(schema_text(stem)))


def schema_text(stem: str) -> str:
    """The schema of ``schemas/<stem>.avsc`` as compact JSON text (what is registered)."""
    with (SCHEMA_DIR / f"{stem}.avsc").open(encoding="utf-8") as fh:
        return json.dumps(json.load(fh), separators=(",", ":"))


def frame_header(schema_id: int) -> bytes:
    return bytes([MAGIC_BYTE]) + schema_id.to_bytes(4, "big")


@dataclass(slots=True)
class Framing:
    """The registry framing of one codec: ids of our schemas, and writer schemas by id (cached)."""

    registry: Registry
    #: full name of one of our schemas -> its 5-byte frame header
    headers: dict[str, bytes]
    #: our own schemas, as JSON and parsed: a writer schema equal to one of them is that one, so
    #: its records are read without schema resolution
    own: list[tuple[Any, Any]] = field(default_factory=list)
    writers: dict[int, Any] = field(default_factory=dict)
    #: schema id -> (when, the dead-letter reason): ids the registry did not resolve
    misses: dict[int, tuple[float, DecodeError]] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic

    def header(self, schema: Any) -> bytes:
        try:
            return self.headers[schema["name"]]
        except KeyError:
            raise ValueError(f"schema {schema.get('name')!r} is not registered") from None

    def writer(self, value: bytes) -> tuple[int, Any]:
        """(schema id, parsed writer schema) of a framed value; :class:`DecodeError` if none.

        Raises :class:`RegistryError` (not a decode error) when the registry cannot be asked:
        the record is fine, the caller must retry it later.
        """
        if len(value) < FRAME_BYTES:
            raise DecodeError(
                "NotFramed",
                f"{len(value)} bytes: too short for the registry framing (magic byte 0, "
                "4-byte schema id, datum)",
            )
        if value[0] != MAGIC_BYTE:
            raise DecodeError(
                "BadMagicByte",
                f"first byte is {value[0]}, not the magic byte 0 of the registry framing: "
                "a plain Avro or JSON value?",
            )
        schema_id = int.from_bytes(value[1:FRAME_BYTES], "big")
        writer = self.writers.get(schema_id)
        if writer is None:
            writer = self._fetch(schema_id)
        return schema_id, writer

    def _fetch(self, schema_id: int) -> Any:
        miss = self.misses.get(schema_id)
        if miss is not None and self.clock() - miss[0] < MISS_TTL_S:
            raise miss[1]
        try:
            kind, text = self.registry.schema(schema_id)
        except SchemaNotFound:
            error = DecodeError("UnknownSchemaId", f"schema id {schema_id} is not in the registry")
        else:
            if kind.upper() != "AVRO":
                error = DecodeError(
                    "UnsupportedSchema", f"schema id {schema_id} is a {kind} schema, not Avro"
                )
            else:
                try:
                    loaded = json.loads(text)
                    same = [parsed for doc, parsed in self.own if doc == loaded]
                    writer = same[0] if same else fastavro.parse_schema(loaded)
                except Exception as exc:  # a schema fastavro cannot parse (e.g. references)
                    error = DecodeError(
                        "InvalidWriterSchema",
                        f"schema id {schema_id}: {type(exc).__name__}: {exc}"[:500],
                    )
                else:
                    self.writers[schema_id] = writer
                    self.misses.pop(schema_id, None)
                    return writer
        self.misses[schema_id] = (self.clock(), error)
        raise error


@dataclass(frozen=True, slots=True)
class Codec:
    """Parsed schemas for every topic, built once at start-up."""

    inputs: Mapping[Source, Any]
    score_changed: Any
    score: Any
    #: full schema name -> the schema's JSON text (what is registered)
    texts: Mapping[str, str] = field(default_factory=dict)
    #: the registry framing; None: plain Avro datums
    framing: Framing | None = None
    #: writes ``score-changed`` datums without a dict (None: ``score_changed`` has another
    #: layout than ``streams.scoring.avro`` writes, and fastavro writes them)
    changes: avro.ChangeWriter | None = field(init=False, default=None, compare=False)
    #: whether ``streams.scoring.avro.write_score`` writes ``scores`` datums (its layout)
    scores_direct: bool = field(init=False, default=False, compare=False)
    #: each input schema without its timestamp logical types: a datum in our own schema is
    #: read with it, its ``occurred_at`` as the epoch millis it is (not a datetime made and
    #: turned back into millis by ``_normalise``; the same numbers, tested)
    raw_inputs: dict[Source, Any] = field(init=False, default_factory=dict, compare=False)

    #: readers of the inputs in our own schema straight into the dict fastavro makes (none
    #: for a schema with a field type they do not read: decimals)
    direct_inputs: dict[Source, avro_read.InputReader] = field(init=False, default_factory=dict,
                                                          compare=False)  # fmt: skip

    def __post_init__(self) -> None:
        for source, schema in self.inputs.items():
            raw: dict[str, Any] = fastavro.parse_schema(_without_timestamps(schema))  # type: ignore[assignment]
            self.raw_inputs[source] = raw
            reader = avro_read.input_reader(raw)
            if reader is not None:
                self.direct_inputs[source] = reader
        schema = self.score_changed
        if isinstance(schema, dict) and avro.matches(schema):
            writer = avro.ChangeWriter(avro.symbols(schema, "cause"),
                                       avro.symbols(schema, "thresholds"))  # fmt: skip
            object.__setattr__(self, "changes", writer)
        direct = isinstance(self.score, dict) and avro.matches(self.score, avro.SCORE_LAYOUT)
        object.__setattr__(self, "scores_direct", direct)

    @classmethod
    def load(cls) -> Codec:
        stems = [source.value for source in Source] + ["score_changed", "score"]
        schemas = {stem: load_schema(stem) for stem in stems}
        return cls(
            inputs={source: schemas[source.value] for source in Source},
            score_changed=schemas["score_changed"],
            score=schemas["score"],
            texts={schemas[stem]["name"]: schema_text(stem) for stem in stems},
        )

    def registered(self, registry: Registry, subjects: Mapping[str, Any]) -> Codec:
        """This codec in the registry framing, each of our schemas registered under its subject.

        ``subjects`` maps a subject (``<topic>-value``) to one of this codec's parsed schemas.
        Raises :class:`RegistryError` if the registry is unreachable or refuses a schema.
        """
        headers = {
            schema["name"]: frame_header(registry.register(subject, self.texts[schema["name"]]))
            for subject, schema in subjects.items()
        }
        own = [(json.loads(text), self._parsed(name)) for name, text in self.texts.items()]
        return replace(self, framing=Framing(registry, headers, own))

    def _parsed(self, name: str) -> Any:
        for schema in (*self.inputs.values(), self.score_changed, self.score):
            if schema["name"] == name:
                return schema
        raise KeyError(name)

    def decode_input(self, source: Source, value: bytes | None, *, fmt: str) -> dict[str, Any]:
        """Bytes of an input topic -> a plain dict with the field names of docs/inputs.md and a
        ``type`` field."""
        if value is None:
            raise DecodeError("EmptyValue", "the record has no value (tombstone)")
        if len(value) > MAX_VALUE_BYTES:
            raise DecodeError("Oversized", f"value of {len(value)} bytes exceeds {MAX_VALUE_BYTES}")
        record = self._decode_json(value) if fmt == "json" else self._decode_avro(source, value)
        return _normalise(source, record)

    def _decode_avro(self, source: Source, value: bytes) -> dict[str, Any]:
        buf = io.BytesIO(value)
        reader = self.inputs[source]
        writer, schema_id = reader, None
        if self.framing is not None:
            schema_id, writer = self.framing.writer(value)
            buf.seek(FRAME_BYTES)
        if writer is reader:  # our own schema: straight into the dict, timestamps as numbers
            direct = self.direct_inputs.get(source)
            if direct is not None:
                try:
                    return direct.read(value, buf.tell())
                except Exception:  # noqa: S110 - fastavro reads it, or says what is wrong
                    pass
        try:
            if writer is reader:  # our own schema: read as written, timestamps as numbers
                record = fastavro.schemaless_reader(buf, self.raw_inputs[source], None)
            else:  # the producer's: resolved, its timestamps (any unit) made datetimes
                record = fastavro.schemaless_reader(buf, writer, reader)
        except SchemaResolutionError as exc:
            raise DecodeError(
                "IncompatibleSchema",
                f"writer schema id {schema_id} cannot be read as {reader['name']}: {exc}"[:500],
            ) from None
        except OverflowError:  # a timestamp past the year 9999: read it as the number it is
            start = FRAME_BYTES if self.framing is not None else 0
            record = _read_raw_timestamps(value, start, writer, reader if writer is not reader
                                          else None)  # fmt: skip
            buf.seek(len(value))
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
            record = jsonlimits.loads(value)
        except UnicodeDecodeError as exc:
            raise DecodeError(
                "InvalidJson", f"not UTF-8 ({exc.reason} at byte {exc.start})"
            ) from None
        except jsonlimits.JsonLimitError as exc:
            raise DecodeError("InvalidJson", f"the JSON value is refused: {exc}") from None
        except ValueError as exc:  # json.JSONDecodeError
            raise DecodeError("InvalidJson", f"not valid JSON: {exc}"[:500]) from None
        if not isinstance(record, dict):
            raise DecodeError("InvalidJson", "the JSON value is not an object")
        return record

    def encode(self, schema: Any, record: Mapping[str, Any]) -> bytes:
        """One record in ``schema``. A dict still naming the tenant ``account_id`` (its name
        before ``tenant_id``; docs/migration.md) keeps its tenant: fastavro would write the
        missing ``tenant_id`` as null, the default tenant, without a word."""
        if "account_id" in record and "tenant_id" not in record:
            record = {("tenant_id" if k == "account_id" else k): v for k, v in record.items()}
        buf = io.BytesIO()
        if self.framing is not None:
            buf.write(self.framing.header(schema))
        fastavro.schemaless_writer(buf, schema, record)
        return buf.getvalue()

    def encode_change(self, change: ScoreChange, emitted_at_ms: int) -> bytes:
        """A ``score-changed`` record: the bytes of ``encode(score_changed, change.to_dict(
        emitted_at_ms=...))``, written without the dict when the schema allows."""
        prefix = b"" if self.framing is None else self.framing.header(self.score_changed)
        if self.changes is not None:
            return self.changes.write(change, emitted_at_ms, prefix)
        return self.encode(self.score_changed, change.to_dict(emitted_at_ms=emitted_at_ms))

    def encode_score(self, record: dict[str, Any]) -> bytes:
        """A ``scores`` record (``streams.wire.publish.score_records``' shape): the bytes of
        ``encode(score, record)``, written field by field when the schema allows."""
        if not self.scores_direct:
            return self.encode(self.score, record)
        prefix = b"" if self.framing is None else self.framing.header(self.score)
        return avro.write_score(record, prefix)

    def decode_top(self, value: bytes) -> tuple[str | None, str, str, str, int, str | None]:
        """From a ``scores`` record: (tenant, entity kind, entity id, score, value, tier), read
        straight from the datum when it is in our own layout, else through fastavro."""
        start, writer = 0, self.score
        if self.framing is not None:
            writer = self.framing.writer(value)[1]
            start = FRAME_BYTES
        if self.scores_direct and writer is self.score:
            return avro_read.read_top(value, start)
        record = self.decode(self.score, value)
        return (record["tenant_id"], record["entity"], record["entity_id"], record["score"],
                int(record["value"]), record.get("tier"))  # fmt: skip

    def decode(self, schema: Any, value: bytes) -> dict[str, Any]:
        buf = io.BytesIO(value)
        writer = schema
        if self.framing is not None:
            writer = self.framing.writer(value)[1]
            buf.seek(FRAME_BYTES)
        record = fastavro.schemaless_reader(buf, writer, schema if writer is not schema else None)
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


def _read_raw_timestamps(value: bytes, start: int, writer: Any, reader: Any) -> dict[str, Any]:
    """A datum whose timestamp fastavro cannot make a datetime of (past the year 9999), with
    its timestamps as the epoch numbers they are: the event-time check then says what it is
    (epoch microseconds, most likely; ``streams.scoring.arrival``)."""
    buf = io.BytesIO(value)
    buf.seek(start)
    raw_writer = fastavro.parse_schema(_without_timestamps(writer))
    raw_reader = None if reader is None else fastavro.parse_schema(_without_timestamps(reader))
    try:
        record = fastavro.schemaless_reader(buf, raw_writer, raw_reader)
    except Exception as exc:  # as in _decode_avro: not decodable after all
        raise DecodeError("InvalidAvro", f"{type(exc).__name__}: {exc}"[:500]) from None
    if buf.tell() != len(value) or not isinstance(record, dict):
        raise DecodeError("InvalidAvro", "a timestamp is out of range, and the datum is not one "
                                         "of this schema")  # fmt: skip
    return record


def _without_timestamps(schema: Any) -> Any:
    """A parsed schema as plain JSON data, its timestamp logical types left out."""
    if isinstance(schema, dict):
        return {key: _without_timestamps(item) for key, item in schema.items()
                if not key.startswith("__fastavro") and key != "__named_schemas"
                and not (key == "logicalType" and str(item).startswith("timestamp"))}  # fmt: skip
    if isinstance(schema, list):
        return [_without_timestamps(item) for item in schema]
    return schema
