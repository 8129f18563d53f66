"""Compact, versioned bytes for an ``EntityState`` (what the stream shell stores per entity).

Layout: one version byte, then a msgpack body.

- **v5** (current): v4 with four fields appended to each score row: the instant its total was
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

Derived data (category sums, next due times) is stored to keep loading cheap, and recomputed
when reading v1.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

import msgpack
import msgspec

from streams.scoring.errors import StateFormatError
from streams.scoring.state import (
    C_OCCURRED,
    NO_EPOCH,
    Contribution,
    EntityState,
    Pending,
    Prop,
    ScoreState,
)

CURRENT_VERSION = 5
_DECIMAL_EXT = 1
_V1, _V2, _V3, _V4, _V5 = b"\x01", b"\x02", b"\x03", b"\x04", b"\x05"

#: The v5 body, for msgspec's typed decoding: (watermark, compacted, seen ages, props,
#: scores, next due, past, floor); a score row is (seq, total, epoch, contribs, sums, folded,
#: statics, caps, holds, pending, next due, stand-by, anchors, decayed at, decay due, active,
#: inactive due); v4's rows lack the last four.
_Row = tuple[
    int, int, int, list[Contribution], dict[str | None, int], dict[tuple[str, str | None], int],
    dict[str, int], dict[str, list[int]], dict[str, Contribution | None], list[Pending],
    int | None, dict[str, Contribution], dict[str, int], int, int | None, list[int], int | None,
]  # fmt: skip
_Row4 = tuple[
    int, int, int, list[Contribution], dict[str | None, int], dict[tuple[str, str | None], int],
    dict[str, int], dict[str, list[int]], dict[str, Contribution | None], list[Pending],
    int | None, dict[str, Contribution], dict[str, int],
]  # fmt: skip
_WireProp = tuple[Any, int]  # the value: str, bool, None or a Decimal (ext type 1)
_Body = tuple[
    int | None, int, dict[int, int], dict[str, _WireProp], dict[str, _Row], int | None,
    dict[str, list[_WireProp]], int,
]  # fmt: skip
_Body4 = tuple[
    int | None, int, dict[int, int], dict[str, _WireProp], dict[str, _Row4], int | None,
    dict[str, list[_WireProp]], int,
]  # fmt: skip


def _ext_decimal(code: int, data: memoryview) -> object:
    if code == _DECIMAL_EXT:
        return Decimal(bytes(data).decode())
    raise StateFormatError(f"unknown msgpack extension type {code}")


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Body, ext_hook=_ext_decimal)
_decoder4 = msgspec.msgpack.Decoder(_Body4, ext_hook=_ext_decimal)


def _wire(prop: Prop) -> _WireProp:
    """msgspec writes a Decimal as a string: ours go out as ext type 1, as in v2/v3."""
    value = prop[0]
    if type(value) is Decimal:
        return (msgspec.msgpack.Ext(_DECIMAL_EXT, str(value).encode()), prop[1])
    return prop


def _wire_props(props: dict[str, Prop]) -> dict[str, _WireProp]:
    for value, _ in props.values():
        if type(value) is Decimal:
            return {name: _wire(prop) for name, prop in props.items()}
    return props  # no Decimal: the same values


def _default(value: object) -> msgpack.ExtType:
    if type(value) is Decimal:
        return msgpack.ExtType(_DECIMAL_EXT, str(value).encode())
    raise TypeError(f"cannot serialize {type(value).__name__}")


def _ext_hook(code: int, data: bytes) -> object:
    if code == _DECIMAL_EXT:
        return Decimal(data.decode())
    raise StateFormatError(f"unknown msgpack extension type {code}")


def dumps(state: EntityState) -> bytes:
    """Serialize an entity state (current format version)."""
    watermark = state.watermark_ms
    base = watermark if watermark is not None else 0
    past = state.past
    body = (
        watermark,
        state.compacted_ms,
        {h: base - at for h, at in state.seen.items()},
        _wire_props(state.props),
        {
            name: (
                s.seq, s.total, s.epoch_ms, s.contribs, s.sums, s.folded, s.statics, s.caps,
                s.holds, s.pending, s.next_due_ms, s.standby, s.anchors, s.decayed_ms,
                s.decay_due_ms, s.active, s.inactive_due_ms,
            )
            for name, s in state.scores.items()
        },
        state.next_due_ms,
        {name: [_wire(p) for p in older] for name, older in past.items()} if past else past,
        state.floor_ms,
    )  # fmt: skip
    return _V5 + _encoder.encode(body)


def loads(blob: bytes) -> EntityState:
    """Deserialize any supported format version; raise ``StateFormatError`` if corrupt."""
    if not blob:
        raise StateFormatError("empty state blob")
    version = blob[:1]
    if version in (_V5, _V4):
        try:
            if version == _V5:
                return _from_v5(_decoder.decode(memoryview(blob)[1:]))
            return _from_v4(_decoder4.decode(memoryview(blob)[1:]))
        except StateFormatError:
            raise
        except (msgspec.DecodeError, ValueError) as error:
            raise StateFormatError(f"corrupt state blob: {error}") from error
    try:
        body = msgpack.unpackb(
            blob[1:], use_list=False, strict_map_key=False, ext_hook=_ext_hook, raw=False
        )
        if version in (_V3, _V2):
            return _from_v2(body)
        if version == _V1:
            return _from_v1(body)
    except StateFormatError:
        raise
    except Exception as error:  # msgpack raises several unrelated types on corrupt input
        raise StateFormatError(f"corrupt state blob: {error}") from error
    raise StateFormatError(f"unknown state format version {blob[0]} (this build reads 1-5)")


def _entity(
    watermark: int | None,
    compacted: int,
    seen_ages: dict[int, int],
    props: Any,
    next_due: int | None,
) -> EntityState:
    """The entity-level fields shared by v2-v4 (seen ids stored as ``watermark - time``)."""
    state = EntityState.__new__(EntityState)
    state.watermark_ms = watermark
    state.compacted_ms = compacted
    base = watermark if watermark is not None else 0
    state.seen = {h: base - age for h, age in seen_ages.items()}
    state.props = props
    state.next_due_ms = next_due
    return state


def _from_v5(body: _Body) -> EntityState:
    return _from_v4(body)


def _from_v4(body: _Body | _Body4) -> EntityState:
    """v4 and v5 (v5 appends the decay and inactivity fields to each score row)."""
    watermark, compacted, seen, props, scores, next_due, past, floor = body
    state = _entity(watermark, compacted, seen, props, next_due)
    ledgers: dict[str, ScoreState] = {}
    for name, row in scores.items():
        s = ScoreState.__new__(ScoreState)
        (s.seq, s.total, s.epoch_ms, s.contribs, s.sums, s.folded, s.statics, s.caps, s.holds,
         s.pending, s.next_due_ms, s.standby, s.anchors, *added) = row  # fmt: skip
        if added:
            s.decayed_ms, s.decay_due_ms = cast(int, added[0]), cast("int | None", added[1])
            s.active, s.inactive_due_ms = cast("list[int]", added[2]), cast("int | None", added[3])
        else:
            s.decayed_ms, s.decay_due_ms, s.active, s.inactive_due_ms = NO_EPOCH, None, [], None
        ledgers[name] = s
    state.scores = ledgers
    state.past = past
    state.floor_ms = floor
    return state


def _from_v2(body: Any) -> EntityState:
    """v2 and v3 (v3 appends fields to v2's arrays)."""
    watermark, compacted, seen, props, scores, _outbox, next_due, *v3 = body
    state = _entity(watermark, compacted, seen, props, next_due)
    ledgers: dict[str, ScoreState] = {}
    for name, row in scores.items():
        s = ScoreState.__new__(ScoreState)
        (s.seq, s.total, s.epoch_ms, contribs, s.sums, s.folded, s.statics, caps, s.holds,
         pending, s.next_due_ms, *added) = row  # fmt: skip
        s.contribs = list(contribs)
        s.caps = {rule: list(times) for rule, times in caps.items()}
        s.pending = list(pending)
        s.standby, s.anchors = added if added else ({}, {})
        s.decayed_ms, s.decay_due_ms, s.active, s.inactive_due_ms = NO_EPOCH, None, [], None
        ledgers[name] = s
    state.scores = ledgers
    if v3:
        past, state.floor_ms = v3
        state.past = {name: list(older) for name, older in past.items()}
    else:
        _start_history(state)
    return state


def _start_history(state: EntityState) -> None:
    """An upgraded state has no property history: it starts after the newest property time."""
    state.past = {}
    newest = max((at for _, at in state.props.values()), default=None)
    state.floor_ms = NO_EPOCH if newest is None else newest + 1
    for ledger in state.scores.values():
        ledger.anchors = {
            rule: NO_EPOCH if held is None else held[C_OCCURRED]
            for rule, held in ledger.holds.items()
        }


def dumps_v1(state: EntityState) -> bytes:
    """The first-release format (kept so tests can prove old blobs still load)."""
    body = {
        "watermark_ms": state.watermark_ms,
        "seen": [[h, at] for h, at in state.seen.items()],
        "props": {name: {"value": v, "at": at} for name, (v, at) in state.props.items()},
        "scores": {
            name: {
                "seq": s.seq,
                "total": s.total,
                "epoch_ms": None if s.epoch_ms == NO_EPOCH else s.epoch_ms,
                "contributions": [list(c) for c in s.contribs],
                "folded": [[rule, cat, pts] for (rule, cat), pts in s.folded.items()],
                "statics": s.statics,
                "caps": s.caps,
                "holds": {rule: (list(h) if h else None) for rule, h in s.holds.items()},
                "pending": [[due, src, [list(c) for c in cs]] for due, src, cs in s.pending],
            }
            for name, s in state.scores.items()
        },
    }
    packed: bytes = msgpack.packb(body, default=_default, use_bin_type=True)
    return _V1 + packed


def _from_v1(body: Any) -> EntityState:
    state = EntityState()
    state.watermark_ms = body["watermark_ms"]
    state.seen = {h: at for h, at in body["seen"]}
    state.props = {name: (p["value"], p["at"]) for name, p in body["props"].items()}
    for name, raw in body["scores"].items():
        s = state.score(name)
        s.seq, s.total = raw["seq"], raw["total"]
        s.epoch_ms = NO_EPOCH if raw["epoch_ms"] is None else raw["epoch_ms"]
        s.contribs = [tuple(c) for c in raw["contributions"]]
        s.folded = {(rule, cat): pts for rule, cat, pts in raw["folded"]}
        s.statics = dict(raw["statics"])
        s.caps = {rule: list(times) for rule, times in raw["caps"].items()}
        s.holds = {rule: (tuple(h) if h else None) for rule, h in raw["holds"].items()}
        s.pending = [(due, src, tuple(tuple(c) for c in cs)) for due, src, cs in raw["pending"]]
        s.recompute()
    _start_history(state)
    state.recompute_due()
    return state
