"""The verifier's merge of per-entity applied orders (``tests/integration/verify.py``)."""

from __future__ import annotations

from streams.scoring import EntityKey
from streams.wire.codec import Source
from tests.integration.verify import applied_input_order

A = EntityKey(None, "contact", "c1")
B = EntityKey(None, "deal", "d1")
RECORDS = [(Source.PAGE_VISITS, {"event_id": e}) for e in ("x", "y", "z")]


def test_orders_that_agree_merge_into_one_and_break_nothing() -> None:
    order = [(A, "x"), (B, "x"), (A, "y"), (B, "y"), (A, "z")]
    out, broken = applied_input_order(RECORDS, order)
    assert [r["event_id"] for _, r in out] == ["x", "y", "z"]
    assert broken == set()


def test_opposite_orders_of_two_entities_are_reported_not_a_failure() -> None:
    # two workers' transactions appended x and y to the two partitions in opposite orders
    order = [(A, "x"), (B, "y"), (A, "y"), (B, "x"), (A, "z")]
    out, broken = applied_input_order(RECORDS, order)
    assert [r["event_id"] for _, r in out] == ["x", "y", "z"]  # the earliest seen goes first
    assert broken == {B}  # B saw y before x: left out of the offline comparison only
