"""Readers of the first state formats (v1-v3), v1's writer (kept so tests can prove old blobs
still load), and the parts every reader shares; ``serialize`` describes the formats."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgpack

from streams.scoring.capping import flat, stored
from streams.scoring.errors import StateFormatError
from streams.scoring.state import (
    C_OCCURRED,
    NO_EPOCH,
    NO_MEMBERS,
    NO_SEALED,
    NO_SEGS,
    NO_VERSIONS,
    EntityState,
    Ledger,
)

DECIMAL_EXT = 1


def load_legacy(blob: bytes) -> EntityState:
    """A v1, v2 or v3 blob (msgpack, self-describing)."""
    try:
        body = msgpack.unpackb(
            blob[1:], use_list=False, strict_map_key=False, ext_hook=_ext_hook, raw=False
        )
        return _from_v1(body) if blob[:1] == b"\x01" else _from_v2(body)
    except StateFormatError:
        raise
    except Exception as error:  # msgpack raises several unrelated types on corrupt input
        raise StateFormatError(f"corrupt state blob: {error}") from error


def entity_of(
    watermark: int | None,
    compacted: int,
    seen_ages: dict[int, int],
    props: Any,
    next_due: int | None,
) -> EntityState:
    """The entity-level fields shared by v2-v6 (seen ids stored as ``watermark - time``)."""
    state = EntityState.__new__(EntityState)
    state.watermark_ms = watermark
    state.compacted_ms = compacted
    base = watermark if watermark is not None else 0
    state.seen = {h: base - age for h, age in seen_ages.items()}
    state.seen_tail, state.segs, state.seg_bytes, state.seg_next = len(state.seen), NO_SEGS, 0, 0
    state.past_sealed = NO_SEALED
    state.props = props
    state.next_due_ms = next_due
    return state


def no_links(state: EntityState) -> None:
    """States written before roll-ups: no update sent, no membership recorded."""
    state.rv, state.account_link, state.deal_links = 0, None, []


def _default(value: object) -> msgpack.ExtType:
    if type(value) is Decimal:
        return msgpack.ExtType(DECIMAL_EXT, str(value).encode())
    raise TypeError(f"cannot serialize {type(value).__name__}")


def _ext_hook(code: int, data: bytes) -> object:
    if code == DECIMAL_EXT:
        return Decimal(data.decode())
    raise StateFormatError(f"unknown msgpack extension type {code}")


def _from_v2(body: Any) -> EntityState:
    """v2 and v3 (v3 appends fields to v2's arrays)."""
    watermark, compacted, seen, props, scores, _outbox, next_due, *v3 = body
    state = entity_of(watermark, compacted, seen, props, next_due)
    ledgers: dict[str, Ledger] = {}
    for name, row in scores.items():
        s = Ledger.__new__(Ledger)
        s.memo = None  # (a cache: see ``state.Ledger``)
        (s.seq, s.total, s.epoch_ms, contribs, s.sums, s.folded, s.statics, caps, s.holds,
         pending, s.next_due_ms, *added) = row  # fmt: skip
        s.contribs = tuple(contribs)
        s.caps = flat({rule: tuple(times) for rule, times in caps.items()})
        s.pending = list(pending)
        s.standby, s.anchors = added if added else ({}, {})
        s.decayed_ms, s.decay_due_ms, s.active, s.inactive_due_ms = NO_EPOCH, None, [], None
        s.members, s.versions, s.rolled = NO_MEMBERS, NO_VERSIONS, 0
        ledgers[name] = s
    state.scores = ledgers
    no_links(state)
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
                "caps": stored(s.caps),
                "holds": {rule: (list(h) if h else None) for rule, h in s.holds.items()},
                "pending": [[due, src, [list(c) for c in cs]] for due, src, cs in s.pending],
            }
            for name, s in state.scores.items()
        },
    }
    packed: bytes = msgpack.packb(body, default=_default, use_bin_type=True)
    return b"\x01" + packed


def _from_v1(body: Any) -> EntityState:
    state = EntityState()
    state.watermark_ms = body["watermark_ms"]
    state.seen = {h: at for h, at in body["seen"]}
    state.seen_tail = len(state.seen)
    state.props = {name: (p["value"], p["at"]) for name, p in body["props"].items()}
    for name, raw in body["scores"].items():
        s = state.score(name)
        s.seq, s.total = raw["seq"], raw["total"]
        s.epoch_ms = NO_EPOCH if raw["epoch_ms"] is None else raw["epoch_ms"]
        s.contribs = tuple(tuple(c) for c in raw["contributions"])
        s.folded = {(rule, cat): pts for rule, cat, pts in raw["folded"]}
        s.statics = dict(raw["statics"])
        s.caps = flat({rule: tuple(times) for rule, times in raw["caps"].items()})
        s.holds = {rule: (tuple(h) if h else None) for rule, h in raw["holds"].items()}
        s.pending = [(due, src, tuple(tuple(c) for c in cs)) for due, src, cs in raw["pending"]]
        s.rebuild_sums()
    _start_history(state)
    state.refresh_due()
    return state
