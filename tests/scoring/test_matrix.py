"""Matrices (docs/plans.md, Matrices): plan validation, cells, records, offline rows."""

from __future__ import annotations

import pytest
from scoring_helpers import T0, H, Runner, ev, make_plan, visit

from streams.commands.offline import OfflineScorer
from streams.scoring import PlanError
from streams.scoring.matrix import cells

SCORES = """
scores:
  - name: fit
    entity: contact
    tiers: [{name: poor, below: 30}, {name: good}]
    rules: [{id: saas, while: {attributes.industry: {eq: saas}}, points: 40}]
  - name: engagement
    entity: contact
    tiers: [{name: low, below: 20}, {name: mid, below: 50}, {name: high}]
    rules: [{id: visit, on: page_visit, points: 25}]
  - name: plain
    entity: contact
    rules: [{id: visit, on: page_visit, points: 1}]
  - name: deal
    entity: deal
    tiers: [{name: a, below: 1}, {name: b}]
"""
GRID = "[[B3, B2, B1], [A3, A2, A1]]"


def plan_with(matrix: str) -> str:
    return f"matrices:\n  - {matrix}\n{SCORES}"


def test_cells_move_with_either_score() -> None:
    plan = make_plan(plan_with(f"{{name: grade, entity: contact, rows: fit, cols: engagement, "
                               f"labels: {GRID}}}"))  # fmt: skip
    runner = Runner(plan)
    runner.feed(visit("e1", T0))  # engagement 25: mid -> B2
    runner.feed(ev("contact.updated", "p1", T0 + H, attributes={"industry": "saas"}))  # A2
    runner.feed(visit("e2", T0 + 2 * H))  # 50: high -> A1
    records = [(c.seq, c.old_value, c.new_value, c.tier_before, c.tier_after, c.rule_ids)
               for c in runner.changes if c.score == "grade"]  # fmt: skip
    assert records == [
        (1, 0, 1, "B3", "B2", ("visit",)),
        (2, 1, 4, "B2", "A2", ("saas",)),
        (3, 4, 5, "A2", "A1", ("visit",)),
    ]
    scorer = OfflineScorer(plan)
    for item in (visit("e1", T0), visit("e2", T0 + 2 * H)):
        scorer.feed(item)
    rows = [r for r in scorer.finals() if r["kind"] == "matrix"]
    assert rows == [{"kind": "matrix", "tenant_id": None, "entity": "contact",
                     "entity_id": "c1", "matrix": "grade", "label": "B1"}]  # fmt: skip
    assert cells(plan, "contact", None) == {"grade": "B3"}


@pytest.mark.parametrize(
    ("matrix", "field", "message"),
    [
        ("{name: g, entity: contact, rows: nope, cols: engagement, labels: []}",
         "matrices[0].rows", "must name a score of the plan (got 'nope')"),
        ("{name: g, entity: contact, rows: fit, cols: deal, labels: []}",
         "matrices[0].cols", "score 'deal' is a deal score, not a contact one"),
        ("{name: g, entity: contact, rows: fit, cols: plain, labels: []}",
         "matrices[0].cols", "score 'plain' has no tiers"),
        ("{name: g, entity: contact, rows: fit, cols: engagement, labels: [[A, B, C]]}",
         "matrices[0].labels", "must be 2 rows (one per tier of 'fit') of 3 labels"),
        ("{name: g, entity: contact, rows: fit, cols: engagement, labels: [[A, B], [C, D, E]]}",
         "matrices[0].labels[0]", "must be a list of 3 labels"),
        ("{name: g, entity: contact, rows: fit, cols: engagement, "
         "labels: [[A, B, 'no good'], [C, D, E]]}", "matrices[0].labels[0][2]", "must be a name"),
        (f"{{name: fit, entity: contact, rows: fit, cols: engagement, labels: {GRID}}}",
         "matrices[0].name", "'fit' is already the name of a score or matrix"),
        (f"{{name: g, entity: person, rows: fit, cols: engagement, labels: {GRID}}}",
         "matrices[0].entity", "must be one of contact, deal"),
        (f"{{name: g, rows: fit, cols: engagement, labels: {GRID}}}",
         "matrices[0].entity", "is required"),
    ],
)  # fmt: skip
def test_invalid_matrix_names_the_field(matrix: str, field: str, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        make_plan(plan_with(matrix))
    assert [i.field for i in caught.value.issues] == [field], caught.value.issues
    assert message in caught.value.issues[0].message
