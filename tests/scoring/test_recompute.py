"""Recompute by replay (``streams.scoring.recompute``): an entity rebuilt under a new plan from
its retained items, one ``recompute`` change per score that moved, seqs continued, nothing
counted twice afterwards."""

from __future__ import annotations

from scoring_helpers import T0, H, make_plan, visit

from streams.scoring import EntityKey, EntityState, apply
from streams.scoring.outcomes import Cause
from streams.scoring.recompute import recompute

PLAN = """
version: {version}
scores:
  - name: s
    entity: contact
    tiers: [{{name: cold, below: 50}}, {{name: hot}}]
    rules:
      - {{id: visit, on: page_visit, points: {points}}}
"""
OLD = make_plan(PLAN.format(version="v1", points=10))
# v2: more points per visit, and a score the old plan did not have
NEW = make_plan(
    PLAN.format(version="v2", points=25)
    + """
  - name: t
    entity: contact
    rules:
      - {id: pricing, on: page_visit, points: 1}
"""
)
KEY = EntityKey("acme", "contact", "c1")
ITEMS = [(visit(f"e{i}", T0 + i * H), T0 + i * H) for i in range(3)]
SWITCH_MS = T0 + 10 * H


def live(items: list, plan=OLD) -> EntityState:  # type: ignore[no-untyped-def, type-arg]
    state = None
    for item, now_ms in items:
        state = apply(state, KEY, item, plan, now_ms=now_ms).state
    assert state is not None
    return state


def test_a_recompute_publishes_the_difference_and_continues_the_seq() -> None:
    old = live(ITEMS)
    assert (old.scores["s"].total, old.scores["s"].seq) == (30, 3)
    out = recompute(old, KEY, ITEMS, NEW, now_ms=SWITCH_MS, source_id="recompute:v2")
    got = [(c.score, c.seq, c.old_value, c.new_value, c.cause, c.plan_version, c.tier_before,
            c.tier_after) for c in out.changes]  # fmt: skip
    assert got == [
        ("s", 4, 30, 75, Cause.RECOMPUTE, "v2", "cold", "hot"),
        ("s", 5, 75, 75, Cause.TIER, "v2", "cold", "hot"),  # the tier change, its own record
        ("t", 1, 0, 3, Cause.RECOMPUTE, "v2", None, None),  # a score the old plan did not have
    ]
    assert out.changes[0].thresholds == () and out.changes[0].source_event_id == "recompute:v2"
    assert out.state.scores["s"].total == 75
    # an item after the switch counts once, on top of the recomputed value
    after = apply(out.state, KEY, visit("e9", SWITCH_MS + 1), NEW, now_ms=SWITCH_MS + 1)
    assert [(c.seq, c.old_value, c.new_value) for c in after.changes if c.score == "s"] == [
        (6, 75, 100)
    ]
    # a retained item seen again (a producer duplicate) is still a duplicate
    again = apply(out.state, KEY, ITEMS[0][0], NEW, now_ms=SWITCH_MS + 2)
    assert again.changes == ()


def test_an_unchanged_value_publishes_nothing_and_a_recompute_is_deterministic() -> None:
    old = live(ITEMS)
    same = recompute(old, KEY, ITEMS, OLD, now_ms=SWITCH_MS, source_id="r")
    assert same.changes == () and same.state.scores["s"].seq == 3
    one = recompute(live(ITEMS), KEY, ITEMS, NEW, now_ms=SWITCH_MS, source_id="r")
    two = recompute(live(ITEMS), KEY, ITEMS, NEW, now_ms=SWITCH_MS, source_id="r")
    assert one.changes == two.changes and one.state == two.state


def test_events_before_the_replayed_window_no_longer_count() -> None:
    """Recompute replays the retained items only: an older event's points are gone."""
    old = live(ITEMS)
    out = recompute(old, KEY, ITEMS[2:], NEW, now_ms=SWITCH_MS, source_id="r")
    redone = [(c.score, c.old_value, c.new_value) for c in out.changes
              if c.cause is Cause.RECOMPUTE]  # fmt: skip
    assert redone == [("s", 30, 25), ("t", 0, 1)]
    assert set(out.state.seen) == set(old.seen)  # the older ids stay seen


def test_a_recompute_of_an_entity_without_state_starts_at_zero() -> None:
    out = recompute(None, KEY, ITEMS[:1], NEW, now_ms=SWITCH_MS, source_id="r")
    assert [(c.score, c.seq, c.old_value, c.new_value) for c in out.changes
            if c.cause is Cause.RECOMPUTE] == [("s", 1, 0, 25), ("t", 1, 0, 1)]  # fmt: skip


def test_a_score_the_new_plan_drops_sleeps_and_keeps_its_seq() -> None:
    """Back under a plan that has it again, the score continues its seq (never restarts at 1)."""
    expiring = make_plan(PLAN.format(version="v1", points=10).replace(
        "points: 10}", "points: 10, expires_after: 2h}"))  # fmt: skip
    other = make_plan("""
version: v3
scores:
  - name: u
    entity: contact
    rules:
      - {id: visit, on: page_visit, points: 1}
""")
    old = live(ITEMS, expiring)
    assert old.next_due_ms is not None
    out = recompute(old, KEY, ITEMS, other, now_ms=SWITCH_MS, source_id="r")
    assert out.state.scores["s"].seq == old.scores["s"].seq and out.state.next_due_ms is None
    assert [(c.score, c.new_value) for c in out.changes] == [("u", 3)]
    back = recompute(out.state, KEY, ITEMS, OLD, now_ms=SWITCH_MS + 1, source_id="r")
    assert [(c.score, c.seq, c.old_value, c.new_value) for c in back.changes
            if c.cause is Cause.RECOMPUTE] == [("s", old.scores["s"].seq + 1, 20, 30)]  # fmt: skip


def test_a_switch_without_recompute_leaves_a_dropped_score_asleep() -> None:
    """``advance`` under a plan without the score: its expiries never come due again (else the
    entity would be advanced and rewritten at every tick)."""
    expiring = make_plan(PLAN.format(version="v1", points=10).replace(
        "points: 10}", "points: 10, expires_after: 2h}"))  # fmt: skip
    other = make_plan(PLAN.format(version="v3", points=1).replace("name: s", "name: u"))
    from streams.scoring import advance

    state = live(ITEMS, expiring)
    out = advance(state, KEY, other, now_ms=SWITCH_MS)
    assert out.changes == () and out.state.next_due_ms is None
    assert out.state.scores["s"].total == 20  # two live contributions when it fell asleep
