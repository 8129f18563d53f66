"""Avro binary datums read straight into what the worker needs: the fields of a ``scores``
datum a top list keeps (:func:`read_top`), and input datums in our own schemas
(:class:`InputReader`), both compiled with the rest of the core. The encoding is the one
``streams.scoring.avro`` writes (see there); ``tests/scoring/test_avro_changes.py`` and
``tests/scoring/test_avro_inputs.py`` check what they read against fastavro.
"""

from __future__ import annotations

import struct
from typing import Any, Final

_DOUBLE: Final = struct.Struct("<d")


class Reader:
    """Reads Avro values from ``data`` at ``pos`` (raises ``IndexError`` past its end)."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def long(self) -> int:
        data = self.data
        byte = data[self.pos]
        self.pos += 1
        z = byte & 0x7F
        shift = 7
        while byte & 0x80:
            if shift > 63:
                raise ValueError("a long of more than 10 bytes")
            byte = data[self.pos]
            self.pos += 1
            z |= (byte & 0x7F) << shift
            shift += 7
        if z >> 64:
            raise ValueError("a long of more than 64 bits")
        return (z >> 1) ^ -(z & 1)

    def string(self) -> str:
        size = self.long()
        end = self.pos + size
        if size < 0 or end > len(self.data):
            raise IndexError("a string past the end of the datum")
        text = self.data[self.pos : end].decode("utf-8")
        self.pos = end
        return text

    def optional(self) -> str | None:
        branch = self.long()
        if branch == 0:
            return None
        if branch != 1:
            raise IndexError(f"union branch {branch} of [null, string]")
        return self.string()

    def skip_blocks(self, longs: int, strings: int) -> None:
        """Skip an array or map whose items are ``strings`` strings then ``longs`` longs."""
        count = self.long()
        while count != 0:
            if count < 0:  # a block with its size in bytes: the items follow all the same
                count = -count
                self.long()
            for _ in range(count):
                for _ in range(strings):
                    self.string()
                for _ in range(longs):
                    self.long()
            count = self.long()


def read_top(value: bytes, start: int = 0) -> tuple[str | None, str, str, str, int, str | None]:
    """From a ``scores`` datum (``streams.scoring.avro.SCORE_LAYOUT``) at ``start``: tenant,
    entity kind, entity id, score, value and tier, what a top list keeps; the other fields are
    skipped. Raises ``IndexError``/``ValueError`` (``UnicodeDecodeError``) on a datum that is
    not one."""
    read = Reader(value, start)
    tenant = read.optional()
    kind = read.string()
    entity_id = read.string()
    score = read.string()
    total = read.long()
    read.long()  # seq
    read.skip_blocks(1, 1)  # categories: string -> long
    read.skip_blocks(0, 1)  # thresholds reached: strings
    read.long()  # updated_at
    read.string()  # plan_version
    tier = read.optional()
    if read.pos != len(value):
        raise ValueError(f"{len(value) - read.pos} trailing bytes after the datum")
    return tenant, kind, entity_id, score, total, tier


#: What a field of an input schema is, for :class:`InputReader`.
F_STRING: Final = 0
F_OPTIONAL: Final = 1  # ["null", "string"]
F_LONG: Final = 2  # also a timestamp-millis, read as the number it is
F_OPTIONAL_LONG: Final = 3  # ["null", "long"]
F_ENUM: Final = 4
F_SCALARS: Final = 5  # a map of ["null", "string", "long", "double", "boolean"]
SCALARS: Final = ["null", "string", "long", "double", "boolean"]


class InputReader:
    """Reads a datum of one input schema straight into the dict fastavro makes of it (fields in
    the schema's order, timestamps as numbers), for the field types above; built by
    :func:`input_reader`. It refuses more than fastavro does (a boolean byte other than 0 or 1,
    a block with its size in bytes): the caller reads what it refuses with fastavro, so a
    record is never read differently, only sooner."""

    def __init__(self, names: list[str], kinds: list[int], symbols: list[list[str]]) -> None:
        self.names, self.kinds, self.symbols = names, kinds, symbols

    def read(self, value: bytes, start: int) -> dict[str, Any]:
        read = Reader(value, start)
        out: dict[str, Any] = {}
        kinds, symbols = self.kinds, self.symbols
        for i, name in enumerate(self.names):
            kind = kinds[i]
            if kind == F_STRING:
                out[name] = read.string()
            elif kind == F_OPTIONAL:
                out[name] = read.optional()
            elif kind == F_LONG:
                out[name] = read.long()
            elif kind == F_OPTIONAL_LONG:
                branch = read.long()
                if branch == 0:
                    out[name] = None
                elif branch == 1:
                    out[name] = read.long()
                else:
                    raise IndexError(f"union branch {branch} of [null, long]")
            elif kind == F_ENUM:
                index = read.long()
                names = symbols[i]
                if index < 0 or index >= len(names):
                    raise IndexError(f"enum symbol {index} of {len(names)}")
                out[name] = names[index]
            else:
                out[name] = _scalars(read)
        if read.pos != len(value):
            raise ValueError(f"{len(value) - read.pos} trailing bytes after the datum")
        return out


def _scalars(read: Reader) -> dict[str, Any]:
    out: dict[str, Any] = {}
    count = read.long()
    while count != 0:
        if count < 0:
            raise ValueError("a map block with its size in bytes")
        for _ in range(count):
            key = read.string()
            branch = read.long()
            if branch == 0:
                out[key] = None
            elif branch == 1:
                out[key] = read.string()
            elif branch == 2:
                out[key] = read.long()
            elif branch == 3:
                end = read.pos + 8
                if end > len(read.data):
                    raise IndexError("a double past the end of the datum")
                out[key] = _DOUBLE.unpack_from(read.data, read.pos)[0]
                read.pos = end
            elif branch == 4:
                flag = read.data[read.pos]
                read.pos += 1
                if flag > 1:
                    raise ValueError(f"boolean byte {flag}")
                out[key] = flag == 1
            else:
                raise IndexError(f"union branch {branch} of {SCALARS}")
        count = read.long()
    return out


def _field_kind(avro_type: Any) -> int:
    """The reader's kind of a field of ``avro_type``, or -1 if it reads no such field."""
    if avro_type == "string":
        return F_STRING
    if avro_type == ["null", "string"]:
        return F_OPTIONAL
    if avro_type == ["null", "long"]:
        return F_OPTIONAL_LONG
    if avro_type == "long":
        return F_LONG
    if isinstance(avro_type, dict):
        kind = avro_type.get("type")
        logical = avro_type.get("logicalType")
        if kind == "long" and logical in (None, "timestamp-millis"):
            return F_LONG
        if kind == "enum" and "default" not in avro_type:
            return F_ENUM
        if kind == "map" and avro_type.get("values") == SCALARS:
            return F_SCALARS
    return -1


def input_reader(schema: dict[str, Any]) -> InputReader | None:
    """The reader of ``schema`` (parsed, its timestamps without logical types or
    timestamp-millis), or None if a field has a type it does not read (decimals, say)."""
    names: list[str] = []
    kinds: list[int] = []
    symbols: list[list[str]] = []
    for f in schema.get("fields", ()):
        kind = _field_kind(f["type"])
        if kind < 0:
            return None
        names.append(f["name"])
        kinds.append(kind)
        symbols.append(list(f["type"]["symbols"]) if kind == F_ENUM else [])
    return InputReader(names, kinds, symbols)
