"""A busy entity's seen ids and property history in sealed segments (``streams.scoring.segments``):
what a commit writes stays small, and every state read back from its blob and segments equals
the live one."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from scoring_helpers import T0, H, M, S, adj, ev, make_plan, visit

from streams.scoring import EntityKey, EntityState, StateFormatError, apply, dumps, loads
from streams.scoring.recompute import recompute
from streams.scoring.segments import SEAL
from streams.scoring.serialize import CURRENT_VERSION, SEGMENTED_VERSION, dumps_split

PLAN = make_plan("""
version: v1
lateness: 2h
scores:
  - name: s
    entity: contact
    rules:
      - {id: visit, on: page_visit, points: 1, expires_after: 30m}
""")
KEY = EntityKey("acme", "contact", "c1")
#: state rules on attributes: the contact's property history is kept (``profile``)
PROFILE_PLAN = make_plan("""
version: v1
lateness: 2h
scores:
  - name: fit
    entity: contact
    rules:
      - {id: saas, while: {attributes.industry: {eq: saas}}, points: 20}
      - {id: big, while: {attributes.size: {gte: 100}}, points: 15}
""")


def update(i: int, at_ms: int, industry: str = "saas") -> Any:
    attributes = {"industry": industry if i % 2 else "retail", "size": Decimal(i) / 4}
    return ev("contact.updated", f"u{i}", at_ms, attributes=attributes)


class Store:
    """Segments by seq, as a commit leaves them (new ones written, dropped ones deleted)."""

    def __init__(self) -> None:
        self.segments: dict[int, bytes] = {}
        self.written = 0

    def commit(self, state: EntityState) -> bytes:
        blob, sealed, dropped = dumps_split(state)
        for seq, segment in sealed:
            assert seq not in self.segments  # a seq is never reused
            self.segments[seq] = segment
            self.written += 1
        for seq in dropped:
            del self.segments[seq]
        assert sorted(self.segments) == state.segs  # the store holds exactly the live ones
        return blob

    def load(self, blob: bytes) -> EntityState:
        return loads(blob, self.segments.get)


def same(a: EntityState, b: EntityState) -> None:
    assert a == b
    assert a.seen == b.seen
    assert a.past == b.past
    assert (a.seen_tail, a.past_sealed, a.segs, a.seg_bytes, a.seg_next) == (
        b.seen_tail, b.past_sealed, b.segs, b.seg_bytes, b.seg_next)  # fmt: skip


def visited(count: int) -> EntityState:
    """The contact after ``count`` visits, one a second."""
    state = None
    for i in range(count):
        state = apply(state, KEY, visit(f"e{i}", T0 + i * S), PLAN, now_ms=T0 + i * S).state
    assert state is not None
    return state


def updated(count: int) -> EntityState:
    """The contact after ``count`` profile updates, one a second (property history kept)."""
    state = None
    for i in range(count):
        at = T0 + i * S
        state = apply(state, KEY, update(i, at), PROFILE_PLAN, now_ms=at).state
    assert state is not None
    return state


def test_a_busy_entity_writes_its_new_ids_only_and_reads_back_equal() -> None:
    store, state = Store(), None
    sizes: list[int] = []
    for i in range(3 * SEAL + 10):  # one commit per event, each from the state read back
        state = apply(state, KEY, visit(f"e{i}", T0 + i * S), PLAN, now_ms=T0 + i * S).state
        blob = store.commit(state)
        sizes.append(len(blob))
        back = store.load(blob)
        same(back, state)
        state = back
        if i < SEAL - 1:
            assert blob[0] == CURRENT_VERSION and not store.segments  # whole, as before
    assert state is not None and blob[0] == SEGMENTED_VERSION
    assert len(store.segments) == 3 and store.written == 3
    assert state.seen_tail == 10 and len(state.seen) == 3 * SEAL + 10
    # the blob holds the tail, not every id: each sealed id (a 64-bit hash and an age, 9 bytes
    # or more) is out of it
    assert len(dumps(state)) - sizes[-1] > 3 * SEAL * 9
    assert state.seg_bytes == sum(len(s) for s in store.segments.values())
    # the whole form (v6) of a segmented state needs no segments
    same_whole = loads(dumps(state))
    assert same_whole == state and same_whole.seen_tail == len(state.seen)


def test_duplicates_are_found_in_sealed_segments_after_a_reload() -> None:
    store, state = Store(), visited(SEAL + 1)
    back = store.load(store.commit(state))
    assert back.segs == [0] and back.seen_tail == 0
    again = apply(back, KEY, visit("e3", T0 + 3 * S), PLAN, now_ms=T0 + SEAL * S)
    assert [r.verdict.value for r in again.results] == ["duplicate"]
    redo = apply(back, KEY, adj("cmd", T0 + SEAL * S, "add", 5), PLAN, now_ms=T0 + SEAL * S)
    assert redo.state.seen_tail == 1  # a command id is a seen id too


def test_pruned_ids_drop_every_segment_and_the_rest_is_written_again() -> None:
    store, state = Store(), None
    at = T0
    for i in range(2 * SEAL):  # 2 segments, 1 s apart
        at = T0 + i * S
        state = apply(state, KEY, visit(f"e{i}", at), PLAN, now_ms=at).state
        if i % 50 == 0:
            store.commit(state)
    assert state is not None
    store.commit(state)
    assert state.segs and state.seen_tail < SEAL
    # events 3 h later: the ids of the first 2 h (the dedup horizon is the lateness) are pruned
    late = at + 3 * H
    for i in range(5):
        state = apply(state, KEY, visit(f"n{i}", late + i * M), PLAN, now_ms=late + i * M).state
    assert len(state.seen) == 5 and state.seen_tail == 5  # compaction rewrote the rest
    blob = store.commit(state)
    assert store.segments == {} and state.segs == [] and state.seg_bytes == 0
    assert blob[0] == CURRENT_VERSION  # whole again: fewer ids than a segment
    same(loads(blob), state)


def test_a_recompute_drops_the_old_segments() -> None:
    store = Store()
    old = store.load(store.commit(visited(SEAL + 3)))
    items = [(visit(f"r{i}", T0 + i * S), T0 + i * S) for i in range(3)]
    new = recompute(old, KEY, items, PLAN, now_ms=T0 + H, source_id="plan").state
    assert new.seen.keys() >= old.seen.keys() and new.seen_tail == len(new.seen)
    blob = store.commit(new)
    assert new.segs == [1] and store.written == 2  # the old one dropped, all ids sealed anew
    same(store.load(blob), new)


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        (None, "the state keeps part of itself in 1 segments"),
        ({}, "segment 0 of the state is missing"),
        ({0: b"\xc1"}, "corrupt segment 0 of the state"),
    ],
)
def test_a_segmented_blob_without_its_segments_is_refused(
    segments: dict[int, bytes] | None, message: str
) -> None:
    state = visited(SEAL + 1)
    blob, sealed, _ = dumps_split(state)
    assert [seq for seq, _ in sealed] == [0]
    assert loads(blob, dict(sealed).get) == state
    with pytest.raises(StateFormatError) as caught:
        loads(blob, None if segments is None else segments.get)
    assert str(caught.value).startswith(message)


def test_a_busy_property_history_is_sealed_and_reads_back_equal() -> None:
    store, state = Store(), None
    for i in range(2 * SEAL + 5):  # every update moves both attributes: two earlier values each
        at = T0 + i * S
        state = apply(state, KEY, update(i, at), PROFILE_PLAN, now_ms=at).state
        if i % 7 == 0:
            back = store.load(store.commit(state))
            same(back, state)
            state = back
    assert state is not None
    blob = store.commit(state)
    assert state.segs and state.past_sealed  # the history is sealed, the seen ids with it
    assert sum(len(v) for v in state.past.values()) > 2 * SEAL
    same(store.load(blob), state)
    assert any(type(value) is Decimal for value, _ in state.past["size"])  # ext type 1


def test_an_update_among_sealed_values_unseals_and_every_segment_goes() -> None:
    store, state = Store(), updated(SEAL + 3)
    store.commit(state)
    assert state.segs == [0] and state.past_sealed
    # an update that arrived late lands before the sealed values: they are no longer a prefix
    late = apply(state, KEY, update(999, T0 + 500, "saas"), PROFILE_PLAN, now_ms=T0 + H).state
    assert late.past_sealed == {} and late.seen_tail == len(late.seen)
    blob = store.commit(late)
    assert store.segments.keys() == {1} and late.segs == [1]  # the old one dropped, resealed
    same(store.load(blob), late)


def test_the_history_pruned_past_the_horizon_unseals() -> None:
    store, state = Store(), updated(SEAL + 3)
    store.commit(state)
    assert state.segs
    # compaction: the history before the horizon (2 h) is dropped
    later = T0 + (SEAL + 2) * S + 3 * H
    state = apply(state, KEY, update(1001, later), PROFILE_PLAN, now_ms=later).state
    assert state.past_sealed == {}
    blob = store.commit(state)
    assert store.segments == {} and blob[0] == CURRENT_VERSION
    same(loads(blob), state)
