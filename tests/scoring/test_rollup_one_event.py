"""One event that feeds a deal score both directly and through a member contact.

A ``deal.stage_changed`` carrying a ``contact_id`` goes to the contact (whose rule on the stage
change fires, and which joins the deal) and to the deal (whose own rule fires). The deal's
roll-up then follows the contact through a *member update*, which the service sends over the
entity-events topic after the contact's step: a record of its own, behind the deal's own copy
of the event in the deal's partition. So the deal score changes twice for that one event: its
own change (cause ``rule``) first, then the roll-up change (cause ``rollup``), each with its
own ``seq`` and both naming the event (docs/plans.md, Evaluation order and Roll-ups).
"""

from __future__ import annotations

import json
from typing import Any

from streams.commands.offline import OfflineScorer, parse_line
from streams.scoring import (
    EntityKey,
    EntityState,
    Invalid,
    ScoreChange,
    apply,
    apply_member,
    load_plan,
    route,
)

PLAN = """
scores:
  - name: engagement
    entity: contact
    rules:
      - {id: deal-moved, on: deal.stage_changed, points: 10}
  - name: deal-engagement
    entity: deal
    rollup: {from: engagement, aggregate: sum}
    rules:
      - {id: stage-moved, on: deal.stage_changed, points: 20}
"""
EVENT = {
    "type": "deal.stage_changed", "event_id": "s-1", "occurred_at": "2026-03-02T09:00:00Z",
    "deal_id": "d-1", "contact_id": "c-1", "pipeline": "sales", "to_stage": "qualified",
}  # fmt: skip
AT = 1_772_442_000_000  # 2026-03-02T09:00:00Z
CONTACT = EntityKey(None, "contact", "c-1")
DEAL = EntityKey(None, "deal", "d-1")

#: (entity id, score, seq, old, new, cause, rule ids, source event id, occurred at)
EXPECTED = [
    ("c-1", "engagement", 1, 0, 10, "rule", ("deal-moved",), "s-1", AT),
    ("d-1", "deal-engagement", 1, 0, 20, "rule", ("stage-moved",), "s-1", AT),
    ("d-1", "deal-engagement", 2, 20, 30, "rollup", ("rollup",), "s-1", AT),
]


def rows(changes: list[ScoreChange]) -> list[tuple[Any, ...]]:
    return [(c.entity_id, c.score, c.seq, c.old_value, c.new_value, str(c.cause), c.rule_ids,
             c.source_event_id, c.occurred_at_ms) for c in changes]  # fmt: skip


def event() -> Any:
    item = parse_line(json.dumps(EVENT))
    assert not isinstance(item, Invalid), item
    return item


def test_the_services_order_own_change_then_rollup() -> None:
    """The entity-events log as the service writes it: ingest appends the event's copy for the
    contact and for the deal in one transaction; the contact's step then appends its member
    update to the deal's partition, behind the deal's copy."""
    plan = load_plan(PLAN, source="one-event.yaml")
    item = event()
    assert route(item) == (CONTACT, DEAL)
    contact = apply(None, CONTACT, item, plan, now_ms=AT)
    deal = apply(None, DEAL, item, plan, now_ms=AT)
    ((target, update),) = contact.forwards
    assert target == DEAL and update.values == (("engagement", 10),)
    member = apply_member(deal.state, DEAL, update, plan, now_ms=AT)
    assert rows([*contact.changes, *deal.changes, *member.changes]) == EXPECTED
    assert isinstance(member.state, EntityState)


def test_the_offline_scorer_gives_the_same_changes() -> None:
    scorer = OfflineScorer(load_plan(PLAN, source="one-event.yaml"))
    assert rows(scorer.feed(event())) == EXPECTED


def test_offline_final_values_equal_the_services() -> None:
    scorer = OfflineScorer(load_plan(PLAN, source="one-event.yaml"))
    changes = scorer.feed(event())
    deal = [c for c in changes if c.entity == "deal"]
    assert len(deal) == 2 and {str(c.cause) for c in deal} == {"rule", "rollup"}
    assert deal[-1].new_value == 30 and deal[-1].seq == 2
