"""A busy entity's growing memories in sealed segments, so a commit writes what changed.

Two parts of a state grow with an entity's activity and change only at their ends: the ids of
its events and commands, remembered for the plan's ``dedup_horizon`` (7 days by default), and
the earlier values of its properties, kept for state rules within ``lateness`` (``profile``).
Written whole into every commit that touches the entity, they made the state's encoding, its
changelog record and its store write grow with the entity's activity (a contact with 6,000
ids in a week: a 150 KB state per commit).

So once ``SEAL`` ids, or ``SEAL`` earlier property values, were added since the last seal,
:func:`split` (called by ``serialize.dumps_split`` at the commit's encoding) seals what was
added of both into a segment: a record of its own, numbered (``seq``), written once and never
changed. The state blob keeps only what was added since (its tails) and the seqs of its live
segments (format v7); loading it reads its segments back (``serialize.loads`` with a
``segment`` reader). An entity with fewer than ``SEAL`` of either is written whole, as before.

Bookkeeping, on ``EntityState`` and not part of its equality (``state.SEGMENT_FIELDS``):

- ``seen_tail``: the newest ``seen_tail`` entries of ``seen`` (in insertion order) are in no
  segment; an insertion adds one;
- ``past_sealed``: per property, how many of its earliest values in ``past`` are in segments
  (an update in order appends to the end; ``profile`` calls :func:`unseal` when one lands
  before that);
- ``segs``: the live segments' seqs, oldest first; ``seg_bytes``: their encoded size (the cache
  counts it with the blob); ``seg_next``: the next seq.

Whatever removes or reorders sealed entries (compaction's pruning, an out-of-order property
update among sealed values, a recompute's merge) calls :func:`unseal`: then nothing needs a
segment, :func:`split` drops every live one (the shell writes a tombstone for each) and the
entries are written again, whole or sealed anew. So a segment never holds an entry the state no
longer has, and loading needs no filter.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice

from streams.scoring.errors import StateFormatError
from streams.scoring.state import NO_SEALED, NO_SEGS, EntityState, Prop

#: Ids (or earlier property values) added since the last seal that make a segment.
SEAL = 64

#: What a segment holds: the seen ids sealed (hash -> event time) and, per property, the run of
#: its earlier values sealed (oldest first).
Sealed = tuple[dict[int, int], dict[str, list[Prop]]]
#: Reads a segment of the entity being loaded by its seq (None: not stored).
SegmentReader = Callable[[int], "Sealed | None"]


def unseal(state: EntityState) -> None:
    """Sealed entries were removed or reordered: every entry goes to the blob again (or to new
    segments), and the next :func:`split` drops the old segments."""
    state.seen_tail = len(state.seen)
    state.past_sealed = NO_SEALED


def tail(state: EntityState) -> list[tuple[int, int]]:
    """The entries of ``seen`` in no segment (its newest ``seen_tail``), oldest first."""
    count = state.seen_tail
    seen = state.seen
    if count >= len(seen):
        return list(seen.items())
    newest = list(islice(reversed(seen.items()), count))
    newest.reverse()
    return newest


def past_tail(state: EntityState) -> dict[str, list[Prop]]:
    """The earlier property values in no segment: per property, the values after its sealed
    ones (properties with none left out)."""
    sealed = state.past_sealed
    if not sealed:
        return state.past
    return {name: older[sealed.get(name, 0):] for name, older in state.past.items()
            if len(older) > sealed.get(name, 0)}  # fmt: skip


def split(state: EntityState) -> tuple[Sealed | None, list[int]]:
    """Seal the tails into a segment once either holds ``SEAL`` entries, and drop the segments
    no longer needed; returns what to seal now (None: nothing) and the seqs dropped. Updates
    the state's bookkeeping (the new segment's seq is ``segs[-1]``; the caller adds its size
    to ``seg_bytes``): call it once per encoding that is written (a commit)."""
    dropped: list[int] = []
    sealed = state.past_sealed
    if state.segs and state.seen_tail >= len(state.seen) and not sealed:  # nothing is sealed
        dropped, state.segs, state.seg_bytes = state.segs, NO_SEGS, 0
    past = state.past
    past_count = sum(len(older) for older in past.values()) - sum(sealed.values())
    if state.seen_tail < SEAL and past_count < SEAL:
        return None, dropped
    content = (dict(tail(state)), past_tail(state))
    seq = state.seg_next
    state.seg_next = seq + 1
    state.segs = [*state.segs, seq]
    state.seen_tail = 0
    state.past_sealed = {name: len(older) for name, older in past.items()}
    return content, dropped


def join(state: EntityState, segment: SegmentReader | None, segs: list[int]) -> None:
    """Rebuild ``seen`` and ``past`` of a v7 state read with its tails: its segments' entries
    (oldest first), then the tails."""
    if segment is None:
        raise StateFormatError(f"the state keeps part of itself in {len(segs)} segments, and "
                               "no reader of segments was given")  # fmt: skip
    seen: dict[int, int] = {}
    past: dict[str, list[Prop]] = {}
    for seq in segs:
        content = segment(seq)
        if content is None:
            raise StateFormatError(f"segment {seq} of the state is missing")
        seen.update(content[0])
        for name, run in content[1].items():
            past.setdefault(name, []).extend(run)
    sealed = {name: len(older) for name, older in past.items()}
    tail_seen, tail_past = state.seen, state.past
    seen.update(tail_seen)
    for name, run in tail_past.items():
        past.setdefault(name, []).extend(run)
    state.seen, state.past = seen, past
    state.seen_tail, state.past_sealed, state.segs = len(tail_seen), sealed, segs
