"""Step 9 of SPEC §4: emit a change when the total moved; the outbox for republication."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from streams.scoring.aggregate import crossings, total
from streams.scoring.events import EntityKey
from streams.scoring.outcomes import Cause, ScoreChange
from streams.scoring.plan import Plan, Score
from streams.scoring.state import OUTBOX_LIMIT, EntityState, OutboxRow, ScoreState


def emit(
    changes: list[ScoreChange],
    ledger: ScoreState,
    score: Score,
    key: EntityKey,
    plan: Plan,
    cause: Cause,
    rule_ids: tuple[str, ...],
    source_id: str,
    occurred_at_ms: int,
) -> None:
    """Append a change (next seq) if the score's total differs from the last emitted one."""
    old = ledger.total
    new = total(score, ledger.sums)
    if new == old:
        return
    ledger.seq += 1
    ledger.total = new
    changes.append(
        ScoreChange(
            key.account_id,
            key.kind,
            key.entity_id,
            score.name,
            ledger.seq,
            old,
            new,
            cause,
            rule_ids,
            source_id,
            occurred_at_ms,
            crossings(score, old, new),
            plan.version,
        )
    )


def remember(entity: EntityState, trigger: int, changes: Sequence[ScoreChange]) -> None:
    """Keep the changes an item (or an advance, trigger 0) caused, until they are acknowledged."""
    rows: tuple[OutboxRow, ...] = tuple(c[3:] for c in changes)
    outbox = entity.outbox
    outbox.append((trigger, rows))
    if len(outbox) > OUTBOX_LIMIT:
        del outbox[0]


def acknowledge(entity: EntityState, delivered: Mapping[str, int]) -> None:
    """Forget outbox changes known to be delivered: ``delivered`` maps score -> highest seq."""
    if not delivered or not entity.outbox:
        return
    kept = []
    for trigger, rows in entity.outbox:
        left = tuple(row for row in rows if row[1] > delivered.get(row[0], 0))
        if left:
            kept.append((trigger, left))
    entity.outbox = kept


def replay(entity: EntityState, key: EntityKey, trigger: int) -> tuple[ScoreChange, ...]:
    """What to publish again when item ``trigger`` arrives a second time: every change still in
    the outbox (not only the trigger's), oldest first.

    A duplicate after a crash means the state was saved but its changes may not have been
    delivered, and neither may those of the items after it: republishing the whole outbox (the
    changes not yet acknowledged) closes any gap; consumers drop the seqs they have seen.
    """
    del trigger  # every unacknowledged change goes out again, whichever item came back
    return outbox_changes(entity, key)


def outbox_changes(entity: EntityState, key: EntityKey) -> tuple[ScoreChange, ...]:
    """Every change still in the outbox, oldest first (e.g. to republish after a crash)."""
    return tuple(_change(key, row) for _, rows in entity.outbox for row in rows)


def _change(key: EntityKey, row: OutboxRow) -> ScoreChange:
    score, seq, old, new, cause, rule_ids, source, occurred, thresholds, version = row
    return ScoreChange(
        key.account_id,
        key.kind,
        key.entity_id,
        score,
        seq,
        old,
        new,
        Cause(cause),
        tuple(rule_ids),
        source,
        occurred,
        tuple((name, direction) for name, direction in thresholds),
        version,
    )
