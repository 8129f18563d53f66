"""What each cause of a change carries in ``source_event_id`` and ``occurred_at``.

Pins the table "What each cause carries" of docs/consumers.md: offline, one contact with every
time-driven cause (expiry of an event's and of a command's points, a deferred award, decay
checks, the clock's inactivity deduction, a late event undoing deductions), its tier records,
and the account roll-up that follows it.
"""

from __future__ import annotations

import json
from typing import Any

from streams.commands.offline import OfflineScorer, parse_line
from streams.scoring import Invalid, ScoreChange, load_plan
from streams.scoring.durations import parse_instant

PLAN = """
lateness: 60d
scores:
  - name: engagement
    entity: contact
    timezone: UTC
    tiers: [{name: cold, below: 20}, {name: warm}]
    quiet_hours: {policy: defer, windows: [{from: "22:00", to: "07:00"}]}
    inactivity: {after: 10d, points: -5, repeat: once}
    rules:
      - {id: pricing, on: page_visit, points: 30, expires_after: 1d}
      - {id: open, on: email.open, points: 10, decay: {half_life: 2d}}
      - {id: vip, while: {attributes.vip: {eq: true}}, points: 7}
  - name: account-engagement
    entity: account
    rollup: {from: engagement, aggregate: sum}
  - name: silence
    entity: contact
    inactivity: {after: 10d, points: -5, repeat: every}
"""

INPUTS: list[dict[str, Any]] = [
    {"type": "contact.updated", "event_id": "p1", "occurred_at": "2024-05-06T08:00:00Z",
     "contact_id": "c1", "attributes": {"account_id": "A", "vip": True}},
    {"type": "page_visit", "event_id": "v1", "occurred_at": "2024-05-06T10:00:00Z",
     "contact_id": "c1", "url": "https://example.com/pricing"},
    {"type": "page_visit", "event_id": "v2", "occurred_at": "2024-05-06T23:00:00Z",
     "contact_id": "c1", "url": "https://example.com/pricing"},
    {"type": "email.open", "event_id": "o1", "occurred_at": "2024-05-07T12:00:00Z",
     "contact_id": "c1"},
    {"type": "adjustment", "command_id": "k1", "occurred_at": "2024-05-07T13:00:00Z",
     "entity": "contact", "entity_id": "c1", "score": "engagement", "op": "add", "points": 3,
     "expires_after": "2h"},
]  # fmt: skip


def ms(text: str) -> int:
    at = parse_instant(text)
    assert at is not None
    return at


def row(c: ScoreChange) -> tuple[object, ...]:
    return (c.entity, c.score, c.seq, c.old_value, c.new_value, str(c.cause), c.rule_ids,
            c.source_event_id, c.occurred_at_ms)  # fmt: skip


def run(inputs: list[dict[str, Any]], *until: str) -> list[ScoreChange]:
    scorer = OfflineScorer(load_plan(PLAN, source="sources.yaml"))
    changes: list[ScoreChange] = []
    for record in inputs:
        parsed = parse_line(json.dumps(record))
        assert not isinstance(parsed, Invalid), parsed
        changes += scorer.feed(parsed)
    for instant in until:  # the clock, one step each
        changes += scorer.advance_to(ms(instant))
    return changes


def test_every_cause_names_its_source() -> None:
    clock = ("2024-05-10T00:00:00Z", "2024-05-30T00:00:00Z")
    changes = [c for c in run(INPUTS, *clock) if c.score != "silence"]
    contact, account, rollup = "contact", "account", ("rollup",)
    eng, acc = "engagement", "account-engagement"
    assert [row(c) for c in changes] == [
        (contact, eng, 1, 0, 7, "state", ("vip",), "p1", ms("2024-05-06T08:00:00Z")),
        (account, acc, 1, 0, 7, "rollup", rollup, "p1", ms("2024-05-06T08:00:00Z")),
        (contact, eng, 2, 7, 37, "rule", ("pricing",), "v1", ms("2024-05-06T10:00:00Z")),
        (contact, eng, 3, 37, 37, "tier", ("pricing",), "v1", ms("2024-05-06T10:00:00Z")),
        (account, acc, 2, 7, 37, "rollup", rollup, "v1", ms("2024-05-06T10:00:00Z")),
        # v2 at 23:00 is held by quiet hours until 07:00; v1's points expire at 10:00
        (contact, eng, 4, 37, 67, "deferred", ("pricing",), "v2", ms("2024-05-07T07:00:00Z")),
        (contact, eng, 5, 67, 37, "expiry", ("pricing",), "v1", ms("2024-05-07T10:00:00Z")),
        (contact, eng, 6, 37, 47, "rule", ("open",), "o1", ms("2024-05-07T12:00:00Z")),
        (account, acc, 3, 37, 47, "rollup", rollup, "o1", ms("2024-05-07T12:00:00Z")),
        (contact, eng, 7, 47, 50, "adjustment", ("adjustment:add",), "k1",
         ms("2024-05-07T13:00:00Z")),
        (account, acc, 4, 47, 50, "rollup", rollup, "k1", ms("2024-05-07T13:00:00Z")),
        # the clock's first step, to 05-10: the command's points expire, then v2's (they keep the
        # event's time: 23:00 + 1d), then the last daily decay check by then
        (contact, eng, 8, 50, 47, "expiry", ("adjustment:add",), "k1",
         ms("2024-05-07T15:00:00Z")),
        (contact, eng, 9, 47, 16, "expiry", ("pricing",), "v2", ms("2024-05-07T23:00:00Z")),
        (contact, eng, 10, 16, 16, "tier", ("pricing",), "v2", ms("2024-05-07T23:00:00Z")),
        (contact, eng, 11, 16, 11, "decay", ("open",), "", ms("2024-05-10T00:00:00Z")),
        # one step moved the contact several times: one roll-up, the last change's source (none)
        (account, acc, 5, 50, 11, "rollup", rollup, "", ms("2024-05-10T00:00:00Z")),
        # the second step, to 05-30: the deduction due 10 days after o1 (a command is no activity)
        # and the decay checks since, in one change at the last check
        (contact, eng, 12, 11, 2, "inactivity", ("inactivity", "open"), "",
         ms("2024-05-30T00:00:00Z")),
        (account, acc, 6, 11, 2, "rollup", rollup, "", ms("2024-05-30T00:00:00Z")),
    ]  # fmt: skip
    nulls = [c.to_dict()["source_event_id"] for c in changes if not c.source_event_id]
    assert nulls == [None, None, None, None]


def test_a_late_event_undoing_deductions_names_itself() -> None:
    contact = {"contact_id": "c9"}
    inputs: list[dict[str, Any]] = [
        {"type": "email.sent", "event_id": "s1", "occurred_at": "2024-05-01T00:00:00Z", **contact},
        {"type": "email.sent", "event_id": "s2", "occurred_at": "2024-05-26T00:00:00Z", **contact},
        {"type": "email.sent", "event_id": "late", "occurred_at": "2024-05-06T00:00:00Z",
         **contact},
    ]  # fmt: skip
    changes = [row(c) for c in run(inputs, "2024-05-26T00:00:00Z") if c.score == "silence"]
    assert changes == [
        # s2 moves the clock to 05-26: the silence since 05-01 made two deductions (05-11, 05-21),
        # published as one change at the last
        ("contact", "silence", 1, 0, -10, "inactivity", ("inactivity",), "",
         ms("2024-05-21T00:00:00Z")),
        # the silence is now 05-06 to 05-26: one deduction (05-16) instead of two
        ("contact", "silence", 2, -10, -5, "inactivity", ("inactivity",), "late",
         ms("2024-05-06T00:00:00Z")),
    ]  # fmt: skip
