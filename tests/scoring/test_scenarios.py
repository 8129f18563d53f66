"""The worked examples of docs/plans.md, encoded as the example plans shipped in plans/examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scoring_helpers import T0, D, H, M, Runner, adj, ev, visit

from streams.scoring import EntityKey, Plan, Verdict, dumps, load_plan, loads

EXAMPLES = Path(__file__).resolve().parents[2] / "plans" / "examples"


def example(name: str) -> Plan:
    return load_plan((EXAMPLES / name).read_text(), source=name)


# T0 is Monday 12:00 in Warsaw (10:00 UTC, CEST)


@pytest.mark.parametrize(
    ("url", "points"),
    [
        ("https://shop.pl/cennik", 30),  # the price list: 30
        ("https://shop.pl/uslugi/wdrozenia", 20),  # the services: 20
        ("https://shop.pl/", 5),  # only the home page: 5
        ("https://shop.pl/oferta.pdf", 10),  # the offer (one of several activities): 10
        ("https://shop.pl/blog/post", 0),  # anything else: nothing
    ],
)
def test_ipresso_pages(url: str, points: int) -> None:
    runner = Runner(example("ipresso.yaml"))
    runner.feed(visit("e1", T0, url=url))
    assert runner.value("ipresso") == points


def test_ipresso_any_of_activities_and_capping() -> None:
    runner = Runner(example("ipresso.yaml"))
    runner.feed(
        ev("email.open", "e1", T0, campaign_id="offer-2024"),  # 10
        visit("e2", T0 + H, url="https://shop.pl/oferta.pdf"),  # same rule within 24h: capped
        visit("e3", T0 + 2 * H, url="https://shop.pl/cennik"),  # 30
        visit("e4", T0 + 3 * H, url="https://shop.pl/cennik"),  # capped: once per 24 h
        visit("e5", T0 + 26 * H, url="https://shop.pl/cennik"),  # next day: 30 again
    )
    verdicts = [o.results[0].verdict for o in runner.outcomes]
    assert verdicts == [
        Verdict.SCORED,
        Verdict.CAPPED,
        Verdict.SCORED,
        Verdict.CAPPED,
        Verdict.SCORED,
    ]
    assert runner.value("ipresso") == 70


def test_ipresso_quiet_hours_and_price() -> None:
    runner = Runner(example("ipresso.yaml"))
    night = T0 + 11 * H  # 23:00 Warsaw
    runner.feed(visit("e1", night, url="https://shop.pl/cennik"))
    assert runner.last.results[0].verdict is Verdict.QUIET
    runner.feed(ev("purchase", "e2", night + 8 * H, order_id="o1", amount="249.99", currency="PLN"))
    assert runner.value("ipresso") == 25  # 24.999 -> 25


def test_activecampaign_deal_score_stage_and_income() -> None:
    # "10 points if the deal is in stage 'In contact' and 10 more for the value: 20 points"
    runner = Runner(example("activecampaign-deals.yaml"))

    def stage(event_id: str, at: int, to_stage: str, value: int) -> object:
        return ev(
            "deal.stage_changed",
            event_id,
            at,
            contact=None,
            deal="d1",
            pipeline="sales",
            to_stage=to_stage,
            value=value,
        )

    runner.feed(stage("s1", T0, "In contact", 12000))
    assert runner.value("deal-score", "deal", "d1") == 20
    runner.feed(stage("s2", T0 + D, "Proposal", 12000))  # leaves "In contact", static +15
    assert runner.value("deal-score", "deal", "d1") == 25
    runner.feed(
        stage("s3", T0 + 2 * D, "In contact", 12000), stage("s4", T0 + 3 * D, "Proposal", 12000)
    )  # static: not again
    assert runner.value("deal-score", "deal", "d1") == 25
    assert [(c.new_value, c.thresholds) for c in runner.changes] == [
        (20, ()),
        (25, ()),
        (35, (("priority", "up"),)),  # back in "In contact": +10 while there
        (25, (("priority", "down"),)),
    ]


def test_activecampaign_dynamic_expiring_points() -> None:
    runner = Runner(example("activecampaign-deals.yaml"))
    for i in range(3):  # +5 every reply on a deal (dynamic scoring)
        runner.feed(ev("email.reply", f"r{i}", T0 + i * H, deal="d1"))
    assert runner.value("deal-score", "deal", "d1") == 15
    expiries = runner.advance(T0 + 15 * D)
    assert [(c.new_value, c.cause, c.occurred_at_ms - T0) for c in expiries] == [
        (10, "expiry", 14 * D),
        (5, "expiry", 14 * D + H),
        (0, "expiry", 14 * D + 2 * H),
    ]


def test_activecampaign_pipeline_entry_score() -> None:
    # "assign 100 points to a lead entering the pipeline, then deduct when it stalls"
    runner = Runner(example("activecampaign-deals.yaml"))
    runner.feed(adj("enter", T0, "set", 100, score="deal-score", entity="deal", entity_id="d1"))
    for n in range(3):
        runner.feed(
            adj(
                f"stall-{n}",
                T0 + (14 + 2 * n) * D,
                "subtract",
                10,
                score="deal-score",
                entity="deal",
                entity_id="d1",
            )
        )
    assert runner.value("deal-score", "deal", "d1") == 70
    runner.feed(
        adj("again", T0 + 30 * D, "reset", score="deal-score", entity="deal", entity_id="d1")
    )
    assert runner.value("deal-score", "deal", "d1") == 0


def profile(event_id: str, at: int, **attributes: object) -> object:
    return ev("contact.updated", event_id, at, attributes=attributes)


def test_guide_balanced_needs_fit_and_interest() -> None:
    plan = example("guide-balanced.yaml")
    engaged_only = Runner(plan)
    engaged_only.feed(
        *[ev("email.reply", f"r{i}", T0 + i * M) for i in range(10)],
        visit("t", T0 + H, url="https://x.io/trial/started"),
        visit("d", T0 + 2 * H, url="https://x.io/demo/requested"),
    )
    assert engaged_only.value("lead") == 50  # behaviour alone caps at half
    ideal_only = Runner(plan)
    ideal_only.feed(profile("p", T0, region="us-east", industry="saas", budget=80000, title="CTO"))
    assert ideal_only.value("lead") == 50  # fit alone caps at half
    both = Runner(plan)
    both.feed(
        profile("p", T0, region="us-east", industry="saas", budget=80000, title="VP Eng"),
        ev("email.click", "c", T0 + M),
        visit("t", T0 + H, url="https://x.io/trial/started"),
    )
    assert both.value("lead") == 25 + 25 + 20 + 5 + 1
    assert both.changes[-1].thresholds == (("sales-ready", "up"),)


@pytest.mark.parametrize(
    ("attributes", "engagement", "expected", "to_sales"),
    [
        # all three must-haves plus 89 of refinement: 389, goes to sales
        (
            {
                "region": "us-midwest",
                "department": "purchasing",
                "industry": "manufacturing",
                "employees": 500,
            },
            ["click", "click", "demo"],
            389,
            True,
        ),
        # two must-haves only: 289, does not
        (
            {
                "region": "us-midwest",
                "department": "purchasing",
                "industry": "retail",
                "employees": 500,
            },
            ["click", "click", "demo"],
            289,
            False,
        ),
        # refinement never fills a must-have block: capped at 99
        (
            {"region": "us-midwest", "department": "hr", "industry": "retail", "employees": 500},
            ["demo"] * 6,
            199,
            False,
        ),
    ],
)
def test_guide_must_have_blocks(
    attributes: dict, engagement: list[str], expected: int, to_sales: bool
) -> None:
    runner = Runner(example("guide-must-have.yaml"))
    runner.feed(profile("p", T0, **attributes))
    for i, kind in enumerate(engagement):
        if kind == "demo":
            runner.feed(visit(f"v{i}", T0 + (i + 1) * M, url="https://x.io/demo"))
        else:
            runner.feed(ev("email.click", f"c{i}", T0 + (i + 1) * M))
    assert runner.value("qualified") == expected
    crossed = [t for c in runner.changes for t in c.thresholds]
    assert crossed == ([("to-sales", "up")] if to_sales else [])


@pytest.mark.parametrize(
    ("employees", "expected"),
    [
        (20, 1089),  # small business with 89
        (300, 2089),  # mid-size business with 89: the guide's example
        (5000, 3089),  # large business with 89
    ],
)
def test_guide_thousands_digit_lead_types(employees: int, expected: int) -> None:
    runner = Runner(example("guide-lead-types.yaml"))
    runner.feed(
        profile("p", T0, employees=employees),
        visit("v1", T0 + M, url="https://x.io/pricing"),
        visit("v2", T0 + 2 * M, url="https://x.io/webinar/2024"),
        ev("email.reply", "r", T0 + 3 * M),
    )
    assert runner.value("typed") == expected
    assert runner.value("typed") // 1000 == expected // 1000
    assert runner.value("typed") % 1000 == 89


def test_guide_lead_type_moves_with_the_company() -> None:
    runner = Runner(example("guide-lead-types.yaml"))
    runner.feed(
        profile("p1", T0, employees=30),
        ev("email.reply", "r", T0 + M),
        profile("p2", T0 + D, employees=300),
    )
    assert runner.value("typed") == 2034
    assert [(c.new_value, c.cause, c.rule_ids) for c in runner.changes] == [
        (1000, "state", ("small-business",)),
        (1034, "rule", ("reply",)),
        (2034, "state", ("small-business", "mid-size-business")),
    ]


def test_hubspot_engagement_decays_out_of_mql() -> None:
    runner = Runner(example("hubspot-engagement.yaml"))
    runner.feed(
        visit("e1", T0, url="https://saas.example/pricing"),  # pricing 15 + any page 2
        ev("email.click", "e2", T0 + H),  # 10
        ev("email.click", "e3", T0 + 2 * H),  # 10
        ev("email.reply", "e4", T0 + 3 * H),  # 30
    )
    assert runner.value("engagement") == 67
    engagement = [c for c in runner.changes if c.score == "engagement"]
    assert [(c.new_value, c.thresholds, c.tier_after) for c in engagement][-2:] == [
        (67, (("mql", "up"),), "high"),
        (67, (), "high"),  # the tier record
    ]
    runner.walk(T0 + 60 * D)  # a worker evaluating at each due time
    # the MQL crossing is published the moment it happens, not at the next daily check
    down = [c for c in runner.changes if c.thresholds == (("mql", "down"),)]
    assert len(down) == 1 and str(down[0].cause) == "decay"
    # at the last check (59 d 14 h): pages 17 * 2^(-t/30d), clicks 10 * (1 - t/90d) twice,
    # the reply 30 * 0.75
    t = 59 + 14 / 24
    pages = 17 * 2 ** (-t / 30)
    clicks = 10 * (1 - (t - 1 / 24) / 90) + 10 * (1 - (t - 2 / 24) / 90)
    assert runner.value("engagement") == round(pages + clicks + 22.5) == 34
    assert [c for c in runner.changes if c.score == "engagement"][-1].tier_after == "medium"


def test_activecampaign_deal_not_updated_in_30_days() -> None:
    runner = Runner(example("activecampaign-deal-inactivity.yaml"))
    runner.feed(ev("deal.stage_changed", "e1", T0, contact=None, deal="d1", pipeline="sales",
                   to_stage="Proposal", status="open"))  # fmt: skip
    assert runner.value("deal-health", "deal", "d1") == 30  # 10 + 20 while in Proposal
    runner.advance(T0 + 65 * D)  # no event for 65 days: -10 at 30 d and at 60 d
    assert runner.value("deal-health", "deal", "d1") == 10
    changes = runner.changes[2:]
    # one evaluation after 65 days (a catch-up): both deductions in one change at 60 d, with the
    # threshold crossed and the tier record
    assert [(str(c.cause), c.new_value, c.tier_after, c.thresholds, c.occurred_at_ms - T0)
            for c in changes] == [
        ("inactivity", 10, "at-risk", (("review", "down"),), 60 * D),
        ("tier", 10, "at-risk", (), 60 * D),
    ]  # fmt: skip
    # the contact's reply from day 40 arrives late: the deal was not silent from day 40 on, so
    # the deduction at 60 d is undone; the silence since day 40 deducts at 70 d
    late = runner.feed(ev("email.reply", "e2", T0 + 40 * D, deal="d1"), now_ms=T0 + 65 * D)
    assert [(str(c.cause), c.rule_ids, c.new_value) for c in late if c.entity == "deal"] == [
        ("rule", ("lead-replied", "inactivity"), 25),
        ("tier", ("lead-replied", "inactivity"), 25),
    ]
    runner.advance(T0 + 71 * D)
    assert runner.value("deal-health", "deal", "d1") == 15


def test_hubspot_matrix_grades_fit_and_engagement() -> None:
    runner = Runner(example("hubspot-engagement.yaml"))
    profile = ev("contact.updated", "p1", T0, attributes={"industry": "saas", "employees": 500})
    changes = runner.feed(profile)  # fit 70: ideal; engagement 0: low -> A3
    grades = [(c.tier_before, c.tier_after, c.rule_ids) for c in changes if c.score == "lead-grade"]
    assert grades == [("C3", "A3", ("target-industry", "company-size"))]
    changes = runner.feed(
        reply("e1", T0 + H),  # 30: medium
        visit("e2", T0 + 2 * H, url="https://saas.example/pricing"),  # 47: still medium
        ev("email.click", "e3", T0 + 3 * H),  # 57: high
    )
    grades = [(c.tier_before, c.tier_after, c.old_value, c.new_value, str(c.cause), c.rule_ids)
              for c in changes if c.score == "lead-grade"]  # fmt: skip
    assert grades == [
        ("A3", "A2", 6, 7, "tier", ("replied",)), ("A2", "A1", 7, 8, "tier", ("email-click",))
    ]  # fmt: skip
    # engagement decays back to low (A1 -> A2 -> A3) on a worker evaluating at each due time:
    # one record per move, each right after the tier record of its change
    key = EntityKey(None, "contact", "c1")
    saved = loads(dumps(runner.states[key]))
    changes = runner.walk(T0 + 120 * D)
    moves = [i for i, c in enumerate(changes) if c.score == "lead-grade"]
    assert [changes[i].tier_after for i in moves] == ["A2", "A3"]
    for i in moves:
        assert (changes[i - 1].score, str(changes[i - 1].cause)) == ("engagement", "tier")
        assert changes[i].occurred_at_ms == changes[i - 1].occurred_at_ms
    # after a downtime, one evaluation covers both moves: one engagement change, one grade record
    assert saved.scores["engagement"].total == 57
    runner.states[key] = saved
    changes = runner.advance(T0 + 120 * D)
    grades = [(c.tier_before, c.tier_after) for c in changes if c.score == "lead-grade"]
    assert grades == [("A1", "A3")]
    assert [str(c.cause) for c in changes if c.score == "engagement"] == ["decay", "tier"]


def reply(event_id: str, at_ms: int) -> Any:
    return ev("email.reply", event_id, at_ms)


def test_guide_lead_type_matrix() -> None:
    runner = Runner(example("guide-lead-type-matrix.yaml"))
    runner.feed(
        ev("contact.updated", "p1", T0, attributes={"employees": 120}),  # mid-size: row 2
        visit("e1", T0 + H, url="https://x.example/pricing"),  # 30: cold
        reply("e2", T0 + 2 * H),  # 64: warm
        visit("e3", T0 + 3 * H, url="https://x.example/webinar"),  # 89: hot ("2089")
        ev("contact.updated", "p2", T0 + 4 * H, attributes={"employees": 1500}),  # large
    )
    assert [c.tier_after for c in runner.changes if c.score == "lead-type"] == [
        "2-cold", "2-warm", "2-hot", "3-hot"
    ]  # fmt: skip


def test_marketo_account_rollup_sums_the_five_best_contacts() -> None:
    runner = Runner(example("marketo-account-rollup.yaml"))
    pricing = "https://acme.example/pricing"
    acts = {  # person scores: 65, 35, 25, 20, 15, 10, 10
        "c1": ["pricing", "pricing", "pricing", "webinar", "reply"],
        "c2": ["reply", "webinar"], "c3": ["webinar", "pricing"], "c4": ["reply"],
        "c5": ["webinar"], "c6": ["pricing"], "c7": ["pricing"],
    }  # fmt: skip
    t = T0
    for contact, done in acts.items():
        runner.feed(ev("contact.updated", f"p-{contact}", t, contact=contact,
                       attributes={"account_id": "acme"}))  # fmt: skip
        for n, act in enumerate(done):
            t += M
            eid = f"{contact}-{n}"
            if act == "pricing":
                runner.feed(visit(eid, t, url=pricing, contact=contact))
            elif act == "webinar":
                runner.feed(ev("email.click", eid, t, contact=contact, campaign_id="webinar"))
            else:  # c2's reply is about deal d1: c2 joins the deal
                runner.feed(ev("email.reply", eid, t, contact=contact,
                               deal="d1" if contact == "c2" else None))  # fmt: skip
    assert runner.value("person-score", "contact", "c1") == 65
    assert runner.value("account-score", "account", "acme") == 65 + 35 + 25 + 20 + 15
    assert runner.value("champion", "account", "acme") == 65
    ups = [(c.new_value, c.thresholds, c.tier_after) for c in runner.changes
           if c.score == "account-score" and c.thresholds]  # fmt: skip
    assert ups == [(160, (("target-account", "up"),), "hot")]
    # c1 joins another company: its 65 leaves acme (the sixth contact's 10 now counts)
    moved = runner.feed(ev("contact.updated", "p-c1b", t + H, contact="c1",
                           attributes={"account_id": "globex"}))  # fmt: skip
    assert [(c.entity_id, c.score, c.old_value, c.new_value, str(c.cause), c.tier_after,
             c.thresholds) for c in moved if c.cause != "tier"] == [
        ("acme", "account-score", 160, 105, "rollup", "warm", (("target-account", "down"),)),
        ("acme", "champion", 65, 35, "rollup", None, ()),
        ("globex", "account-score", 0, 65, "rollup", "warm", ()),
        ("globex", "champion", 0, 65, "rollup", None, ()),
    ]  # fmt: skip
    # deal d1: the demo stage (25) plus its contact c2's person score (35)
    runner.feed(ev("deal.stage_changed", "s1", t + 2 * H, contact=None, deal="d1",
                   pipeline="sales", to_stage="Demo", status="open"))  # fmt: skip
    assert runner.value("deal-engagement", "deal", "d1") == 25 + 35
