"""``examples/events.jsonl``, the sample input of docs/inputs.md and the README, scored with
``plans/reference.yaml`` by ``leadscore score``: every line is valid, every input type and
adjustment op is there, and the final values are exactly the ones worked out by hand below."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streams.cli import main
from streams.scoring.catalog import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "examples" / "events.jsonl"
PLAN = ROOT / "plans" / "reference.yaml"


def score(capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict[str, Any]]:
    code = main(["score", "--plan", str(PLAN), str(EVENTS), "--changes", *extra])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")  # no bad line: nothing on stderr
    return [json.loads(line) for line in out.splitlines()]


def finals(records: list[dict[str, Any]]) -> dict[tuple[str | None, str, str], tuple[Any, ...]]:
    return {
        (r["tenant_id"], r["entity_id"], r["score"]): (
            r["value"],
            r["categories"],
            r["thresholds_reached"],
            r["tier"],
        )
        for r in records
        if r["kind"] == "score"
    }


def test_every_input_type_and_adjustment_op_is_in_the_file() -> None:
    lines = [json.loads(line) for line in EVENTS.read_text().splitlines() if line.strip()]
    types = {line["type"] for line in lines}
    assert types == {*EVENT_TYPES, "adjustment"}
    assert {line["op"] for line in lines if line["type"] == "adjustment"} == {
        "add", "subtract", "set", "reset"
    }  # fmt: skip
    assert len(EVENT_TYPES) == 12  # page_visit, 8 e-mail actions, purchase, deal, profile


def test_final_values(capsys: pytest.CaptureFixture[str]) -> None:
    records = score(capsys)
    assert finals(records) == {
        # Anna: interest 1 (home) + 30 (pricing) + 15 (case study); e-mail 2 (open) + 5 + 1
        # (newsletter click) + 10 (reply) + 10 (forward); conversion 80 (demo, deferred past
        # quiet hours) + 100 (first purchase) + 60 (5% of 1200.00); then subtract 10
        (None, "c-1", "engagement"): (
            304,
            {"interest": 46, "conversion": 240, "email": 28},
            ["mql", "sql"],
            None,
        ),
        # industry 25 + size 20 + region 15 (firmographic max 60); director 25 + engineer 10 +
        # budget 15 = 50, persona max 40
        (None, "c-1", "fit"): (100, {"firmographic": 60, "persona": 40}, ["icp"], None),
        (None, "c-1", "email-health"): (4, {}, [], "healthy"),  # open 1 + click 3
        # Bob: bounce -5, unsubscribe -50, add 80
        (None, "c-2", "engagement"): (25, {"interest": 0, "conversion": 0, "email": 0}, [], None),
        # media 10 + DE 15, student -30: -5, limited to 0
        (None, "c-2", "fit"): (0, {"firmographic": 25, "persona": 0}, [], None),
        (None, "c-2", "email-health"): (-50, {}, [], "risky"),  # bounce -20, unsubscribe -30
        # the deal was won at 248 (stage 200 + activity 3 + 10 + 20 + value 15), then set to 250:
        # the set starts a new epoch, so only its own 250 counts
        (None, "d-1", "deal-health"): (
            250,
            {"stage": 0, "activity": 0, "value": 0},
            ["forecast"],
            None,
        ),
        # Carol (tenant acme): docs 5 + services 20, complaint -200: limited to 0; her e-mail
        # health -60 was reset
        ("acme", "c-3", "engagement"): (0, {"interest": 25, "conversion": 0, "email": 0}, [], None),
        ("acme", "c-3", "fit"): (0, {"firmographic": 0, "persona": 0}, [], None),
        ("acme", "c-3", "email-health"): (0, {}, [], "healthy"),
    }
    changes = [r for r in records if r["kind"] == "change"]
    causes = {r["cause"] for r in changes}
    assert causes == {"rule", "state", "deferred", "adjustment", "tier"}
    (deferred,) = [r for r in changes if r["cause"] == "deferred"]
    assert (deferred["entity_id"], deferred["source_event_id"], deferred["new_value"]) == (
        "c-1", "v-4", 154
    )  # fmt: skip
    assert deferred["occurred_at"] == 1772604000000  # 2026-03-04 07:00 in Warsaw
    assert deferred["thresholds"] == [{"name": "mql", "direction": "up"}]


def test_until_expires_what_expires(capsys: pytest.CaptureFixture[str]) -> None:
    values = finals(score(capsys, "--until", "2026-06-01T00:00:00Z"))
    # by June every interest and e-mail award has expired (7-60 days); the conversion awards
    # stay (once rules; purchase value 180 days): 240 - 10
    assert values[(None, "c-1", "engagement")][:2] == (
        230, {"interest": 0, "conversion": 240, "email": 0}
    )  # fmt: skip
    assert values[(None, "c-1", "email-health")][0] == 0  # open and click: 90 days
    assert values[(None, "c-2", "engagement")][0] == 0  # the add expired after 30 days
    assert values[(None, "c-2", "email-health")][0] == -50  # bounce: 180 days
