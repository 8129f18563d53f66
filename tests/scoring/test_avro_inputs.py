"""``streams.scoring.avro_read.InputReader``: an input datum in our own schema read straight into a
dict must give exactly what fastavro gives (values, types and field order); on bytes that are
not such a datum it may refuse more than fastavro (the codec then asks fastavro), but never
accept one fastavro refuses or read it differently (run under both builds of the core)."""

from __future__ import annotations

import io
import math
from typing import Any

import fastavro
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.scoring import avro, avro_read
from streams.wire.codec import Codec, Source

CODEC = Codec.load()
DIRECT = sorted(CODEC.direct_inputs, key=lambda s: s.value)
TEXT = st.text(max_size=20)
LONG = st.integers(avro.LONG_MIN, avro.LONG_MAX)
SCALAR = st.one_of(
    st.none(), TEXT, LONG, st.floats(allow_nan=False), st.booleans()
)  # one of each branch of the attributes' union (a NaN is not equal to itself)


def value_of(avro_type: Any) -> st.SearchStrategy[Any]:
    kind = avro_read._field_kind(avro_type)
    if kind == avro_read.F_STRING:
        return TEXT
    if kind == avro_read.F_OPTIONAL:
        return st.none() | TEXT
    if kind == avro_read.F_LONG:
        return LONG
    if kind == avro_read.F_OPTIONAL_LONG:
        return st.none() | LONG
    if kind == avro_read.F_ENUM:
        return st.sampled_from(avro_type["symbols"])
    assert kind == avro_read.F_SCALARS
    return st.dictionaries(TEXT, SCALAR, max_size=8)


@st.composite
def datums(draw: st.DrawFn) -> tuple[Source, bytes]:
    source = draw(st.sampled_from(DIRECT))
    schema = CODEC.raw_inputs[source]
    record = {f["name"]: draw(value_of(f["type"])) for f in schema["fields"]}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    return source, buf.getvalue()


def fastavro_read(source: Source, value: bytes) -> dict[str, Any] | None:
    buf = io.BytesIO(value)
    try:
        record: dict[str, Any] = fastavro.schemaless_reader(buf, CODEC.raw_inputs[source], None)
    except Exception:
        return None
    return record if buf.tell() == len(value) else None  # trailing bytes: the codec refuses


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal values of equal types, in the same order (a float 0.0 is not False)."""
    if list(a) != list(b):
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, dict) and isinstance(y, dict):
            if not same(x, y):
                return False
        elif type(x) is not type(y) or not (x == y or (isinstance(x, float) and math.isnan(x)
                                                      and math.isnan(y))):  # fmt: skip
            return False
    return True


def test_the_schemas_read_straight_are_those_without_decimals() -> None:
    assert set(DIRECT) == {Source.PAGE_VISITS, Source.EMAIL_EVENTS, Source.CONTACT_PROFILES,
                           Source.SCORE_ADJUSTMENTS}  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(datums())
def test_a_datum_reads_as_fastavro_reads_it(datum: tuple[Source, bytes]) -> None:
    source, value = datum
    expected = fastavro_read(source, value)
    assert expected is not None
    got = CODEC.direct_inputs[source].read(value, 0)
    assert same(got, expected)
    framed = b"\x00\x00\x00\x00\x01" + value
    assert same(CODEC.direct_inputs[source].read(framed, 5), expected)


@settings(max_examples=1500, deadline=None)
@given(
    datums(),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=3),
    st.integers(0, 6),
    st.binary(max_size=6),
)
def test_bytes_it_accepts_fastavro_reads_the_same(
    datum: tuple[Source, bytes], flips: list[tuple[int, int]], cut: int, tail: bytes
) -> None:
    source, value = datum
    mangled = bytearray(value)
    for at, byte in flips:
        if mangled:
            mangled[at % len(mangled)] = byte
    data = bytes(mangled[: len(mangled) - cut] if cut else mangled) + tail
    try:
        got = CODEC.direct_inputs[source].read(data, 0)
    except Exception:
        return  # refused: the codec asks fastavro
    expected = fastavro_read(source, data)
    assert expected is not None and same(got, expected)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(DIRECT), st.binary(max_size=60))
def test_random_bytes_it_accepts_fastavro_reads_the_same(source: Source, data: bytes) -> None:
    try:
        got = CODEC.direct_inputs[source].read(data, 0)
    except Exception:
        return
    expected = fastavro_read(source, data)
    assert expected is not None and same(got, expected)
