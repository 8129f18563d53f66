"""Time-driven work in closed form: inactivity and decay over any silence, in one evaluation.

``catch_up`` makes every inactivity deduction due by an instant (``inactivity.due``: counted,
one contribution per silence) and takes the score's last decay check by then
(``last_check``), then publishes one change for both. Its work is bounded whatever the
length of the silence: a worker that was down for a year and one that evaluated every period
end at the same value; the first publishes one change for the year, the second one per period.
"""

from __future__ import annotations

from typing import cast

from streams.scoring import inactivity
from streams.scoring.decay import Evaluation, drop_spent, evaluate, next_check
from streams.scoring.decay_fast import current
from streams.scoring.emit import emit
from streams.scoring.events import EntityKey
from streams.scoring.outcomes import Cause, ScoreChange
from streams.scoring.plan.spec import Plan, Score
from streams.scoring.state import C_RULE, Contribution, Ledger, Raw


def catch_up(
    ledger: Ledger,
    score: Score,
    key: EntityKey,
    plan: Plan,
    upto_ms: int,
    changes: list[ScoreChange],
) -> None:
    """Inactivity deductions and the decay check due by ``upto_ms``, in closed form: bounded
    work and one change, however long the silence (see ``inactivity`` and ``decay``)."""
    at_ms: int | None = None
    rule_ids: tuple[str, ...] = ()
    cause = Cause.DECAY
    idle, idle_ms = score.inactivity, ledger.inactive_due_ms
    if idle is not None and idle_ms is not None and idle_ms <= upto_ms:
        at_ms = inactivity.due(idle, ledger, upto_ms)
        rule_ids, cause = (inactivity.RULE,), Cause.INACTIVITY
    known: Evaluation | None = None
    following: int | None = None
    if ledger.decay_due_ms is not None and ledger.decay_due_ms <= upto_ms:
        check_ms, evaluation, after = last_check(score, ledger, upto_ms)
        if at_ms is None or at_ms <= check_ms:  # the change is at the check: what it found holds
            at_ms, known, following = check_ms, evaluation, after
        memo = current(score, ledger)
        if memo is not None and at_ms < memo.spent_from:  # nothing to drop: no pass
            rule_ids += memo.rules
        else:
            spent = drop_spent(score, ledger, at_ms)
            rule_ids += _decaying_rules(score, [*spent, *ledger.contribs])
    if at_ms is not None:
        emit(changes, ledger, score, key, plan, cause, rule_ids, "", at_ms, known, following)


def last_check(
    score: Score, ledger: Ledger, upto_ms: int
) -> tuple[int, Evaluation | None, int | None]:
    """The last decay check at or before ``upto_ms`` (``decay_due_ms`` is at or before it):
    where an evaluation catching up to ``upto_ms`` looks, in bounded work whatever the gap; and
    ``decay.evaluate``'s answer there and the next check after it if this evaluated it (None:
    not evaluated). Both hold after ``drop_spent`` there: a spent contribution is worth 0.

    The checks a walk would make are the multiples of the granularity and the first instants
    of band changes; after the last multiple only band changes remain, and there are at most
    as many as bands (one more pass per band, then it stops).
    """
    due = ledger.decay_due_ms
    assert due is not None and due <= upto_ms  # noqa: S101 - called when due
    step = score.decay_granularity_ms
    at = max(due, upto_ms // step * step)
    if not (score.thresholds or score.tiers):
        return at, None, None
    for _ in range(len(score.thresholds) + len(score.tiers) + 1):
        # the total and its spread at ``at``, as ``schedule`` has them after an evaluation
        evaluation = evaluate(score, ledger, at, drop=False)
        following = next_check(score, ledger, at, evaluation[0], (evaluation[1], evaluation[2]))
        if following > upto_ms:
            return at, evaluation, following
        at = following
    return at, None, None


def _decaying_rules(score: Score, contribs: list[Contribution]) -> tuple[str, ...]:
    """The decaying rules among the contributions, in first-seen order, each once."""
    decays = score.decays
    seen: list[str] = []
    for contrib in cast("list[Raw]", contribs):  # (read item by item: see ``state.Raw``)
        rule_id = cast(str, contrib[C_RULE])
        if rule_id in decays and rule_id not in seen:
            seen.append(rule_id)
    return tuple(seen)
