"""Inputs in our own schema are read with their timestamp logical types left out
(``Codec.raw_inputs``): ``occurred_at`` comes out as the epoch millis written, the same number
the datetime fastavro makes of it gives after ``_normalise``, over the whole range a datetime
has (years 1 to 9999)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import fastavro
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.commands.traffic import generate
from streams.wire.codec import Codec, Source, _normalise

CODEC = Codec.load()
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
FIRST = (dt.datetime(1, 1, 1, tzinfo=dt.UTC) - EPOCH) // dt.timedelta(milliseconds=1)
LAST = (dt.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC) - EPOCH) // dt.timedelta(
    milliseconds=1
)


#: one record of each input, as the traffic generator makes them (``occurred_at`` in millis)
SAMPLES: dict[Source, dict[str, Any]] = {}
for _source, _record in generate(400, seed=3):
    SAMPLES.setdefault(_source, _record)


def datum(source: Source, occurred_ms: int) -> bytes:
    buf = io.BytesIO()
    record = {**SAMPLES[source], "occurred_at": occurred_ms}
    fastavro.schemaless_writer(buf, CODEC.raw_inputs[source], record)
    return buf.getvalue()


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(list(Source)),
    st.one_of(st.integers(FIRST, LAST), st.sampled_from([FIRST, LAST, 0, -1, 1])),
)
def test_occurred_at_is_the_number_written(source: Source, occurred_ms: int) -> None:
    assert set(SAMPLES) == set(Source)
    value = datum(source, occurred_ms)
    got = CODEC.decode_input(source, value, fmt="avro")
    assert got["occurred_at"] == occurred_ms
    # what the datetime of the full schema gives, turned back into millis
    as_datetime = fastavro.schemaless_reader(io.BytesIO(value), CODEC.inputs[source], None)
    assert isinstance(as_datetime["occurred_at"], dt.datetime)
    assert _normalise(source, as_datetime) == got
