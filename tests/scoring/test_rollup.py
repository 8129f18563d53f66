"""Roll-ups (docs/plans.md): validation, aggregates, member updates, explain, and the property that
a roll-up equals the aggregate of its members' final scores after any sequence of moves, whatever
order the contacts' events and the member updates arrive in."""

from __future__ import annotations

import gc
import random
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scoring_helpers import T0, D, H, ev, make_plan, visit

from streams.commands.offline import OfflineScorer
from streams.scoring import (
    EntityKey,
    EntityState,
    Event,
    PlanError,
    apply,
    apply_member,
    dumps,
    explain,
    loads,
)
from streams.scoring.plan.spec import Plan, Rollup
from streams.scoring.rollup import MemberUpdate, admit, aggregate, counted
from streams.scoring.state import Ledger

PLAN = """
scores:
  - name: engagement
    entity: contact
    rules:
      - {id: visit, on: page_visit, points: 10}
      - {id: bounce, on: email.bounce, points: -15}
  - name: team
    entity: account
    rollup: {from: engagement, aggregate: sum}
    thresholds: [{name: hot, at: 30}]
  - name: best
    entity: account
    rollup: {from: engagement, aggregate: max}
  - name: top2
    entity: account
    limits: {max: 45}
    rollup: {from: engagement, aggregate: top, k: 2}
  - name: heat
    entity: deal
    rollup: {from: engagement, aggregate: sum}
    rules: [{id: won, on: deal.stage_changed, where: {status: {eq: won}}, points: 100}]
"""


def errors(text: str) -> list[str]:
    with pytest.raises(PlanError) as caught:
        make_plan(text, source="x.yaml")
    return [str(issue) for issue in caught.value.issues]


ENGAGEMENT = "  - {name: e, entity: contact, rules: [{id: v, on: page_visit, points: 1}]}\n"


@pytest.mark.parametrize(
    ("score", "message"),
    [
        ("{name: a, entity: account}",
         "score 'a', field 'rollup': is required: an account score is the roll-up of its "
         "contacts' scores, e.g. {from: engagement, aggregate: sum}"),
        ("{name: a, entity: account, rollup: {from: e, aggregate: sum}, "
         "rules: [{id: v, on: page_visit, points: 1}]}",
         "score 'a', field 'rules': an account score takes no rules and no time-driven parts"),
        ("{name: a, entity: account, rollup: {from: e, aggregate: sum}, "
         "inactivity: {after: 30d, points: -1}}",
         "score 'a', field 'inactivity': an account score takes no rules"),
        ("{name: c, entity: contact, rollup: {from: e, aggregate: sum}}",
         "score 'c', field 'rollup': a contact score cannot roll up"),
        ("{name: a, entity: account, rollup: {from: e, aggregate: avg}}",
         "score 'a', field 'rollup.aggregate': must be one of sum, max, top (got 'avg')"),
        ("{name: a, entity: account, rollup: {from: e, aggregate: top}}",
         "score 'a', field 'rollup.k': is required with aggregate: top"),
        ("{name: a, entity: account, rollup: {from: e, aggregate: top, k: 0}}",
         "score 'a', field 'rollup.k': must be a positive integer of at most 1,000 (got 0)"),
        ("{name: a, entity: account, rollup: {from: e, aggregate: sum, k: 3}}",
         "score 'a', field 'rollup.k': only aggregate: top takes k (this roll-up is sum)"),
        ("{name: a, entity: account, rollup: {from: e, aggregate: sum, of: x}}",
         "score 'a', field 'rollup.of': unknown field (expected one of: from, aggregate, k)"),
        ("{name: a, entity: account, rollup: {aggregate: sum}}",
         "score 'a', field 'rollup.from': is required"),
        ("{name: a, entity: account, rollup: {from: nope, aggregate: sum}}",
         "score 'a', field 'rollup.from': no score named 'nope' in the plan (known: a, e)"),
        ("{name: a, entity: deal, rollup: {from: a, aggregate: sum}}",
         "score 'a', field 'rollup.from': score 'a' is a deal score; roll-ups read a contact "
         "score"),
    ],
)  # fmt: skip
def test_every_rollup_mistake_names_its_field(score: str, message: str) -> None:
    found = errors(f"scores:\n{ENGAGEMENT}  - {score}\n")
    assert any(issue.startswith(f"x.yaml: {message}") for issue in found), found


R_SUM, R_MAX, R_TOP = Rollup("e", "sum"), Rollup("e", "max"), Rollup("e", "top", 2)


@pytest.mark.parametrize(
    ("members", "sums"),
    [
        ({}, (0, 0, 0)),
        ({"a": 5}, (5, 5, 5)),
        ({"a": 5, "b": 7, "c": 1}, (13, 7, 12)),
        ({"a": -5, "b": -7}, (-12, -5, -12)),  # negative members count too
        ({"a": 0}, (0, 0, 0)),
    ],
)
def test_aggregates(members: dict[str, int], sums: tuple[int, ...]) -> None:
    assert tuple(aggregate(r, members) for r in (R_SUM, R_MAX, R_TOP)) == sums


@given(st.dictionaries(st.text(max_size=3), st.integers(-50, 50), max_size=30), st.integers(1, 6))
@settings(max_examples=300, deadline=None)
def test_top_is_the_sum_of_the_k_highest_values(members: dict[str, int], k: int) -> None:
    values = sorted(members.values(), reverse=True)
    assert aggregate(Rollup("engagement", "top", k), members) == sum(values[:k])


def update(contact: str, version: int, value: int | None) -> MemberUpdate:
    values = None if value is None else (("e", value),)
    return MemberUpdate(contact, version, values, f"src-{version}", T0 + version)


@pytest.mark.parametrize("rollup", [R_SUM, R_MAX, R_TOP])
def test_only_newer_updates_count_and_a_left_member_stays_gone(rollup: Rollup) -> None:
    ledger = Ledger()
    assert admit(ledger, rollup, update("a", 2, 10))
    assert not admit(ledger, rollup, update("a", 2, 10))  # a duplicate
    assert not admit(ledger, rollup, update("a", 1, 99))  # stale: sent before version 2
    assert admit(ledger, rollup, update("b", 1, 4))
    assert ledger.rolled == {"sum": 14, "max": 10, "top": 14}[rollup.aggregate]
    assert admit(ledger, rollup, update("a", 5, None))  # a leaves
    assert not admit(ledger, rollup, update("a", 3, 50))  # an older update cannot bring it back
    assert ledger.rolled == 4 and "a" not in ledger.members and ledger.versions["a"] == 5
    assert ledger.versions == {"a": 5, "b": 1}
    assert counted(rollup, ledger.members) == [("b", 4, True)]
    assert admit(ledger, rollup, update("a", 6, 3))  # newer than the tombstone: back again
    assert (ledger.rolled, ledger.members) == ({"sum": 7, "max": 4, "top": 7}[rollup.aggregate],
                                               {"b": 4, "a": 3})  # fmt: skip
    # maps of ints only: never tracked by the garbage collector (``state.Ledger.members``)
    assert not gc.is_tracked(ledger.members) and not gc.is_tracked(ledger.versions)


def key(kind: str, ident: str, tenant: str | None = None) -> EntityKey:
    return EntityKey(tenant, kind, ident)  # type: ignore[arg-type]


def profile(eid: str, at: int, contact: str, account: object) -> Event:
    return ev("contact.updated", eid, at, contact=contact, attributes={"account_id": account})


def test_membership_follows_the_attribute_by_event_time_and_tenant() -> None:
    scorer = OfflineScorer(make_plan(PLAN))
    scorer.feed(profile("p1", T0, "c1", "acme"))
    scorer.feed(visit("v1", T0 + 1, contact="c1"))
    scorer.feed(profile("p2", T0 + 10, "c1", "globex"))
    scorer.feed(profile("p0", T0 + 5, "c1", "initech"))  # older than p2: ignored
    other = ev("contact.updated", "t1", T0 + 2, contact="c1", account="tenant-b",
               attributes={"account_id": "acme"})  # fmt: skip
    scorer.feed(other)  # the same ids in another tenant: another contact, another account
    scorer.feed(profile("p3", T0 + 20, "c9", 42))  # a number names an account too
    scorer.feed(profile("p4", T0 + 20, "c8", True))  # a boolean names none
    team = {k.tenant_id or "-": s.scores["team"] for k, s in scorer.states.items()
            if k.kind == "account" and k.entity_id == "acme"}  # fmt: skip
    assert (team["-"].members, team["-"].versions) == ({}, {"c1": 3}) and team["-"].total == 0
    assert (team["tenant-b"].members, team["tenant-b"].versions) == ({"c1": 0}, {"c1": 1})
    globex = scorer.states[key("account", "globex")].scores["team"]
    assert (globex.total, globex.members) == (10, {"c1": 10})  # join, visit, leave, join
    assert globex.versions == {"c1": 4}
    for state in scorer.states.values():  # stored and read back: the same, a tombstone too
        blob = dumps(state)
        assert loads(blob) == state and dumps(loads(blob)) == blob
    assert loads(dumps(scorer.states[key("account", "acme")])).scores["team"].versions == {"c1": 3}
    assert key("account", "initech") not in scorer.states
    assert key("account", "42") in scorer.states
    assert scorer.states[key("contact", "c8")].account_link is None


def test_changes_carry_the_contact_change_that_caused_them() -> None:
    scorer = OfflineScorer(make_plan(PLAN))
    scorer.feed(profile("p1", T0, "c1", "acme"))
    scorer.feed(profile("p2", T0, "c2", "acme"))
    changes = [*scorer.feed(visit("v1", T0 + 1, contact="c1")),
               *scorer.feed(visit("v2", T0 + 2, contact="c2")),
               *scorer.feed(visit("v3", T0 + 3, contact="c2"))]  # fmt: skip
    acme = [(c.score, c.old_value, c.new_value, c.cause.value, c.rule_ids, c.source_event_id,
             c.occurred_at_ms, c.thresholds) for c in changes if c.entity == "account"]  # fmt: skip
    assert acme == [
        ("team", 0, 10, "rollup", ("rollup",), "v1", T0 + 1, ()),
        ("best", 0, 10, "rollup", ("rollup",), "v1", T0 + 1, ()),
        ("top2", 0, 10, "rollup", ("rollup",), "v1", T0 + 1, ()),
        ("team", 10, 20, "rollup", ("rollup",), "v2", T0 + 2, ()),
        ("top2", 10, 20, "rollup", ("rollup",), "v2", T0 + 2, ()),
        ("team", 20, 30, "rollup", ("rollup",), "v3", T0 + 3, (("hot", "up"),)),
        ("best", 10, 20, "rollup", ("rollup",), "v3", T0 + 3, ()),
        ("top2", 20, 30, "rollup", ("rollup",), "v3", T0 + 3, ()),
    ]  # fmt: skip


def test_a_deal_adds_its_contacts_engagement_to_its_own_points() -> None:
    scorer = OfflineScorer(make_plan(PLAN))
    scorer.feed(visit("v1", T0, contact="c1"))
    scorer.feed(visit("v2", T0 + 1, contact="c1", deal="d1"))  # c1 joins d1 with 20
    scorer.feed(visit("v3", T0 + 2, contact="c2", deal="d1"))
    scorer.feed(ev("deal.stage_changed", "s1", T0 + 3, contact=None, deal="d1",
                   pipeline="p", to_stage="won", status="won"))  # fmt: skip
    scorer.feed(ev("email.bounce", "b1", T0 + 4, contact="c2", action="bounce"))
    heat = scorer.states[key("deal", "d1")].scores["heat"]
    assert (heat.total, heat.rolled) == (100 + 20 - 5, 15)
    view = explain(scorer.states[key("deal", "d1")], scorer.plan, "heat").to_dict()
    assert view["value"] == 115 and view["total_before_limits"] == 115
    assert [c["rule"] for c in view["contributions"]] == ["won"]
    assert view["rollup"]["contributors"] == [
        {"contact_id": "c1", "value": 20, "counted": True},
        {"contact_id": "c2", "value": -5, "counted": True},
    ]


def test_explain_marks_the_members_an_aggregate_counts_and_limits_clamp() -> None:
    scorer = OfflineScorer(make_plan(PLAN))
    for i, visits in enumerate((3, 1, 2), 1):
        scorer.feed(profile(f"p{i}", T0, f"c{i}", "acme"))
        for n in range(visits):
            scorer.feed(visit(f"v{i}-{n}", T0 + 10 * i + n, contact=f"c{i}"))
    acme = scorer.states[key("account", "acme")]
    top2 = explain(acme, scorer.plan, "top2").to_dict()
    assert (top2["value"], top2["total_before_limits"], top2["limits"]["max"]) == (45, 50, 45)
    assert [(c["contact_id"], c["value"], c["counted"]) for c in top2["rollup"]["contributors"]] \
        == [("c1", 30, True), ("c3", 20, True), ("c2", 10, False)]  # fmt: skip
    best = explain(acme, scorer.plan, "best").to_dict()["rollup"]
    assert [c["counted"] for c in best["contributors"]] == [True, False, False]
    assert best["members"] == 3 and best["k"] is None


def test_a_decaying_contact_score_carries_its_decay_to_the_account() -> None:
    plan = make_plan("""
scores:
  - name: engagement
    entity: contact
    rules: [{id: visit, on: page_visit, points: 80, decay: {half_life: 1d}}]
  - {name: team, entity: account, rollup: {from: engagement, aggregate: sum}}
""")
    scorer = OfflineScorer(plan)
    scorer.feed(profile("p1", T0, "c1", "acme"))
    scorer.feed(visit("v1", T0, contact="c1"))
    changes = scorer.advance_to(T0 + 2 * D)
    # one time step, evaluated in closed form: the contact's last check by then, the second
    # midnight (UTC) since T0 (10:00), 27 in one change; the account follows the step with the
    # contact's value after it
    contact = [(c.new_value, c.occurred_at_ms) for c in changes if c.score == "engagement"]
    assert contact == [(27, T0 + 38 * H)]
    team = [(c.new_value, c.cause.value, c.occurred_at_ms) for c in changes if c.score == "team"]
    assert team == [(27, "rollup", T0 + 38 * H)]


# ----- the property -----------------------------------------------------------------------------

ACCOUNTS = ("acme", "globex", None)


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    """Events of up to four contacts: visits (some with a deal), bounces and account moves."""
    out: list[Event] = []
    for i in range(draw(st.integers(1, 24))):
        contact = f"c{draw(st.integers(1, 4))}"
        # distinct times: two updates of one attribute at the same instant are resolved by
        # arrival (see ``profile``), so only distinct times have one event-time answer
        at = T0 + draw(st.integers(0, 3 * D // 1000)) * 1000 + i
        kind = draw(st.sampled_from(("visit", "visit", "bounce", "move")))
        if kind == "visit":
            deal = draw(st.sampled_from((None, None, "d1", "d2")))
            out.append(visit(f"e{i}", at, contact=contact, deal=deal))
        elif kind == "bounce":
            out.append(ev("email.bounce", f"e{i}", at, contact=contact, action="bounce"))
        else:
            out.append(profile(f"e{i}", at, contact, draw(st.sampled_from(ACCOUNTS))))
    return out


def run_shuffled(
    plan: Plan, events: list[Event], rng: random.Random
) -> dict[EntityKey, EntityState]:
    """Events in the given order; member updates held in a pool and delivered in random order
    (interleaved with the events), as partitions may deliver them late."""
    states: dict[EntityKey, EntityState] = {}
    pool: list[tuple[EntityKey, MemberUpdate]] = []
    now = T0 + 4 * D  # one "now" for all: nothing expires, everything is within lateness

    def deliver(n: int) -> None:
        for _ in range(min(n, len(pool))):
            target, update_ = pool.pop(rng.randrange(len(pool)))
            states[target] = apply_member(states.get(target), target, update_, plan,
                                          now_ms=now).state  # fmt: skip

    for event in events:
        for k in ((key("contact", event.contact_id),) if event.contact_id else ()) + (
            (key("deal", event.deal_id),) if event.deal_id else ()
        ):
            outcome = apply(states.get(k), k, event, plan, now_ms=now)
            states[k] = outcome.state
            pool.extend(outcome.forwards)
        deliver(rng.randrange(3))
    deliver(len(pool))
    return states


@settings(max_examples=150, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_rollups_equal_their_members_finals_after_any_moves_and_orders(
    events: list[Event], rng: random.Random
) -> None:
    plan = make_plan(PLAN, source="p.yaml")
    in_order = run_shuffled(plan, sorted(events, key=lambda e: e.occurred_at_ms), rng)
    shuffled = events[:]
    rng.shuffle(shuffled)
    any_order = run_shuffled(plan, shuffled, rng)
    for states in (in_order, any_order):
        contacts = {k.entity_id: s for k, s in states.items() if k.kind == "contact"}
        members: dict[str, list[int]] = defaultdict(list)
        deal_members: dict[str, list[int]] = defaultdict(list)
        for contact_id, state in contacts.items():
            value = state.scores["engagement"].total if "engagement" in state.scores else 0
            last = max((e for e in events if e.contact_id == contact_id
                        and e.event_type == "contact.updated"),
                       key=lambda e: (e.occurred_at_ms, e.event_id), default=None)  # fmt: skip
            account = None if last is None else last.fields["attributes"]["account_id"]
            assert state.account_link == account
            if account is not None:
                members[account].append(value)
            for deal in {e.deal_id for e in events if e.contact_id == contact_id and e.deal_id}:
                deal_members[deal].append(value)
        for account in ("acme", "globex"):
            state = states.get(key("account", account))
            got = {name: state.scores[name].total for name in ("team", "best", "top2")} \
                if state is not None else {"team": 0, "best": 0, "top2": 0}  # fmt: skip
            values = sorted(members[account], reverse=True)
            assert got == {"team": sum(values), "best": values[0] if values else 0,
                           "top2": min(45, sum(values[:2]))}, account  # fmt: skip
        for deal, values in deal_members.items():
            heat = states[key("deal", deal)].scores["heat"]
            assert (heat.rolled, heat.total) == (sum(values), sum(values))
    # the same finals for any arrival order of the contacts' events (a score at 0 is the same
    # as none: another order may have had a contact pass through an account it then left)
    finals = [{(k, n): s.scores[n].total for k, s in states.items()
               for n in ("engagement", "team", "best", "top2", "heat")
               if n in s.scores and s.scores[n].total != 0}
              for states in (in_order, any_order)]  # fmt: skip
    assert finals[0] == finals[1]
