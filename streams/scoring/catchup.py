"""Time-driven work in closed form: inactivity and decay over any silence, in one evaluation.

``catch_up`` makes every inactivity deduction due by an instant (``inactivity.due``: counted,
one contribution per silence) and takes the score's last decay check by then
(``decay.last_check``), then publishes one change for both. Its work is bounded whatever the
length of the silence: a worker that was down for a year and one that evaluated every period
end at the same value; the first publishes one change for the year, the second one per period.
"""

from __future__ import annotations

from typing import cast

from streams.scoring import inactivity
from streams.scoring.decay import drop_spent, last_check
from streams.scoring.emit import emit
from streams.scoring.events import EntityKey
from streams.scoring.outcomes import Cause, ScoreChange
from streams.scoring.plan.spec import Plan, Score
from streams.scoring.state import C_RULE, Contribution, Ledger, raw


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
    if ledger.decay_due_ms is not None and ledger.decay_due_ms <= upto_ms:
        check_ms = last_check(score, ledger, upto_ms)
        at_ms = check_ms if at_ms is None else max(at_ms, check_ms)
        spent = drop_spent(score, ledger, at_ms)
        rule_ids += _decaying_rules(score, [*spent, *ledger.contribs])
    if at_ms is not None:
        emit(changes, ledger, score, key, plan, cause, rule_ids, "", at_ms)


def _decaying_rules(score: Score, contribs: list[Contribution]) -> tuple[str, ...]:
    """The decaying rules among the contributions, in first-seen order, each once."""
    decays = score.decays
    seen: list[str] = []
    for contrib in raw(contribs):  # (read item by item: see ``state.Raw``)
        rule_id = cast(str, contrib[C_RULE])
        if rule_id in decays and rule_id not in seen:
            seen.append(rule_id)
    return tuple(seen)
