"""Step 9 of SPEC §4: emit a change when the total moved; the outbox for republication."""

from __future__ import annotations

from collections.abc import Sequence

from streams.scoring.aggregate import crossings, total
from streams.scoring.events import EntityKey
from streams.scoring.outcomes import Cause, ScoreChange
from streams.scoring.plan import Plan, Score
from streams.scoring.state import OUTBOX_GROUPS, EntityState, OutboxRow, ScoreState


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
    """Keep the changes an item (or an advance, trigger 0) caused, for republication."""
    rows: tuple[OutboxRow, ...] = tuple(c[3:] for c in changes)
    outbox = entity.outbox
    outbox.append((trigger, rows))
    if len(outbox) > OUTBOX_GROUPS:
        del outbox[0]


def replay(entity: EntityState, key: EntityKey, trigger: int) -> tuple[ScoreChange, ...]:
    """The changes item ``trigger`` caused, if still in the outbox (same ids and seqs)."""
    for group_trigger, rows in entity.outbox:
        if group_trigger == trigger:
            return tuple(_change(key, row) for row in rows)
    return ()


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
