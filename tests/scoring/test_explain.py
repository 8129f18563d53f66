"""Explanations: live contributions, folded totals, category sums before and after caps."""

from __future__ import annotations

from scoring_helpers import T0, D, Runner, adj, ev, make_plan, visit

from streams.scoring import EntityKey, explain

PLAN = make_plan(
    """
    lateness: 1d
    scores:
      - name: s
        entity: contact
        limits: {max: 60}
        categories: {interest: {max: 40}, fit: {}}
        thresholds: [{name: mql, at: 50}]
        rules:
          - {id: pricing, on: page_visit, points: 30, category: interest, expires_after: 30d}
          - {id: open, on: email.open, points: 15, category: interest}
          - {id: fit, while: {attributes.industry: {eq: saas}}, points: 20, category: fit}
    """
)
KEY = EntityKey(None, "contact", "c1")


def test_explain_everything() -> None:
    runner = Runner(PLAN)
    runner.feed(
        ev("email.open", "o1", T0),
        visit("e1", T0 + 3 * D),
        ev("contact.updated", "p1", T0 + 3 * D + 1, attributes={"industry": "saas"}),
        adj("a1", T0 + 3 * D + 2, "add", 10, expires_after="1d"),
    )
    explanation = explain(runner.states[KEY], PLAN, "s")
    assert explanation.to_dict() == {
        "score": "s",
        "value": 60,
        "total_before_limits": 70,
        "limits": {"min": None, "max": 60},
        "contributions": [
            {
                "rule": "pricing",
                "points": 30,
                "category": "interest",
                "occurred_at": T0 + 3 * D,
                "expires_at": T0 + 33 * D,
                "source_event_id": "e1",
                "kind": "event",
            },
            {
                "rule": "fit",
                "points": 20,
                "category": "fit",
                "occurred_at": T0 + 3 * D + 1,
                "expires_at": None,
                "source_event_id": "p1",
                "kind": "state",
            },
            {
                "rule": "adjustment:add",
                "points": 10,
                "category": None,
                "occurred_at": T0 + 3 * D + 2,
                "expires_at": T0 + 4 * D + 2,
                "source_event_id": "a1",
                "kind": "adjustment",
            },
        ],
        # the open (3 days old, lateness 1d, never expires) was folded by compaction
        "folded": [{"rule": "open", "category": "interest", "points": 15}],
        "categories": [
            {"name": "interest", "sum": 45, "min": None, "max": 40, "value": 40},
            {"name": "fit", "sum": 20, "min": None, "max": None, "value": 20},
        ],
        "uncategorised": 10,
        "deferred": [],
        "thresholds_reached": ["mql"],
        "epoch_started_at": None,
        "stand_by": [],
    }


def test_explain_unknown_entity() -> None:
    assert explain(None, PLAN, "s").to_dict()["value"] == 0
    assert explain(None, PLAN, "s").categories == (
        ("interest", 0, None, 40, 0),
        ("fit", 0, None, None, 0),
    )


def test_explain_shows_stand_by_matches() -> None:
    plan = make_plan(
        """
        scores:
          - name: s
            entity: contact
            rules: [{id: engaged, on: email.click, points: 10, repeat: once}]
        """
    )
    runner = Runner(plan)
    runner.feed(ev("email.click", "c1", T0), ev("email.click", "c2", T0 + 5))
    explained = explain(runner.states[KEY], plan, "s").to_dict()
    assert explained["value"] == 10
    assert explained["stand_by"] == [
        {"rule": "engaged", "points": 10, "occurred_at": T0 + 5, "source_event_id": "c2"}
    ]
