"""Manual adjustments (docs/plans.md, Adjustments): add/subtract contributions, set/reset epochs.

- ``add``/``subtract``: an uncategorised contribution of rule ``adjustment:add`` or
  ``adjustment:subtract`` (+/- points) at the command's time, optionally expiring.
- ``set``/``reset``: a new epoch starting at the command's ``occurred_at``: everything that
  occurred earlier stops counting (see ``ledger.start_epoch``); ``set`` then adds a base
  contribution ``adjustment:set`` of ``points``. A set/reset older than the current epoch is
  superseded: only its ``command_id`` is recorded. A ``repeat: once`` rule whose award the
  epoch drops awards its stand-by match if that occurred after the epoch (``once.reopen``);
  such rules are listed in the change's ``rule_ids`` after ``adjustment:set``/``reset``.
- Idempotent by ``command_id`` per entity; subject to the plan's lateness like events; never
  suppressed by quiet hours.
"""

from __future__ import annotations

from streams.scoring import ledger as ledgers
from streams.scoring.aggregate import total
from streams.scoring.compaction import maybe_compact
from streams.scoring.emit import emit
from streams.scoring.events import Adjustment, EntityKey
from streams.scoring.once import Awards, reopen
from streams.scoring.outcomes import Cause, ScoreChange, ScoreResult, Verdict, score_result
from streams.scoring.plan.spec import Plan
from streams.scoring.state import EntityState, Ledger

Applied = tuple[ScoreResult, ...]


def apply_adjustment(
    entity: EntityState,
    key: EntityKey,
    command: Adjustment,
    trigger: int,
    plan: Plan,
    now_ms: int,
    changes: list[ScoreChange],
) -> Applied:
    name = command.score
    if trigger in entity.seen:
        return (score_result(name, Verdict.DUPLICATE),)
    at_ms = command.occurred_at_ms
    watermark = entity.watermark_ms
    if watermark is not None and at_ms < watermark - plan.lateness_ms:
        return (score_result(name, Verdict.TOO_LATE),)
    entity.seen[trigger] = at_ms
    entity.seen_tail += 1  # not in a sealed segment (``segments``)
    if watermark is None or at_ms > watermark:
        entity.watermark_ms = at_ms
    reopened: Awards = []
    verdict = _adjust(entity, key, command, plan, now_ms, changes, reopened)
    maybe_compact(entity, key.kind, plan)
    rule = f"adjustment:{command.op}"
    if verdict is not Verdict.ADJUSTED:
        return (score_result(name, verdict),)
    signed = -command.points if command.op == "subtract" else command.points
    return (score_result(name, verdict, ((rule, signed), *reopened)),)


def _adjust(
    entity: EntityState,
    key: EntityKey,
    command: Adjustment,
    plan: Plan,
    now_ms: int,
    changes: list[ScoreChange],
    reopened: Awards,
) -> Verdict:
    score = plan.by_name.get(command.score)
    if score is None or score.entity != key.kind:
        return Verdict.UNKNOWN_SCORE
    ledger = entity.scores.get(score.name)
    if ledger is None:
        ledger = entity.scores[score.name] = Ledger()
        ledger.total = total(score, {})
    at_ms = command.occurred_at_ms
    rule_ids: tuple[str, ...] = (f"adjustment:{command.op}",)
    if command.op in ("add", "subtract"):
        if at_ms < ledger.epoch_ms:
            return Verdict.BEFORE_RESET
        ttl = command.expires_after_ms
        expires = None if ttl is None else at_ms + ttl
        if expires is not None and expires <= now_ms:
            return Verdict.EXPIRED
        points = command.points if command.op == "add" else -command.points
        ledgers.record(ledger, (rule_ids[0], points, None, at_ms, expires, command.command_id))
    else:
        if at_ms < ledger.epoch_ms:
            return Verdict.SUPERSEDED
        ledgers.start_epoch(ledger, at_ms)
        rule_ids += reopen(ledger, score, now_ms=now_ms, awards=reopened)
        if command.op == "set" and command.points:
            contrib = (ledgers.SET_RULE, command.points, None, at_ms, None, command.command_id)
            ledgers.record(ledger, contrib)
    emit(changes, ledger, score, key, plan, Cause.ADJUSTMENT, rule_ids, command.command_id, at_ms)
    return Verdict.ADJUSTED
