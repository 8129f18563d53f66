"""The scoring engine: ``apply`` an event or adjustment to one entity, ``advance`` its clock.

Pure functions of (state, key, item, plan, now). ``apply`` first advances the entity to
``now_ms`` (expiries and deferred awards due by then), then runs per score the evaluation order
of docs/plans.md: duplicate -> too late -> quiet hours -> match -> static -> capping -> points ->
record -> aggregate -> emit. State ownership: the input state is consumed (see ``state``).
"""

from __future__ import annotations

from streams.scoring import decay_fast, inactivity, matrix, predict, rollup
from streams.scoring import ledger as ledgers
from streams.scoring.aggregate import total
from streams.scoring.catchup import catch_up
from streams.scoring.compaction import maybe_compact
from streams.scoring.emit import emit
from streams.scoring.evaluate import Awards, event_rules
from streams.scoring.events import Adjustment, EntityKey, Event, Item
from streams.scoring.holds import follow, reevaluate
from streams.scoring.outcomes import (
    Cause,
    Outcome,
    ScoreChange,
    ScoreResult,
    Verdict,
    outcome,
    score_result,
)
from streams.scoring.plan.spec import Plan, Score
from streams.scoring.profile import update_props
from streams.scoring.quiet_hours import quiet_until
from streams.scoring.state import (
    C_EXPIRES,
    C_RULE,
    C_SOURCE,
    Contribution,
    EntityState,
    Ledger,
    id_hash,
)


def next_due_ms(state: EntityState | None) -> int | None:
    """Earliest pending expiry or deferred award of the entity (for the shell's timer index)."""
    return None if state is None else state.next_due_ms


def apply(
    state: EntityState | None, key: EntityKey, item: Item, plan: Plan, *, now_ms: int
) -> Outcome:
    """Apply one input item to one entity it routes to (see ``events.route``).

    Work due at or before ``now_ms`` is settled before the item and again after it (a late
    event can defer an award to a window end already in the past), so on return
    ``next_due_ms(state)`` is None or later than ``now_ms``.
    """
    entity = state if state is not None else EntityState()
    changes: list[ScoreChange] = []
    predicted = plan.predicted_by_kind.get(key.kind)
    due_ms = entity.next_due_ms
    if due_ms is not None and due_ms <= now_ms:
        settle(entity, key, plan, now_ms, changes)
        if predicted:  # the time step first, as if ``advance`` had run before the item
            source_id, at_ms = predict.step_source(changes, 0, due_ms)
            predict.refresh(entity, key, predicted, plan, changes, source_id, at_ms)
    if type(item) is Event:
        trigger = id_hash("e", item.event_id)
        results = _apply_event(entity, key, item, trigger, plan, now_ms, changes)
        source_id = item.event_id
    else:
        assert type(item) is Adjustment  # noqa: S101 - Item is a closed union
        trigger = id_hash("c", item.command_id)
        results = predict.adjust(entity, key, item, trigger, plan, now_ms, changes)
        source_id = item.command_id
    entity.refresh_due()
    if entity.next_due_ms is not None and entity.next_due_ms <= now_ms:
        settle(entity, key, plan, now_ms, changes)  # e.g. a late event deferred into the past
        entity.refresh_due()
    if predicted:
        predict.refresh(entity, key, predicted, plan, changes, source_id, item.occurred_at_ms)
    if changes and plan.matrices:
        matrix.follow(entity, key, plan, changes)
    if plan.rollup_sources and key.kind == "contact":
        forwards = rollup.after_item(entity, key, plan, changes, item)
        return outcome(entity, tuple(changes), results, forwards)
    return outcome(entity, tuple(changes), results)


def advance(state: EntityState | None, key: EntityKey, plan: Plan, *, now_ms: int) -> Outcome:
    """Apply every expiry and deferred award due at or before ``now_ms``, in due order.

    Idempotent: advancing again to the same instant changes nothing.
    """
    if state is None:
        return outcome(EntityState())
    changes: list[ScoreChange] = []
    due_ms = state.next_due_ms
    if due_ms is not None and due_ms <= now_ms:
        settle(state, key, plan, now_ms, changes)
        state.refresh_due()
        predicted = plan.predicted_by_kind.get(key.kind)
        if predicted:
            source_id, at_ms = predict.step_source(changes, 0, due_ms)
            predict.refresh(state, key, predicted, plan, changes, source_id, at_ms)
        if changes and plan.matrices:
            matrix.follow(state, key, plan, changes)
        if changes and plan.rollup_sources and key.kind == "contact":
            forwards = rollup.forwards(state, key, plan, changes, None, "", now_ms)
            return outcome(state, tuple(changes), (), forwards)
    return outcome(state, tuple(changes))


def settle(
    entity: EntityState, key: EntityKey, plan: Plan, now_ms: int, changes: list[ScoreChange]
) -> None:
    """Every expiry, deferred award, decay check and deduction due by ``now_ms``."""
    start = len(changes)
    for name, ledger in entity.scores.items():
        score = plan.by_name.get(name)
        if score is None or score.entity != key.kind:
            # a score the plan dropped (a tenant's new plan) sleeps: seq and value kept, never due
            ledger.next_due_ms = None
            continue
        while ledger.next_due_ms is not None and ledger.next_due_ms <= now_ms:
            if score.decays or score.inactivity is not None:
                when_ms = ledger.next_due_ms
                other_ms = decay_fast.event_due(score, ledger)
                if other_ms is not None and other_ms <= when_ms:  # an expiry or deferred award
                    _settle(ledger, score, key, plan, when_ms, changes)
                else:  # decay and inactivity up to the next of those, in one evaluation
                    upto_ms = now_ms if other_ms is None else min(now_ms, other_ms - 1)
                    catch_up(ledger, score, key, plan, upto_ms, changes)
                ledger.refresh_due()
                continue
            if any(p[0] <= now_ms for p in ledger.pending):
                _settle(ledger, score, key, plan, ledger.next_due_ms, changes)
                continue
            for gone in ledgers.expire_through(ledger, now_ms):  # the common case: one pass
                ledgers.forget(ledger, gone)
                rules = _unique([c[C_RULE] for c in gone])
                due_ms = gone[0][C_EXPIRES]
                assert due_ms is not None  # noqa: S101 - only expiring contributions expire
                emit(changes, ledger, score, key, plan, Cause.EXPIRY, rules, gone[0][C_SOURCE],
                     due_ms)  # fmt: skip
            ledger.refresh_due()
    if len(changes) - start > 1:
        changes[start:] = sorted(changes[start:], key=lambda c: c.occurred_at_ms)


def _settle(
    ledger: Ledger,
    score: Score,
    key: EntityKey,
    plan: Plan,
    due_ms: int,
    changes: list[ScoreChange],
) -> None:
    """Everything due at exactly ``due_ms`` (the ledger's earliest due time)."""
    gone = decay_fast.expire(score, ledger, due_ms)
    if gone:
        rules = _unique([c[C_RULE] for c in gone])
        emit(changes, ledger, score, key, plan, Cause.EXPIRY, rules, gone[0][C_SOURCE], due_ms)
    for _, source_id, held in ledgers.release(ledger, due_ms):
        kept = [c for c in held if c[C_EXPIRES] is None or c[C_EXPIRES] > due_ms]
        for contrib in kept:
            ledgers.record(ledger, contrib)
        rules = _unique([c[C_RULE] for c in kept])
        emit(changes, ledger, score, key, plan, Cause.DEFERRED, rules, source_id, due_ms)
    ledger.refresh_due()


_KEEP = (Verdict.SCORED, Verdict.DEFERRED, Verdict.QUIET)

#: Score name -> its result without awards, per verdict, built once (most scores of most items
#: get one). Separate dicts: hashing an enum member runs Python code.
_NO_MATCH: dict[str, ScoreResult] = {}
_DUPLICATE: dict[str, ScoreResult] = {}
_TOO_LATE: dict[str, ScoreResult] = {}


def _plain(score: str, verdict: Verdict, known: dict[str, ScoreResult]) -> ScoreResult:
    result = known.get(score)
    if result is None:
        result = known[score] = score_result(score, verdict)
    return result


def _unique(rule_ids: list[str]) -> tuple[str, ...]:
    """The rule ids in first-seen order, each once (a list scan: there are only a few)."""
    seen: list[str] = []
    for rule_id in rule_ids:
        if rule_id not in seen:
            seen.append(rule_id)
    return tuple(seen)


def _apply_event(
    entity: EntityState,
    key: EntityKey,
    event: Event,
    trigger: int,
    plan: Plan,
    now_ms: int,
    changes: list[ScoreChange],
) -> tuple[ScoreResult, ...]:
    scores = plan.by_kind.get(key.kind, ())
    if trigger in entity.seen:
        return tuple(_plain(s.name, Verdict.DUPLICATE, _DUPLICATE) for s in scores)
    at_ms = event.occurred_at_ms
    watermark = entity.watermark_ms
    if watermark is not None and at_ms < watermark - plan.lateness_ms:
        return tuple(_plain(s.name, Verdict.TOO_LATE, _TOO_LATE) for s in scores)
    entity.seen[trigger] = at_ms
    entity.seen_tail += 1  # not in a sealed segment (``segments``)
    if watermark is None or at_ms > watermark:
        entity.watermark_ms = at_ms
    stateful_kind = bool(plan.stateful.get(key.kind))
    out_of_order = update_props(entity, key.kind, event, history=stateful_kind)
    view = entity.view(key.kind) if out_of_order is not None and stateful_kind else None
    event_type = event.event_type
    results: list[ScoreResult] = []
    for score in scores:
        rules = score.event_rules.get(event_type, ())
        stateful = view is not None and bool(score.state_rules)
        idle = score.inactivity
        if not rules and not stateful and idle is None:
            results.append(_plain(score.name, Verdict.NO_MATCH, _NO_MATCH))
            continue
        ledger = entity.scores.get(score.name)
        if ledger is None:
            ledger = entity.scores[score.name] = Ledger()
            ledger.total = total(score, {})
        touched = False
        if idle is not None:
            touched = inactivity.touch(idle, ledger, at_ms)
            ledger.refresh_due()
        if not rules and not stateful:
            if touched:  # a late event undid (and redid) deductions, and scored nothing
                emit(changes, ledger, score, key, plan, Cause.INACTIVITY, (inactivity.RULE,),
                     event.event_id, at_ms)  # fmt: skip
            results.append(_plain(score.name, Verdict.NO_MATCH, _NO_MATCH))
            continue
        awards: Awards = []
        retracted: Awards = []
        contribs: list[Contribution] = []
        verdict = Verdict.NO_MATCH
        deferred = False
        if rules:
            quiet = score.quiet_hours
            quiet_end = None if quiet is None else quiet_until(quiet, score.zone, at_ms)
            if quiet_end is not None and quiet is not None and quiet.policy == "skip":
                verdict = Verdict.QUIET
            else:
                verdict = event_rules(
                    ledger,
                    rules,
                    event.fields,
                    at_ms=at_ms,
                    source_id=event.event_id,
                    now_ms=now_ms,
                    awards=awards,
                    contribs=contribs,
                    retracted=retracted,
                )
                if quiet_end is not None and verdict is Verdict.SCORED:
                    verdict, deferred = Verdict.DEFERRED, True
                    if contribs:
                        ledgers.defer(ledger, (quiet_end, event.event_id, tuple(contribs)))
                else:
                    for contrib in contribs:
                        ledgers.record(ledger, contrib)
        decided = len(awards)
        awards += retracted
        event_awards = len(awards)
        if stateful and view is not None:
            if out_of_order:
                reevaluate(
                    entity, key.kind, ledger, score, view, source_id=event.event_id, awards=awards
                )
            else:
                follow(ledger, score, view, at_ms=at_ms, source_id=event.event_id, awards=awards)
            if len(awards) > event_awards and verdict not in _KEEP:
                verdict = Verdict.SCORED
        # a deferred event's own awards count when the quiet period ends; what it took back
        # from a once rule's later award counts now
        counted = awards[decided:] if deferred else awards
        immediate = event_awards - decided if deferred else event_awards
        cause = Cause.RULE if immediate else Cause.STATE
        rule_ids = _unique([rule for rule, _ in counted])
        if touched:  # (a late event inside a silence)
            rule_ids += (inactivity.RULE,)
            if not counted:
                cause = Cause.INACTIVITY
        emit(changes, ledger, score, key, plan, cause, rule_ids, event.event_id, at_ms)
        results.append(score_result(score.name, verdict, tuple(awards)))
    maybe_compact(entity, key.kind, plan)
    return tuple(results)
