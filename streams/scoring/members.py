"""A member update arriving at a deal or account (see ``rollup``)."""

from __future__ import annotations

from streams.scoring import matrix, rollup
from streams.scoring.aggregate import total
from streams.scoring.emit import emit
from streams.scoring.events import EntityKey
from streams.scoring.outcomes import Cause, Outcome, ScoreChange, outcome
from streams.scoring.plan.spec import Plan
from streams.scoring.scorer import settle
from streams.scoring.state import EntityState, Ledger


def apply_member(
    state: EntityState | None,
    key: EntityKey,
    update: rollup.MemberUpdate,
    plan: Plan,
    *,
    now_ms: int,
) -> Outcome:
    """Apply a contact's member update to the roll-ups of one deal or account (``rollup``).

    Like ``apply``, work due by ``now_ms`` is settled first.
    """
    entity = state if state is not None else EntityState()
    changes: list[ScoreChange] = []
    if entity.next_due_ms is not None and entity.next_due_ms <= now_ms:
        settle(entity, key, plan, now_ms, changes)
    for score in plan.by_kind.get(key.kind, ()):
        spec = score.rollup
        if spec is None:
            continue
        ledger = entity.scores.get(score.name)
        if ledger is None:
            ledger = entity.scores[score.name] = Ledger()
            ledger.total = total(score, {})
        if rollup.admit(ledger, spec, update):
            emit(changes, ledger, score, key, plan, Cause.ROLLUP, (rollup.RULE,),
                 update.source_id, update.occurred_at_ms)  # fmt: skip
            if not score.decays:  # (a decaying score's due times were set by ``emit``)
                ledger.refresh_due()
    entity.refresh_due()
    if entity.next_due_ms is not None and entity.next_due_ms <= now_ms:
        settle(entity, key, plan, now_ms, changes)
        entity.refresh_due()
    if changes and plan.matrices:
        matrix.follow(entity, key, plan, changes)
    return outcome(entity, tuple(changes))
