"""Recompute by replay (docs/plans.md, ``--apply``): an entity's scores rebuilt under a new plan.

At the point where a partition switches a tenant to a new plan with a recompute (see
``streams.engine.tenants``), the shell hands in each of the tenant's entities with the retained
items it received since the recompute's start, in the order the partition applied them. The items
are applied again, from an empty state, under the new plan; the result replaces the entity's state,
and every score whose value differs from the one last published gets one change of cause
``recompute`` (its tier change too, and matrix cells that move), continuing the score's ``seq``.

Kept from the old state, because replaying items cannot rebuild them: the ``seq`` of every score;
the ledgers of scores the new plan does not have (asleep, as ``engine.settle`` leaves them, so a
later plan that has the score again continues its ``seq``); the event ids seen (a late duplicate
of an older event stays a duplicate); the members of deal roll-ups (they come from member
updates, not items); a contact's roll-up links and update version, so that the updates it sends
next are newer than every one it sent before.

Pure: no I/O, no clock. The same items and the same ``now_ms`` give the same state and changes,
which is what makes a recompute exactly once when the shell redoes it after a crash.
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.scoring import matrix, rollup
from streams.scoring.emit import emit
from streams.scoring.events import EntityKey, Item
from streams.scoring.outcomes import Cause, Outcome, ScoreChange, outcome
from streams.scoring.plan.spec import Plan, Score
from streams.scoring.scorer import advance, apply
from streams.scoring.segments import unseal
from streams.scoring.state import EntityState, Ledger


def recompute(
    old: EntityState | None,
    key: EntityKey,
    items: Iterable[tuple[Item, int]],
    plan: Plan,
    *,
    now_ms: int,
    source_id: str,
) -> Outcome:
    """The entity rebuilt from ``items`` (each with the "now" it was applied at), advanced to
    ``now_ms``, and its ``recompute`` changes against ``old``."""
    state: EntityState | None = None
    for item, item_now_ms in items:
        state = apply(state, key, item, plan, now_ms=item_now_ms).state
    new = advance(state, key, plan, now_ms=now_ms).state
    before = old if old is not None else EntityState()
    changes: list[ScoreChange] = []
    for score in plan.by_kind.get(key.kind, ()):
        ledger = new.scores.get(score.name)
        if ledger is None:
            ledger = new.scores[score.name] = Ledger()
        _carry(before.scores.get(score.name) or Ledger(), ledger, score)
        emit(changes, ledger, score, key, plan, Cause.RECOMPUTE, (), source_id, now_ms)
    for name, ledger in before.scores.items():
        if name not in new.scores:  # a score the new plan does not have: kept, asleep
            ledger.next_due_ms = None
            new.scores[name] = ledger
    new.seen = {**before.seen, **new.seen}
    # the old state's sealed segments are dropped at the next encoding (``segments``)
    unseal(new)
    new.segs, new.seg_bytes, new.seg_next = before.segs, before.seg_bytes, before.seg_next
    new.refresh_due()
    new.rv = before.rv
    new.account_link = before.account_link
    new.deal_links = list(before.deal_links)
    if changes and plan.matrices:
        matrix.follow(new, key, plan, changes)
    if plan.rollup_sources and key.kind == "contact":
        forwards = rollup.forwards(new, key, plan, changes, None, source_id, now_ms)
        return outcome(new, tuple(changes), (), forwards)
    return outcome(new, tuple(changes))


def _carry(published: Ledger, ledger: Ledger, score: Score) -> None:
    """What the replay cannot rebuild: the last published value and seq (0 and 0 for a score
    never published), and roll-up members."""
    ledger.seq = published.seq
    ledger.total = published.total  # ``emit`` compares the rebuilt value with this one
    if published.versions and score.rollup is not None:  # aggregated again: the new plan's way
        ledger.versions = dict(published.versions)
        ledger.members = dict(published.members)
        ledger.rolled = rollup.aggregate(score.rollup, ledger.members)
