"""A consumed batch, grouped per partition, and the offsets a commit or an abort needs."""

from __future__ import annotations

from collections.abc import Iterable

from streams.engine.clients import Record


def group_batch(batch: list[Record]) -> dict[tuple[str, int], list[Record]]:
    """A consumed batch per (topic, partition), each in offset order (first-seen order)."""
    groups: dict[tuple[str, int], list[Record]] = {}
    for rec in batch:
        tp = (rec.topic, rec.partition)
        group = groups.get(tp)
        if group is None:
            groups[tp] = [rec]
        else:
            group.append(rec)
    return groups


def positions_to_commit(
    found: Iterable[tuple[tuple[str, int], int | None]],
    processed: dict[tuple[str, int], int],
    committed: dict[tuple[str, int], int],
) -> dict[tuple[str, int], int]:
    """The offsets a commit sends besides the transaction's own (``processed``, last processed
    + 1, which these override): each assigned partition's position where it has one; else its
    committed offset, unless the transaction processed some of it. No position means nothing
    fetched since assign or since a ``seek`` (librdkafka resets the position on a seek): after
    a seek back into a batch, the older committed offset would undo what the transaction did.

    The position is what to commit: every record ``consume`` returned has been processed when a
    commit runs, and unlike "last processed + 1" it is also past the transaction markers that
    follow our own records on the entity-events topic. Partitions with no position send their
    committed offset, so that even a transaction of time-driven work alone carries the group's
    generation (zombie fencing, KIP-447).
    """
    out: dict[tuple[str, int], int] = {}
    for key, offset in found:
        if offset is not None and offset >= 0:
            out[key] = offset
        elif key not in processed and key in committed:
            out[key] = committed[key]
    return out


def unprocessed(
    groups: dict[tuple[str, int], list[Record]], done: set[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """Where to rewind the partitions of a batch that an abort cut short: their first offset."""
    return {tp: batch[0].offset for tp, batch in groups.items() if tp not in done}
