"""Future events through the loop's parts, with fakes (no Kafka): ingest keeps the input record's
Kafka timestamp in the item (the wall clock at ingest when it has none) and refuses event times
past 9999; the entity stage refuses, under the tenant's plan, an item more than ``max_future``
ahead of its arrival before the core sees it, so no watermark moves and the next real event of
the contact scores. The broker run is ``tests/integration/test_bad_input.py``."""

from __future__ import annotations

from typing import Any

import pytest

from streams.engine.entities import arrival_ms
from streams.engine.ingest import Ingest, Routed
from streams.scoring import EntityKey
from streams.wire import records
from streams.wire.codec import Codec, Source
from streams.wire.deadletter import FUTURE_EVENT, DeadLetter
from tests.engine.test_loop_parts import make_stage

CODEC = Codec.load()
HOUR = 3_600_000
ARRIVAL = 1_772_323_200_000  # 2026-03-01T00:00:00Z
Y9999 = 253_370_764_800_000  # 9999-01-01T00:00:00Z
TENANT = """
version: acme-far
lateness: 30d
max_future: 7d
scores:
  - name: s
    entity: contact
    rules:
      - {id: visit, on: page_visit, points: 7}
"""


def page_visit(event_id: str, occurred: object, contact: str = "c1",
               tenant: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {"type": "page_visit", "event_id": event_id, "account_id": tenant,
            "occurred_at": occurred, "contact_id": contact, "deal_id": None,
            "url": "https://x.io/"}  # fmt: skip


def item(record: dict[str, Any], appended_ms: int, now_ms: int = ARRIVAL) -> records.ItemRecord:
    return records.ItemRecord(record, now_ms, ("page-visits", 0, 7), appended_ms)


def key_of(contact: str, tenant: str | None = None) -> bytes:
    return records.entity_key_bytes(EntityKey(tenant, "contact", contact))


def ingest(value: bytes, *, appended_ms: int, now_ms: int = ARRIVAL) -> Routed | DeadLetter:
    stage = Ingest(CODEC, {"pv": Source.PAGE_VISITS, "mail": Source.EMAIL_EVENTS},
                   {"pv": "avro", "mail": "json"})  # fmt: skip
    topic = "mail" if value.startswith(b"{") else "pv"
    return stage.handle(topic=topic, partition=0, offset=3, key=b"k", value=value,
                        appended_ms=appended_ms, now_ms=now_ms)  # fmt: skip


def avro_visit(occurred: int, tenant: str | None = None) -> bytes:
    record = page_visit("e", occurred, tenant=tenant)
    del record["type"]
    return CODEC.encode(CODEC.inputs[Source.PAGE_VISITS], record)


# ----- ingest ---------------------------------------------------------------------------------


def test_the_item_carries_the_kafka_timestamp_and_the_wall_clock_stands_in_for_a_missing_one(
) -> None:  # fmt: skip
    routed = ingest(avro_visit(ARRIVAL), appended_ms=ARRIVAL - 5)
    assert isinstance(routed, Routed)
    rec = records.decode(routed.outputs[0][1])
    assert isinstance(rec, records.ItemRecord) and rec.appended_ms == ARRIVAL - 5
    # librdkafka gives -1 for a record without a timestamp (TIMESTAMP_NOT_AVAILABLE)
    routed = ingest(avro_visit(ARRIVAL), appended_ms=-1, now_ms=ARRIVAL + 9)
    assert isinstance(routed, Routed)
    rec = records.decode(routed.outputs[0][1])
    assert isinstance(rec, records.ItemRecord) and rec.appended_ms == ARRIVAL + 9


def test_epoch_microseconds_on_an_avro_topic_are_a_future_event_at_ingest() -> None:
    letter = ingest(avro_visit(ARRIVAL * 1000), appended_ms=ARRIVAL + 2000)
    assert isinstance(letter, DeadLetter)
    assert letter.error_class == FUTURE_EVENT
    assert letter.reason == (
        "occurred_at 1772323200000000 (epoch millis after the year 9999) is about 56,143 years "
        "ahead of its arrival 2026-03-01T00:00:02.000Z; at most 1h ahead is accepted (the "
        "plan's max_future); it looks like microseconds since the epoch, not milliseconds (as "
        "microseconds it is 2026-03-01T00:00:00.000Z); send epoch milliseconds or ISO-8601"
    )


def test_epoch_nanoseconds_on_a_json_topic_are_a_future_event_at_ingest() -> None:
    value = (b'{"event_id": "e", "occurred_at": 1772323200000000000, "contact_id": "c1", '
             b'"action": "open"}')  # fmt: skip
    letter = ingest(value, appended_ms=-1, now_ms=ARRIVAL)
    assert isinstance(letter, DeadLetter) and letter.error_class == FUTURE_EVENT
    assert "looks like nanoseconds" in letter.reason
    assert "ahead of its arrival 2026-03-01T00:00:00.000Z" in letter.reason


def test_a_9999_date_of_the_default_tenant_is_refused_at_ingest_with_its_bytes() -> None:
    value = avro_visit(Y9999)
    letter = ingest(value, appended_ms=ARRIVAL)
    assert isinstance(letter, DeadLetter) and letter.error_class == FUTURE_EVENT
    assert letter.value == value and letter.origin is None
    assert "at most 1h ahead is accepted" in letter.reason


@pytest.mark.parametrize(
    ("ahead_ms", "refused"),
    [
        (2 * 3_600_000, False),  # beyond the default 1h, but a tenant's plan may accept it
        (7 * 86_400_000, False),  # the most any plan may accept
        (7 * 86_400_000 + 1, True),  # more than any plan accepts: refused here, with its bytes
    ],
)
def test_another_tenant_is_refused_at_ingest_only_beyond_what_any_plan_accepts(
    ahead_ms: int, refused: bool
) -> None:
    verdict = ingest(avro_visit(ARRIVAL + ahead_ms, tenant="acme"), appended_ms=ARRIVAL)
    if refused:
        assert isinstance(verdict, DeadLetter) and verdict.error_class == FUTURE_EVENT
        assert "at most 1w ahead is accepted" in verdict.reason
    else:
        assert isinstance(verdict, Routed)


def test_json_nested_too_deeply_is_invalid_json_with_a_reason() -> None:
    letter = ingest(b"{" + b'"a": [' * 5000, appended_ms=ARRIVAL)
    assert isinstance(letter, DeadLetter)
    assert (letter.error_class, letter.reason) == (
        "InvalidJson",
        "the JSON value is refused: lists and objects nested deeper than 64 levels",
    )


# ----- the entity stage -----------------------------------------------------------------------


def test_a_far_future_item_is_refused_and_the_next_visit_scores() -> None:
    stage, _ = make_stage()
    first = stage.on_item(0, key_of("c1"), item(page_visit("e1", ARRIVAL - 10), ARRIVAL))
    assert [c.new_value for c in first.changes] == [5]
    far = stage.on_item(0, key_of("c1"), item(page_visit("e2", Y9999), ARRIVAL + 1))
    assert (far.error_class, far.changes, far.results) == (FUTURE_EVENT, (), ())
    assert far.invalid is not None and far.invalid.startswith(
        "occurred_at 9999-01-01T00:00:00.000Z is about 7,978 years ahead of its arrival "
        "2026-03-01T00:00:00.001Z; at most 1h ahead is accepted (the plan's max_future)"
    )
    state = stage.cache.entries[key_of("c1")].state
    assert state.watermark_ms == ARRIVAL - 10  # untouched
    nxt = stage.on_item(0, key_of("c1"), item(page_visit("e3", ARRIVAL + 5), ARRIVAL + 6))
    assert [(c.old_value, c.new_value) for c in nxt.changes] == [(5, 10)]


def test_a_refused_item_loads_no_state() -> None:
    stage, store = make_stage()
    far = stage.on_item(0, key_of("c9"), item(page_visit("e", ARRIVAL + 2 * HOUR), ARRIVAL))
    assert far.error_class == FUTURE_EVENT
    assert store.loads == 0 and key_of("c9") not in stage.cache.entries


def test_just_within_the_bound_is_scored() -> None:
    stage, _ = make_stage()
    ok = stage.on_item(0, key_of("c1"), item(page_visit("e", ARRIVAL + HOUR), ARRIVAL))
    assert ok.invalid is None and [c.new_value for c in ok.changes] == [5]


def test_the_tenants_plan_decides_the_bound() -> None:
    stage, _ = make_stage()
    stage.tenants.switch(0, "acme", TENANT)
    three_days = ARRIVAL + 3 * 24 * HOUR
    acme = stage.on_item(0, key_of("c1", "acme"),
                         item(page_visit("a", three_days, tenant="acme"), ARRIVAL))  # fmt: skip
    assert acme.invalid is None and [c.new_value for c in acme.changes] == [7]
    other = stage.on_item(0, key_of("c1", "globex"),
                          item(page_visit("g", three_days, tenant="globex"), ARRIVAL))  # fmt: skip
    assert other.error_class == FUTURE_EVENT
    assert other.invalid is not None and "at most 1h ahead" in other.invalid


def test_the_arrival_is_the_items_own_so_a_replay_decides_the_same() -> None:
    record = page_visit("e", ARRIVAL + 2 * HOUR)
    late_clock = item(record, appended_ms=ARRIVAL + HOUR + 1, now_ms=ARRIVAL + 10 * HOUR)
    assert arrival_ms(late_clock) == ARRIVAL + HOUR + 1
    for _ in range(2):  # processed twice (an aborted transaction): the same answer
        stage, _ = make_stage()
        assert stage.on_item(0, key_of("c1"), late_clock).invalid is None
    no_stamp = item(record, appended_ms=-1, now_ms=ARRIVAL)  # written before ingest filled it in
    assert arrival_ms(no_stamp) == ARRIVAL
    stage, _ = make_stage()
    assert stage.on_item(0, key_of("c1"), no_stamp).error_class == FUTURE_EVENT


def test_a_recompute_leaves_refused_items_out() -> None:
    stage, _ = make_stage()
    history = [item(page_visit("e1", ARRIVAL), ARRIVAL),
               item(page_visit("e2", Y9999), ARRIVAL + 1),
               item(page_visit("e3", ARRIVAL + 2), ARRIVAL + 3)]  # fmt: skip
    result = stage.on_recompute(0, key_of("c1"), history, ARRIVAL + 4, "recompute:v")
    assert result is not None
    state = stage.cache.entries[key_of("c1")].state
    assert state.scores["s"].total == 10
    assert state.watermark_ms == ARRIVAL + 2
