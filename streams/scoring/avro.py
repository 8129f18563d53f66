"""The Avro binary datums of the worker's outputs, written field by field: ``score-changed``
straight from a :class:`ScoreChange` (no dict), ``scores`` from its record.

The worker publishes one ``score-changed`` record per score change and one ``scores`` record
per changed score per commit, and the generic writer (fastavro walking the schema for each
field of a dict) was the largest single frame of its profile. This writes the same bytes in the
order of ``schemas/score_changed.avsc`` and ``schemas/score.avsc``; it is compiled with the
rest of the core.

Avro's binary encoding, as used here: a ``long`` is zig-zag encoded and written as a base-128
varint (least significant group first); a ``string`` is its UTF-8 length as a long, then the
bytes; a ``["null", "string"]`` union is the branch index as a long (0: null, 1: string), then
the value; an enum is the symbol's index as a long; an array is one block (its count as a long,
then the items) followed by a count of 0, or just the 0 when empty; a map is written like an
array of (key string, value) pairs; a record is its fields in order. ``streams.wire.codec``
uses this only when the schema it was given has exactly the layout written here
(:func:`matches`), and ``tests/scoring/test_avro_changes.py`` checks the bytes against
fastavro's for generated records.
"""

from __future__ import annotations

from typing import Any, Final

from streams.scoring.outcomes import ScoreChange

#: The fields of ``score-changed``, in order, with the Avro type this module writes for each.
LAYOUT: Final = (
    ("change_id", "string"),
    ("tenant_id", "optional"),
    ("entity", "string"),
    ("entity_id", "string"),
    ("score", "string"),
    ("seq", "long"),
    ("old_value", "long"),
    ("new_value", "long"),
    ("delta", "long"),
    ("cause", "enum"),
    ("rule_ids", "strings"),
    ("source_event_id", "optional"),
    ("occurred_at", "long"),
    ("emitted_at", "long"),
    ("thresholds", "crossings"),
    ("plan_version", "string"),
    ("tier_before", "optional"),
    ("tier_after", "optional"),
)
LONG_MIN: Final = -(1 << 63)
LONG_MAX: Final = (1 << 63) - 1


def _long(out: bytearray, n: int) -> None:
    if n < LONG_MIN or n > LONG_MAX:
        raise OverflowError(f"{n} does not fit an Avro long")
    z = (n << 1) ^ (n >> 63)  # zig-zag: small magnitudes, either sign, get few bytes
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)


def _string(out: bytearray, text: str) -> None:
    data = text.encode("utf-8")
    _long(out, len(data))
    out += data


def _optional(out: bytearray, text: str | None) -> None:
    if text is None:
        out.append(0)
    else:
        out.append(2)  # branch 1, zig-zag encoded
        _string(out, text)


class ChangeWriter:
    """Writes ``score-changed`` datums; ``causes`` and ``directions``: the symbols of the
    schema's two enums, in the schema's order."""

    def __init__(self, causes: tuple[str, ...], directions: tuple[str, ...]) -> None:
        self.causes: dict[str, int] = {symbol: i for i, symbol in enumerate(causes)}
        self.directions: dict[str, int] = {symbol: i for i, symbol in enumerate(directions)}

    def write(self, change: ScoreChange, emitted_at_ms: int, prefix: bytes = b"") -> bytes:
        """The datum of ``change`` published at ``emitted_at_ms``, after ``prefix`` (the
        registry framing, if any): the bytes fastavro writes for ``change.to_dict(...)``."""
        out = bytearray(prefix)
        _string(out, change.change_id)
        _optional(out, change.tenant_id)
        _string(out, change.entity)
        _string(out, change.entity_id)
        _string(out, change.score)
        _long(out, change.seq)
        _long(out, change.old_value)
        _long(out, change.new_value)
        _long(out, change.new_value - change.old_value)
        index = self.causes.get(str(change.cause))
        if index is None:
            raise ValueError(f"{change.cause!s} is not a symbol of the schema's Cause enum")
        _long(out, index)
        rule_ids = change.rule_ids
        if rule_ids:
            _long(out, len(rule_ids))
            for rule_id in rule_ids:
                _string(out, rule_id)
        out.append(0)
        _optional(out, change.source_event_id or None)  # none for decay checks
        _long(out, change.occurred_at_ms)
        _long(out, emitted_at_ms)
        crossings = change.thresholds
        if crossings:
            _long(out, len(crossings))
            for name, direction in crossings:
                _string(out, name)
                way = self.directions.get(direction)
                if way is None:
                    raise ValueError(f"{direction} is not a symbol of the schema's Direction enum")
                _long(out, way)
        out.append(0)
        _string(out, change.plan_version)
        _optional(out, change.tier_before)
        _optional(out, change.tier_after)
        return bytes(out)


#: The fields of ``scores`` (``schemas/score.avsc``), in order, as :data:`LAYOUT`.
SCORE_LAYOUT: Final = (
    ("tenant_id", "optional"),
    ("entity", "string"),
    ("entity_id", "string"),
    ("score", "string"),
    ("value", "long"),
    ("seq", "long"),
    ("categories", "longs by string"),
    ("thresholds_reached", "strings"),
    ("updated_at", "long"),
    ("plan_version", "string"),
    ("tier", "optional"),
)


def write_score(record: dict[str, Any], prefix: bytes = b"") -> bytes:
    """The ``scores`` datum of ``record`` (``streams.wire.publish.score_records``' shape: every
    field present) after ``prefix``: the bytes fastavro writes for it."""
    out = bytearray(prefix)
    _optional(out, record["tenant_id"])
    _string(out, record["entity"])
    _string(out, record["entity_id"])
    _string(out, record["score"])
    _long(out, record["value"])
    _long(out, record["seq"])
    categories: dict[str, int] = record["categories"]
    if categories:
        _long(out, len(categories))
        for name, value in categories.items():
            _string(out, name)
            _long(out, value)
    out.append(0)
    reached: list[str] = record["thresholds_reached"]
    if reached:
        _long(out, len(reached))
        for name in reached:
            _string(out, name)
    out.append(0)
    _long(out, record["updated_at"])
    _string(out, record["plan_version"])
    _optional(out, record["tier"])
    return bytes(out)


def _kind(avro_type: Any) -> str:
    """What this module writes for a field of ``avro_type`` (a parsed schema's), or ""."""
    if avro_type == "string" or avro_type == ["null", "string"]:
        return "string" if avro_type == "string" else "optional"
    if avro_type == "long":
        return "long"
    if isinstance(avro_type, dict):
        kind = avro_type.get("type")
        if kind == "long" and avro_type.get("logicalType") == "timestamp-millis":
            return "long"
        if kind == "enum":
            return "enum"
        if kind == "map" and avro_type.get("values") == "long":
            return "longs by string"
        if kind == "array":
            items = avro_type.get("items")
            if items == "string":
                return "strings"
            if isinstance(items, dict):
                fields = [(f["name"], _kind(f["type"])) for f in items.get("fields", ())]
                if fields == [("name", "string"), ("direction", "enum")]:
                    return "crossings"
    return ""


def matches(schema: dict[str, Any], layout: tuple[tuple[str, str], ...] = LAYOUT) -> bool:
    """Whether ``schema`` (a parsed record schema) has exactly ``layout``, which this module
    writes (:data:`LAYOUT`: ``score-changed``; :data:`SCORE_LAYOUT`: ``scores``)."""
    fields = schema.get("fields")
    if not isinstance(fields, list):
        return False
    return [(f.get("name"), _kind(f.get("type"))) for f in fields] == list(layout)


def symbols(schema: dict[str, Any], field: str) -> tuple[str, ...]:
    """The symbols of the enum of ``field`` (``thresholds``: its items' ``direction``)."""
    for f in schema["fields"]:
        if f["name"] == field:
            avro_type = f["type"]
            if field == "thresholds":
                avro_type = avro_type["items"]["fields"][1]["type"]
            return tuple(avro_type["symbols"])
    raise KeyError(field)
