"""Compact, versioned bytes for an ``EntityState`` (what the stream shell stores per entity).

Layout: one version byte, then a msgpack body.

- **v7** (current, for a state whose seen ids are partly in sealed segments, see ``segments``):
  the v6 body with only the ids in no segment (the tail) as its seen ids, then the live
  segments' seqs, their size and the next seq. ``dumps_split`` writes it; ``dumps`` writes v6.
- **v6** (current otherwise): v5 with the roll-ups' fields appended: per score row its members and
  their aggregate; per entity the contact's update version, account and deals (see
  ``rollup``).
- **v5** (still readable): v4 with four fields appended to each score row: the instant its total was
  evaluated at, its next decay check (see ``decay``), its event times and its next inactivity
  deduction (see ``inactivity``).
- **v4** (still readable): v3 without the outbox slot, written and read with msgspec; reading is
  typed (contributions come out as tuples, ledgers' lists as lists), so no second pass
  rebuilds containers. Same msgpack encoding of each value as v3, one byte smaller.
- **v3** (still readable): v2 plus the property history (``past``, ``floor_ms``) per entity
  and the once rules' stand-by matches and the state rules' anchors per score, appended.
- **v2** (still readable): positional arrays. Seen ids are stored as ``hash -> watermark -
  time`` (small non-negative ints); Decimal property values as msgpack ext type 1 (their
  exact text).
- **v1** (first release, still readable): self-describing maps with named keys.

v2 and v3 bodies have a slot for an outbox of published changes that earlier releases kept;
it was always written empty at the end and is ignored on reading (transactions made it
redundant).

``loads`` upgrades older versions; ``dumps`` always writes the current one. An upgraded state
has no stand-by matches, and its property history starts after its newest property time, with
each held state rule anchored at its hold (suppressed holds before any epoch).

Derived data (category sums, next due times) is stored to keep loading cheap, and rebuilt
when reading v1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, cast

import msgspec

from streams.scoring.capping import flat, stored
from streams.scoring.errors import StateFormatError
from streams.scoring.rollup import restore_members, stored_members
from streams.scoring.segments import Sealed, join, past_tail, split, tail
from streams.scoring.serialize_legacy import (
    DECIMAL_EXT,
    dumps_v1,
    entity_of,
    load_legacy,
    no_links,
)
from streams.scoring.state import (
    NO_EPOCH,
    NO_MEMBERS,
    NO_SEGS,
    NO_VERSIONS,
    Contribs,
    Contribution,
    EntityState,
    Ledger,
    Pending,
    Prop,
)

CURRENT_VERSION = 6  # what ``dumps`` writes; ``dumps_split`` writes 7 for a segmented state
SEGMENTED_VERSION = 7
_V1, _V2, _V3, _V4, _V5, _V6 = b"\x01", b"\x02", b"\x03", b"\x04", b"\x05", b"\x06"
_V7 = b"\x07"

#: The v6 body, for msgspec's typed decoding: (watermark, compacted, seen ages, props,
#: scores, next due, past, floor, update version, account, deals); a score row is (seq, total,
#: epoch, contribs, sums, folded, statics, caps, holds, pending, next due, stand-by, anchors,
#: decayed at, decay due, active, inactive due, members, rolled). v5 lacks the last three
#: fields of the body and the last two of a row; v4's rows lack four more.
_Row = tuple[
    int, int, int, Contribs, dict[str | None, int], dict[tuple[str, str | None], int],
    dict[str, int], dict[str, tuple[int, ...]], dict[str, Contribution | None], list[Pending],
    int | None, dict[str, Contribution], dict[str, int], int, int | None, list[int], int | None,
    dict[str, tuple[int, int | None]], int,
]  # fmt: skip
_Row5 = tuple[
    int, int, int, Contribs, dict[str | None, int], dict[tuple[str, str | None], int],
    dict[str, int], dict[str, tuple[int, ...]], dict[str, Contribution | None], list[Pending],
    int | None, dict[str, Contribution], dict[str, int], int, int | None, list[int], int | None,
]  # fmt: skip
_Row4 = tuple[
    int, int, int, Contribs, dict[str | None, int], dict[tuple[str, str | None], int],
    dict[str, int], dict[str, tuple[int, ...]], dict[str, Contribution | None], list[Pending],
    int | None, dict[str, Contribution], dict[str, int],
]  # fmt: skip
_WireProp = tuple[Any, int]  # the value: str, bool, None or a Decimal (ext type 1)
_Body = tuple[
    int | None, int, dict[int, int], dict[str, _WireProp], dict[str, _Row], int | None,
    dict[str, list[_WireProp]], int, int, str | None, list[str],
]  # fmt: skip
_Body5 = tuple[
    int | None, int, dict[int, int], dict[str, _WireProp], dict[str, _Row5], int | None,
    dict[str, list[_WireProp]], int,
]  # fmt: skip
_Body4 = tuple[
    int | None, int, dict[int, int], dict[str, _WireProp], dict[str, _Row4], int | None,
    dict[str, list[_WireProp]], int,
]  # fmt: skip


def _ext_decimal(code: int, data: memoryview) -> object:
    if code == DECIMAL_EXT:
        return Decimal(bytes(data).decode())
    raise StateFormatError(f"unknown msgpack extension type {code}")


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Body, ext_hook=_ext_decimal)
_decoder5 = msgspec.msgpack.Decoder(_Body5, ext_hook=_ext_decimal)
_decoder4 = msgspec.msgpack.Decoder(_Body4, ext_hook=_ext_decimal)
#: v7: the v6 body (seen: the tail only), then the segments' seqs, size and next seq.
_Body7 = tuple[_Body, list[int], int, int]
_decoder7 = msgspec.msgpack.Decoder(_Body7, ext_hook=_ext_decimal)
#: A segment (``segments``): (seen ids: hash -> event time, earlier property values per name).
_decoder_segment = msgspec.msgpack.Decoder(
    dict[int, int] | tuple[dict[int, int], dict[str, list[_WireProp]]], ext_hook=_ext_decimal
)


def _wire(prop: Prop) -> _WireProp:
    """msgspec writes a Decimal as a string: ours go out as ext type 1, as in v2/v3."""
    value = prop[0]
    if type(value) is Decimal:
        return (msgspec.msgpack.Ext(DECIMAL_EXT, str(value).encode()), prop[1])
    return prop


def _wire_props(props: dict[str, Prop]) -> dict[str, _WireProp]:
    for value, _ in props.values():
        if type(value) is Decimal:
            return {name: _wire(prop) for name, prop in props.items()}
    return props  # no Decimal: the same values


def dumps(state: EntityState) -> bytes:
    """Serialize an entity state, whole (format v6: every seen id in the blob)."""
    return _V6 + _encoder.encode(body(state, state.seen.items(), state.past))


def dumps_split(state: EntityState) -> tuple[bytes, list[tuple[int, bytes]], list[int]]:
    """Serialize an entity state for a commit (``segments``): the blob (v7 when some of it is in
    sealed segments, else v6), the segments sealed now (seq, bytes) and the seqs of the
    segments no longer needed. Updates the state's segment bookkeeping."""
    content, dropped = split(state)
    sealed: list[tuple[int, bytes]] = []
    if content is not None:
        seen, past = content
        segment = _encoder.encode((seen, _wire_past(past)))
        sealed.append((state.segs[-1], segment))
        state.seg_bytes += len(segment)
    if not state.segs:  # (seqs start again at 0 once none is live, as when read back from v6)
        state.seg_next = 0
        return dumps(state), sealed, dropped
    v6 = body(state, tail(state), past_tail(state))
    return _V7 + _encoder.encode((v6, state.segs, state.seg_bytes, state.seg_next)), sealed, dropped


def _wire_past(past: dict[str, list[Prop]]) -> dict[str, list[_WireProp]]:
    return {name: [_wire(p) for p in older] for name, older in past.items()} if past else {}


def body(
    state: EntityState, seen: Iterable[tuple[int, int]], past: dict[str, list[Prop]]
) -> tuple[Any, ...]:
    """The v6 body of ``state`` with ``seen`` as its seen ids and ``past`` as its property
    history (msgpack-encoded by the caller)."""
    watermark = state.watermark_ms
    base = watermark if watermark is not None else 0
    return (
        watermark,
        state.compacted_ms,
        {h: base - at for h, at in seen},
        _wire_props(state.props),
        {
            name: (
                s.seq, s.total, s.epoch_ms, s.contribs, s.sums, s.folded, s.statics, stored(s.caps),
                s.holds, s.pending, s.next_due_ms, s.standby, s.anchors, s.decayed_ms,
                s.decay_due_ms, s.active, s.inactive_due_ms,
                stored_members(s), s.rolled,
            )
            for name, s in state.scores.items()
        },
        state.next_due_ms,
        _wire_past(past),
        state.floor_ms,
        state.rv,
        state.account_link,
        state.deal_links,
    )  # fmt: skip


def _segments(read: Callable[[int], bytes | None]) -> Callable[[int], Sealed | None]:
    def segment(seq: int) -> Sealed | None:
        blob = read(seq)
        if blob is None:
            return None
        try:
            content = _decoder_segment.decode(blob)
        except (msgspec.DecodeError, ValueError) as error:
            raise StateFormatError(f"corrupt segment {seq} of the state: {error}") from error
        if isinstance(content, dict):  # (the first segments held seen ids only)
            return content, {}
        return content

    return segment


def loads(blob: bytes, segment: Callable[[int], bytes | None] | None = None) -> EntityState:
    """Deserialize any supported format version; raise ``StateFormatError`` if corrupt. A v7
    blob needs ``segment``, the reader of the entity's sealed segments (their bytes)."""
    if not blob:
        raise StateFormatError("empty state blob")
    version = blob[:1]
    if version in (_V7, _V6, _V5, _V4):
        try:
            if version == _V7:
                v6, segs, seg_bytes, seg_next = _decoder7.decode(memoryview(blob)[1:])
                state = _from_v6(v6)
                join(state, None if segment is None else _segments(segment), segs)
                state.seg_bytes, state.seg_next = seg_bytes, seg_next
                return state
            if version == _V6:
                return _from_v6(_decoder.decode(memoryview(blob)[1:]))
            if version == _V5:
                return _from_v4(_decoder5.decode(memoryview(blob)[1:]))
            return _from_v4(_decoder4.decode(memoryview(blob)[1:]))
        except StateFormatError:
            raise
        except (msgspec.DecodeError, ValueError) as error:
            raise StateFormatError(f"corrupt state blob: {error}") from error
    if version in (_V3, _V2, _V1):
        state = load_legacy(blob)
        state.seen_tail, state.segs, state.seg_bytes, state.seg_next = (
            len(state.seen),
            NO_SEGS,
            0,
            0,
        )
        return state
    raise StateFormatError(f"unknown state format version {blob[0]} (this build reads 1-7)")


def _from_v6(body: _Body) -> EntityState:
    watermark, compacted, seen, props, scores, next_due, past, floor, rv, account, deals = body
    state = entity_of(watermark, compacted, seen, props, next_due)
    ledgers: dict[str, Ledger] = {}
    for name, row in scores.items():
        s = Ledger.__new__(Ledger)
        s.memo = None  # (a cache: see ``state.Ledger``)
        (s.seq, s.total, s.epoch_ms, s.contribs, s.sums, s.folded, s.statics, caps, s.holds,
         s.pending, s.next_due_ms, s.standby, s.anchors, s.decayed_ms, s.decay_due_ms, s.active,
         s.inactive_due_ms, members, s.rolled) = row  # fmt: skip
        restore_members(s, members)
        s.caps = flat(caps)
        ledgers[name] = s
    state.scores = ledgers
    state.past = past
    state.floor_ms = floor
    state.rv, state.account_link, state.deal_links = rv, account, deals
    return state


def _from_v4(body: _Body5 | _Body4) -> EntityState:
    """v4 and v5 (v5 appends the decay and inactivity fields to each score row)."""
    watermark, compacted, seen, props, scores, next_due, past, floor = body
    state = entity_of(watermark, compacted, seen, props, next_due)
    ledgers: dict[str, Ledger] = {}
    for name, row in scores.items():
        s = Ledger.__new__(Ledger)
        s.memo = None  # (a cache: see ``state.Ledger``)
        (s.seq, s.total, s.epoch_ms, s.contribs, s.sums, s.folded, s.statics, caps, s.holds,
         s.pending, s.next_due_ms, s.standby, s.anchors, *added) = row  # fmt: skip
        if added:
            s.decayed_ms, s.decay_due_ms = cast(int, added[0]), cast("int | None", added[1])
            s.active, s.inactive_due_ms = cast("list[int]", added[2]), cast("int | None", added[3])
        else:
            s.decayed_ms, s.decay_due_ms, s.active, s.inactive_due_ms = NO_EPOCH, None, [], None
        s.members, s.versions, s.rolled = NO_MEMBERS, NO_VERSIONS, 0
        s.caps = flat(caps)
        ledgers[name] = s
    state.scores = ledgers
    state.past = past
    state.floor_ms = floor
    no_links(state)
    return state


__all__ = ["CURRENT_VERSION", "SEGMENTED_VERSION", "dumps", "dumps_split", "dumps_v1", "loads"]
