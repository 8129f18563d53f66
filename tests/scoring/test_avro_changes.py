"""``streams.scoring.avro``: the ``score-changed`` datum written straight from a change must be
byte for byte what fastavro writes for ``change.to_dict(...)`` with ``schemas/score_changed.avsc``
(run under both builds of the core: ``make test`` and ``make test-pure``)."""

from __future__ import annotations

import copy
import io
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.scoring import ScoreChange, avro, avro_read
from streams.scoring.outcomes import CAUSES, Cause
from streams.wire.codec import Codec, load_schema

SCHEMA = load_schema("score_changed")
WRITER = avro.ChangeWriter(avro.symbols(SCHEMA, "cause"), avro.symbols(SCHEMA, "thresholds"))
LONGS = st.one_of(
    st.integers(-70, 70),
    st.integers(avro.LONG_MIN, avro.LONG_MAX),
    st.sampled_from([avro.LONG_MIN, avro.LONG_MAX, -(1 << 31), 1 << 31, 63, 64, -64, -65]),
)
TEXT = st.text(max_size=40)  # any code point but lone surrogates, which UTF-8 cannot carry
OPTIONAL = st.none() | TEXT


def fastavro_bytes(record: dict[str, Any], schema: Any = SCHEMA) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    return buf.getvalue()


changes = st.builds(
    ScoreChange,
    tenant_id=OPTIONAL,
    entity=st.sampled_from(["contact", "deal", "account"]),
    entity_id=TEXT,
    score=TEXT,
    seq=st.integers(0, 1 << 40),
    old_value=st.integers(-(1 << 61), 1 << 61),
    new_value=st.integers(-(1 << 61), 1 << 61),
    cause=st.sampled_from(CAUSES),
    rule_ids=st.lists(TEXT, max_size=70).map(tuple),
    source_event_id=st.sampled_from(["", "e-1"]) | TEXT,
    occurred_at_ms=LONGS,
    thresholds=st.lists(st.tuples(TEXT, st.sampled_from(["up", "down"])), max_size=70).map(tuple),
    plan_version=TEXT,
    tier_before=OPTIONAL,
    tier_after=OPTIONAL,
)


@settings(max_examples=400, deadline=None)
@given(changes, LONGS, st.sampled_from([b"", b"\x00\x00\x00\x00\x07"]))
def test_the_datum_is_the_bytes_fastavro_writes(
    change: ScoreChange, emitted_at_ms: int, prefix: bytes
) -> None:
    written = WRITER.write(change, emitted_at_ms, prefix)
    record = change.to_dict(emitted_at_ms=emitted_at_ms)
    assert written == prefix + fastavro_bytes(record)


def test_the_schema_s_layout_is_the_one_written() -> None:
    assert avro.matches(SCHEMA)
    assert avro.symbols(SCHEMA, "cause") == tuple(c.value for c in CAUSES)
    assert Codec.load().changes is not None


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s["fields"].append({"name": "extra", "type": "string"}),
        lambda s: s["fields"].insert(0, s["fields"].pop(2)),  # another order
        lambda s: s["fields"][5].update(type="int"),  # seq as an int
        lambda s: s["fields"][1].update(type=["string", "null"]),  # the other branch order
        lambda s: s["fields"][10].update(type={"type": "array", "items": "long"}),
    ],
)
def test_another_layout_is_written_by_fastavro(edit: Any) -> None:
    schema = copy.deepcopy(SCHEMA)
    edit(schema)
    assert not avro.matches(schema)
    codec = Codec(inputs={}, score_changed=schema, score=load_schema("score"))
    assert codec.changes is None


def test_the_codec_writes_the_same_either_way() -> None:
    change = ScoreChange(None, "contact", "c-1", "engagement", 3, 10, 35, Cause.RULE,
                         ("visit", "download"), "e-7", 1_700_000_000_000, (("mql", "up"),),
                         "v1", None, "warm")  # fmt: skip
    codec = Codec.load()
    slow = Codec(inputs={}, score_changed=copy.deepcopy(SCHEMA), score=codec.score)
    object.__setattr__(slow, "changes", None)
    written = codec.encode_change(change, 1_700_000_000_500)
    assert written == slow.encode_change(change, 1_700_000_000_500)
    read = codec.decode(codec.score_changed, written)
    assert read["change_id"] == change.change_id and read["rule_ids"] == ["visit", "download"]
    assert read["thresholds"] == [{"name": "mql", "direction": "up"}]


def test_a_value_beyond_a_long_is_refused() -> None:
    change = ScoreChange(None, "contact", "c-1", "s", 1, 0, 1 << 63, Cause.RULE, (), "", 0, (),
                         "v1", None, None)  # fmt: skip
    with pytest.raises(OverflowError):
        WRITER.write(change, 0)
    with pytest.raises(ValueError, match="Direction"):
        WRITER.write(change._replace(new_value=1, thresholds=(("t", "sideways"),)), 0)


SCORE_SCHEMA = load_schema("score")
scores = st.fixed_dictionaries(
    {
        "tenant_id": OPTIONAL,
        "entity": st.sampled_from(["contact", "deal", "account"]),
        "entity_id": TEXT,
        "score": TEXT,
        "value": LONGS,
        "seq": st.integers(0, 1 << 40),
        "categories": st.dictionaries(TEXT, LONGS, max_size=70),
        "thresholds_reached": st.lists(TEXT, max_size=70),
        "updated_at": LONGS,
        "plan_version": TEXT,
        "tier": OPTIONAL,
    }
)


@settings(max_examples=400, deadline=None)
@given(scores, st.sampled_from([b"", b"\x00\x00\x00\x00\x09"]))
def test_the_scores_datum_is_the_bytes_fastavro_writes(
    record: dict[str, Any], prefix: bytes
) -> None:
    written = fastavro_bytes(record, SCORE_SCHEMA)
    assert avro.write_score(record, prefix) == prefix + written
    assert avro.matches(SCORE_SCHEMA, avro.SCORE_LAYOUT)
    assert Codec.load().encode_score(record) == written


@settings(max_examples=400, deadline=None)
@given(scores, st.sampled_from([b"", b"\x00\x00\x00\x00\x09"]))
def test_a_top_list_reads_its_fields_of_any_scores_datum(
    record: dict[str, Any], prefix: bytes
) -> None:
    datum = prefix + fastavro_bytes(record, SCORE_SCHEMA)
    expected = (record["tenant_id"], record["entity"], record["entity_id"], record["score"],
                record["value"], record["tier"])  # fmt: skip
    assert avro_read.read_top(datum, len(prefix)) == expected
    for cut in {1, len(datum) - len(prefix) - 1}:  # a datum cut short is refused
        with pytest.raises((IndexError, ValueError)):
            avro_read.read_top(datum[:-cut], len(prefix))
    with pytest.raises(ValueError, match="trailing"):
        avro_read.read_top(datum + b"\x00", len(prefix))


def test_blocks_with_their_size_are_read_too() -> None:
    # categories as one block of -2 items with its size in bytes (as other writers may write)
    body = bytearray()
    for part in ([None], ["contact", "c-1", "s"], [5, 1]):
        for item in part:
            if item is None:
                body.append(0)
            elif isinstance(item, str):
                body += bytes([2 * len(item)]) + item.encode()
            else:
                body.append(2 * item)
    pairs = b"\x02a\x06\x02b\x08"  # "a": 3, "b": 4
    body += b"\x03" + bytes([2 * len(pairs)]) + pairs + b"\x00"  # count -2 (zig-zag 3), size
    body += b"\x00" + b"\x02" + b"\x04v1" + b"\x02\x08warm"  # no thresholds, updated 1, v1, tier
    assert avro_read.read_top(bytes(body)) == (None, "contact", "c-1", "s", 5, "warm")
    read = fastavro.schemaless_reader(io.BytesIO(bytes(body)), SCORE_SCHEMA, None)
    assert read["categories"] == {"a": 3, "b": 4}  # fastavro reads the same datum
