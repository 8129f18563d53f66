"""A busy entity's dedup memory in sealed segments, so a commit writes what changed, not all of it.

An entity remembers the ids of its events and commands for the plan's ``dedup_horizon`` (7 days
by default), so a busy contact holds thousands of them. Written whole into every commit that
touches the entity, they made the state's encoding, its changelog record and its store write grow
with the entity's activity (a contact with 6,000 ids in a week: a 150 KB state per commit).

So once ``SEAL`` ids were added since the last seal, :func:`split` (called by
``serialize.dumps_split`` at the commit's encoding) seals them into a segment: a record of its own,
numbered (``seq``), written once and never changed. The state blob keeps only the ids added since
(its tail) and the seqs of its live segments (format v7); loading it reads its segments back
(``serialize.loads`` with a ``segment`` reader). An entity with fewer than ``SEAL`` ids is written
as before (v6), whole.

Bookkeeping, on ``EntityState`` and not part of its equality (``state.SEGMENT_FIELDS``):

- ``seen_tail``: the newest ``seen_tail`` entries of ``seen`` (in insertion order) are in no
  segment; an insertion adds one;
- ``segs``: the live segments' seqs, oldest first; ``seg_bytes``: their encoded size (the cache
  counts it with the blob); ``seg_next``: the next seq.

Whatever removes entries from ``seen`` or rebuilds it (compaction's pruning, a recompute's merge)
sets ``seen_tail = len(seen)``: then no entry needs a segment, :func:`split` drops every live one
(the shell writes a tombstone for each) and the entries are written again, whole or sealed anew.
So a segment never holds an id that ``seen`` no longer has, and loading needs no filter.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice

import msgspec

from streams.scoring.errors import StateFormatError
from streams.scoring.state import EntityState

#: Ids added since the last seal that make a segment.
SEAL = 64

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(dict[int, int])


def tail(state: EntityState) -> list[tuple[int, int]]:
    """The entries of ``seen`` in no segment (its newest ``seen_tail``), oldest first."""
    count = state.seen_tail
    seen = state.seen
    if count >= len(seen):
        return list(seen.items())
    newest = list(islice(reversed(seen.items()), count))
    newest.reverse()
    return newest


def split(state: EntityState) -> tuple[list[tuple[int, bytes]], list[int]]:
    """Seal the tail into a segment once it holds ``SEAL`` ids, and drop the segments no longer
    needed; returns the new segments (seq, bytes) and the seqs dropped. Updates the state's
    bookkeeping: call it once per encoding that is written (a commit)."""
    dropped: list[int] = []
    if state.segs and state.seen_tail >= len(state.seen):  # every entry is in the tail
        dropped, state.segs, state.seg_bytes = state.segs, [], 0
    if state.seen_tail < SEAL:
        return [], dropped
    blob = _encoder.encode(dict(tail(state)))
    seq = state.seg_next
    state.seg_next = seq + 1
    state.segs = [*state.segs, seq]
    state.seg_bytes += len(blob)
    state.seen_tail = 0
    return [(seq, blob)], dropped


#: Reads a segment of the entity being loaded by its seq (None: not stored).
SegmentReader = Callable[[int], "bytes | None"]


def join(
    state: EntityState, tail_seen: dict[int, int], segment: SegmentReader | None, segs: list[int]
) -> None:
    """Rebuild ``seen`` of a v7 state: its segments' ids (oldest first), then its tail."""
    if segment is None:
        raise StateFormatError(f"the state keeps its seen ids in {len(segs)} segments, and "
                               "no reader of segments was given")  # fmt: skip
    seen: dict[int, int] = {}
    for seq in segs:
        blob = segment(seq)
        if blob is None:
            raise StateFormatError(f"segment {seq} of the state's seen ids is missing")
        try:
            seen.update(_decoder.decode(blob))
        except msgspec.DecodeError as error:
            raise StateFormatError(f"corrupt segment {seq} of seen ids: {error}") from error
    seen.update(tail_seen)
    state.seen = seen
    state.seen_tail = len(tail_seen)
    state.segs = segs
