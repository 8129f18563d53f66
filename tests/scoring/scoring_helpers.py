"""Shared builders for the scoring unit tests (plans from YAML snippets, events, a runner)."""

from __future__ import annotations

import textwrap
from typing import Any

from streams.scoring import (
    Adjustment,
    EntityKey,
    EntityState,
    Event,
    Invalid,
    Outcome,
    Plan,
    ScoreChange,
    advance,
    apply,
    apply_member,
    load_plan,
    parse_input,
    route,
)
from streams.scoring.durations import parse_instant

S = 1_000
M = 60 * S
H = 60 * M
D = 24 * H
#: Monday 2024-05-06 10:00:00 UTC.
T0 = 1_714_989_600_000
assert parse_instant("2024-05-06T10:00:00Z") == T0


def make_plan(text: str, *, source: str = "test.yaml") -> Plan:
    return load_plan(textwrap.dedent(text), source=source)


def one_score(rules: str, *, head: str = "", entity: str = "contact", plan_head: str = "") -> Plan:
    """A plan with one score ``s`` of ``entity`` whose rules are the given YAML list items."""
    body = textwrap.indent(textwrap.dedent(rules).strip(), " " * 6)
    extra = textwrap.indent(textwrap.dedent(head).strip(), " " * 4)
    top = textwrap.dedent(plan_head).strip()
    return load_plan(
        f"{top}\nscores:\n  - name: s\n    entity: {entity}\n{extra}\n    rules:\n{body}\n",
        source="test.yaml",
    )


def item(record: dict[str, Any]) -> Event | Adjustment:
    parsed = parse_input(record)
    assert not isinstance(parsed, Invalid), parsed
    return parsed


def ev(
    event_type: str,
    event_id: str,
    at_ms: int,
    *,
    contact: str | None = "c1",
    deal: str | None = None,
    account: str | None = None,
    **fields: Any,
) -> Event:
    record = {
        "type": event_type,
        "event_id": event_id,
        "occurred_at": at_ms,
        "contact_id": contact,
        "deal_id": deal,
        "account_id": account,
        **fields,
    }
    if event_type == "page_visit":
        record.setdefault("url", "https://example.com/")
    parsed = item(record)
    assert isinstance(parsed, Event)
    return parsed


def visit(event_id: str, at_ms: int, url: str = "https://example.com/pricing", **kw: Any) -> Event:
    return ev("page_visit", event_id, at_ms, url=url, **kw)


def adj(
    command_id: str,
    at_ms: int,
    op: str,
    points: int | None = None,
    *,
    score: str = "s",
    entity: str = "contact",
    entity_id: str = "c1",
    account: str | None = None,
    expires_after: str | None = None,
) -> Adjustment:
    record: dict[str, Any] = {
        "type": "adjustment",
        "command_id": command_id,
        "occurred_at": at_ms,
        "entity": entity,
        "entity_id": entity_id,
        "score": score,
        "op": op,
        "account_id": account,
    }
    if points is not None:
        record["points"] = points
    if expires_after is not None:
        record["expires_after"] = expires_after
    parsed = item(record)
    assert isinstance(parsed, Adjustment)
    return parsed


class Runner:
    """Feeds items to the engine with the event-time clock, like the offline scorer."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.states: dict[EntityKey, EntityState] = {}
        self.clock = 0
        self.changes: list[ScoreChange] = []
        self.outcomes: list[Outcome] = []

    def feed(self, *items: Event | Adjustment, now_ms: int | None = None) -> list[ScoreChange]:
        produced: list[ScoreChange] = []
        for one in items:
            self.clock = max(self.clock, one.occurred_at_ms)
            for key in route(one):
                outcome = apply(
                    self.states.get(key), key, one, self.plan, now_ms=now_ms or self.clock
                )
                self.states[key] = outcome.state
                self.outcomes.append(outcome)
                produced.extend(outcome.changes)
                self._deliver(outcome, now_ms or self.clock, produced)
        self.changes.extend(produced)
        return produced

    def _deliver(self, outcome: Outcome, now_ms: int, produced: list[ScoreChange]) -> None:
        """Member updates go to their deals and accounts at once (see ``rollup``)."""
        for target, update in outcome.forwards:
            done = apply_member(self.states.get(target), target, update, self.plan, now_ms=now_ms)
            self.states[target] = done.state
            produced.extend(done.changes)

    def advance(self, now_ms: int) -> list[ScoreChange]:
        produced: list[ScoreChange] = []
        self.clock = max(self.clock, now_ms)
        for key in sorted(self.states, key=repr):
            outcome = advance(self.states[key], key, self.plan, now_ms=now_ms)
            self.states[key] = outcome.state
            produced.extend(outcome.changes)
            self._deliver(outcome, now_ms, produced)
        self.changes.extend(produced)
        return produced

    def walk(self, now_ms: int) -> list[ScoreChange]:
        """Advance to each due instant up to ``now_ms`` in turn, as a worker that never stopped
        evaluates (``advance`` evaluates once, at ``now_ms``: a catch-up)."""
        produced: list[ScoreChange] = []
        while True:
            dues = [s.next_due_ms for s in self.states.values() if s.next_due_ms is not None]
            due = min(dues, default=None)
            if due is None or due > now_ms:
                break
            produced.extend(self.advance(due))
        produced.extend(self.advance(now_ms))
        return produced

    def value(
        self,
        score: str = "s",
        kind: str = "contact",
        entity_id: str = "c1",
        account: str | None = None,
    ) -> int:
        state = self.states.get(EntityKey(account, kind, entity_id))  # type: ignore[arg-type]
        if state is None or score not in state.scores:
            return 0
        return state.scores[score].total

    @property
    def last(self) -> Outcome:
        return self.outcomes[-1]


def summary(changes: list[ScoreChange]) -> list[tuple[Any, ...]]:
    """(seq, old, new, cause, rule_ids, occurred_at offset from T0) per change."""
    return [
        (c.seq, c.old_value, c.new_value, str(c.cause), c.rule_ids, c.occurred_at_ms - T0)
        for c in changes
    ]
