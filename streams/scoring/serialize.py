"""Compact, versioned bytes for an ``EntityState`` (what the stream shell stores per entity).

Layout: one version byte, then a msgpack body.

- **v2** (current): positional arrays. Seen ids are stored as ``hash -> watermark - time`` (small
  non-negative ints); Decimal property values as msgpack ext type 1 (their exact text).
- **v1** (first release, still readable): self-describing maps with named keys and no outbox.
  ``loads`` upgrades it; ``dumps`` always writes the current version.

Derived data (category sums, next due times) is stored in v2 to keep loading cheap, and
recomputed when reading v1.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgpack

from streams.scoring.errors import StateFormatError
from streams.scoring.state import NO_EPOCH, EntityState, ScoreState

CURRENT_VERSION = 2
_DECIMAL_EXT = 1
_V1, _V2 = b"\x01", b"\x02"


def _default(value: object) -> msgpack.ExtType:
    if type(value) is Decimal:
        return msgpack.ExtType(_DECIMAL_EXT, str(value).encode())
    raise TypeError(f"cannot serialize {type(value).__name__}")


def _ext_hook(code: int, data: bytes) -> object:
    if code == _DECIMAL_EXT:
        return Decimal(data.decode())
    raise StateFormatError(f"unknown msgpack extension type {code}")


_packer = msgpack.Packer(default=_default, use_bin_type=True, autoreset=True)


def dumps(state: EntityState) -> bytes:
    """Serialize an entity state (current format version)."""
    watermark = state.watermark_ms
    base = watermark if watermark is not None else 0
    body = [
        watermark,
        state.compacted_ms,
        {h: base - at for h, at in state.seen.items()},
        state.props,
        {
            name: [
                s.seq,
                s.total,
                s.epoch_ms,
                s.contribs,
                s.sums,
                s.folded,
                s.statics,
                s.caps,
                s.holds,
                s.pending,
                s.next_due_ms,
            ]
            for name, s in state.scores.items()
        },
        state.outbox,
        state.next_due_ms,
    ]
    packed: bytes = _packer.pack(body)
    return _V2 + packed


def loads(blob: bytes) -> EntityState:
    """Deserialize any supported format version; raise ``StateFormatError`` if corrupt."""
    if not blob:
        raise StateFormatError("empty state blob")
    version = blob[:1]
    try:
        body = msgpack.unpackb(
            blob[1:], use_list=False, strict_map_key=False, ext_hook=_ext_hook, raw=False
        )
        if version == _V2:
            return _from_v2(body)
        if version == _V1:
            return _from_v1(body)
    except StateFormatError:
        raise
    except Exception as error:  # msgpack raises several unrelated types on corrupt input
        raise StateFormatError(f"corrupt state blob: {error}") from error
    raise StateFormatError(f"unknown state format version {blob[0]} (this build reads 1-2)")


def _from_v2(body: Any) -> EntityState:
    watermark, compacted, seen, props, scores, outbox, next_due = body
    state = EntityState.__new__(EntityState)
    state.watermark_ms = watermark
    state.compacted_ms = compacted
    base = watermark if watermark is not None else 0
    state.seen = {h: base - age for h, age in seen.items()}
    state.props = props
    ledgers: dict[str, ScoreState] = {}
    for name, row in scores.items():
        s = ScoreState.__new__(ScoreState)
        (s.seq, s.total, s.epoch_ms, contribs, s.sums, s.folded, s.statics, caps, s.holds,
         pending, s.next_due_ms) = row  # fmt: skip
        s.contribs = list(contribs)
        s.caps = {rule: list(times) for rule, times in caps.items()}
        s.pending = list(pending)
        ledgers[name] = s
    state.scores = ledgers
    state.outbox = list(outbox)
    state.next_due_ms = next_due
    return state


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
    state.recompute_due()
    return state
