"""The last step of the evaluation order (docs/plans.md, Evaluation order, "Emit"): emit a
change when the total moved.

There is no outbox of published changes any more: the stream shell commits a state and the
changes it caused in one Kafka transaction, so a duplicate item has nothing to republish.
"""

from __future__ import annotations

from streams.scoring.aggregate import crossings, tier_of, total
from streams.scoring.decay import Evaluation, evaluate, schedule
from streams.scoring.events import EntityKey
from streams.scoring.outcomes import Cause, ScoreChange, score_change
from streams.scoring.plan.spec import Plan, Score
from streams.scoring.state import Ledger


def emit(
    changes: list[ScoreChange],
    ledger: Ledger,
    score: Score,
    key: EntityKey,
    plan: Plan,
    cause: Cause,
    rule_ids: tuple[str, ...],
    source_id: str,
    occurred_at_ms: int,
    known: Evaluation | None = None,
    following: int | None = None,
) -> None:
    """Append a change (next seq) if the score's total differs from the last emitted one; if it
    moved the score into another tier, append the tier change as a record of its own (next seq,
    cause ``tier``, value unchanged).

    A decaying score is evaluated at the later of ``occurred_at_ms`` and its last evaluation,
    and its next decay check is scheduled (``decay``); ``known``: ``decay.evaluate``'s answer
    at ``occurred_at_ms``, already found (``catchup``), used if that is where it evaluates;
    ``following``: the next check after it, if found (``decay.schedule``'s answer then).
    """
    old = ledger.total
    decays = bool(score.decays)
    at_ms = occurred_at_ms
    down = up = 0
    soonest: int | None = None
    if decays:
        if ledger.decayed_ms > at_ms:
            at_ms, known = ledger.decayed_ms, None
        if known is None:
            following = None
        ledger.decayed_ms = at_ms
        # drop_spent, then decayed_total
        new, down, up, soonest = evaluate(score, ledger, at_ms) if known is None else known
    else:
        new = total(score, ledger.sums, ledger.rolled)
    if new != old:
        ledger.seq += 1
        ledger.total = new
        before = after = None
        if score.tiers:
            before, after = tier_of(score, old), tier_of(score, new)
        changes.append(
            score_change(
                key.tenant_id,
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
                before,
                after,
            )
        )
        if before != after:
            ledger.seq += 1
            changes.append(
                score_change(
                    key.tenant_id,
                    key.kind,
                    key.entity_id,
                    score.name,
                    ledger.seq,
                    new,
                    new,
                    Cause.TIER,
                    rule_ids,
                    source_id,
                    occurred_at_ms,
                    (),
                    plan.version,
                    before,
                    after,
                )
            )
    if decays:
        if following is None:
            schedule(score, ledger, at_ms, (down, up))
        else:
            ledger.decay_due_ms = following if down or up else None
        ledger.refresh_due_after(soonest)  # (the expiries: found by ``evaluate``)
