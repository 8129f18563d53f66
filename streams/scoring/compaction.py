"""Bounded state: fold, prune and forget what can no longer matter.

Runs when an entity's watermark has moved ``plan.compaction_interval_ms`` since the last run.
With ``horizon = watermark - lateness`` (no item older than that is applied any more):

- contributions that never expire or decay and occurred before the horizon are folded into per
  (rule, category) totals: no later item can expire, cap or re-time them, and a set/reset
  (which must itself be after the horizon) clears all folded totals at once;
- cap history older than ``horizon - per`` is dropped: it cannot share a window with a new award;
- seen ids older than ``watermark - dedup_horizon`` are dropped: a repeat of such an event is
  too late anyway (``dedup_horizon >= lateness``);
- attribute tombstones older than the horizon are dropped; repeat-once flags and caps of rules
  no longer in the plan are dropped;
- stand-by matches of once rules older than the horizon are dropped: a set/reset that could
  award them would be too late;
- event times kept for inactivity older than the horizon are dropped, but the newest of them
  (where a silence crossing the horizon began);
- property history older than the horizon is dropped (keeping each property's value at the
  horizon), after recording when the state-rule matches in progress then began (``holds``);
  only when some of it would go: until then the history stays complete from its old floor;
"""

from __future__ import annotations

from typing import cast

from streams.scoring.capping import histories, prune
from streams.scoring.catalog import EntityKind
from streams.scoring.contribs import cooked, raw
from streams.scoring.holds import settle_anchors
from streams.scoring.inactivity import prune as prune_activity
from streams.scoring.plan.spec import Plan, Rule
from streams.scoring.profile import history_to_prune, prune_history
from streams.scoring.segments import unseal
from streams.scoring.state import (
    C_CATEGORY,
    C_EXPIRES,
    C_OCCURRED,
    C_POINTS,
    C_RULE,
    NO_EPOCH,
    NO_FOLDED,
    CapHistory,
    EntityState,
    Raw,
)


def maybe_compact(state: EntityState, kind: EntityKind, plan: Plan) -> None:
    watermark = state.watermark_ms
    if watermark is None or watermark - state.compacted_ms < plan.compaction_interval_ms:
        return
    if state.compacted_ms == NO_EPOCH:  # a new entity: nothing to compact yet
        state.compacted_ms = watermark
        return
    compact(state, kind, plan)


def compact(state: EntityState, kind: EntityKind, plan: Plan) -> None:
    watermark = state.watermark_ms
    if watermark is None:
        return
    state.compacted_ms = watermark
    horizon = watermark - plan.lateness_ms
    forget = watermark - plan.dedup_horizon_ms
    seen = state.seen
    if seen and min(seen.values()) < forget:  # (usually nothing is old enough to forget)
        state.seen = {h: at for h, at in seen.items() if at >= forget}
        unseal(state)  # every sealed segment is rewritten (``segments``)
    if horizon > state.floor_ms and history_to_prune(state, horizon):
        for stateful in plan.stateful.get(kind, ()):
            ledger = state.scores.get(stateful.name)
            if ledger is not None:  # (it exists once the entity has any property)
                settle_anchors(state, kind, ledger, stateful, horizon)
        prune_history(state, horizon)
    props = state.props
    if any(prop[0] is None and prop[1] < horizon for prop in props.values()):
        state.props = {
            name: prop for name, prop in props.items() if prop[0] is not None or prop[1] >= horizon
        }
    for name, ledger in state.scores.items():
        score = plan.by_name.get(name)
        rules = score.rule_by_id if score is not None else {}
        decays = score.decays if score is not None else {}
        keep: list[Raw] | None = None  # a new list only if something folds
        folded = ledger.folded
        contribs = raw(ledger.contribs)  # (read item by item: see ``state.Raw``)
        for i, contrib in enumerate(contribs):
            rule_id = cast(str, contrib[C_RULE])
            if (
                contrib[C_EXPIRES] is None
                and cast(int, contrib[C_OCCURRED]) < horizon
                and rule_id not in decays
            ):
                if keep is None:
                    keep = list(contribs[:i])
                    if folded is NO_FOLDED:  # (never added to: shared, ``state.NO_FOLDED``)
                        folded = ledger.folded = {}
                key = (rule_id, cast("str | None", contrib[C_CATEGORY]))
                folded[key] = folded.get(key, 0) + cast(int, contrib[C_POINTS])
            elif keep is not None:
                keep.append(contrib)
        if keep is not None:
            ledger.contribs = cooked(keep)
        if score is not None and score.inactivity is not None:
            prune_activity(ledger, horizon)
        if _caps_to_prune(ledger.caps, rules, horizon):
            caps: list[object] = []  # (in rule id order, as it was: ``capping``)
            for rule_id, times in histories(ledger.caps):
                rule = rules.get(rule_id)
                if rule is not None and rule.cap is not None:
                    kept = prune(times, horizon - rule.cap.per_ms)
                    if kept:
                        caps += (rule_id, len(kept), *kept)
            ledger.caps = tuple(caps)
        if ledger.statics and _statics_to_drop(ledger.statics, rules):
            ledger.statics = {
                rule_id: at
                for rule_id, at in ledger.statics.items()
                if rule_id in rules and rules[rule_id].once
            }
        if ledger.standby:
            ledger.standby = {
                rule_id: match
                for rule_id, match in ledger.standby.items()
                if match[C_OCCURRED] >= horizon and rule_id in rules and rules[rule_id].once
            }


def _caps_to_prune(caps: CapHistory, rules: dict[str, Rule], horizon: int) -> bool:
    """Whether pruning would change the cap history: a rule gone or no longer capped, no
    times, or an award time older than its window before the horizon (``capping.prune``)."""
    for rule_id, times in histories(caps):
        rule = rules.get(rule_id)
        if rule is None or rule.cap is None or not times or times[0] < horizon - rule.cap.per_ms:
            return True
    return False


def _statics_to_drop(statics: dict[str, int], rules: dict[str, Rule]) -> bool:
    """Whether a repeat-once flag belongs to a rule gone or no longer once (after a plan
    change; else the flags are kept as they are, without a new dict)."""
    for rule_id in statics:
        rule = rules.get(rule_id)
        if rule is None or not rule.once:
            return True
    return False
