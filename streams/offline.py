"""Offline scoring shell: ``leadscore plan check`` and ``leadscore score``.

Reads files, drives the pure core with an event-time clock (the latest event time seen so far),
prints JSON lines. Exit codes: 0 success (bad input lines are reported on stderr and skipped),
1 unreadable file, 2 invalid plan or arguments.
"""

from __future__ import annotations

import heapq
import json
import sys
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import IO, Any

from streams.publish import score_view
from streams.scoring import (
    EntityKey,
    EntityState,
    Forward,
    Invalid,
    Item,
    Plan,
    PlanError,
    ScoreChange,
    advance,
    apply,
    apply_member,
    load_plan,
    parse_input,
    route,
)
from streams.scoring.durations import format_duration, parse_instant
from streams.scoring.matrix import cells


class OfflineScorer:
    """Scores a stream of items in memory with the event-time clock of the input."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.states: dict[EntityKey, EntityState] = {}
        self.clock_ms: int | None = None
        self._timers: list[tuple[int, int, EntityKey]] = []
        self._scheduled: dict[EntityKey, int] = {}
        self._counter = 0

    def feed(self, item: Item) -> list[ScoreChange]:
        """Apply one item: first advance every entity with work due by the new clock."""
        changes: list[ScoreChange] = []
        if self.clock_ms is None or item.occurred_at_ms > self.clock_ms:
            self.clock_ms = item.occurred_at_ms
            changes.extend(self.advance_to(self.clock_ms))
        for key in route(item):
            outcome = apply(self.states.get(key), key, item, self.plan, now_ms=self.clock_ms)
            self.states[key] = outcome.state
            changes.extend(outcome.changes)
            self._schedule(key, outcome.state)
            self._deliver(outcome.forwards, self.clock_ms, changes)
        return changes

    def _deliver(
        self, forwards: tuple[Forward, ...], now_ms: int, changes: list[ScoreChange]
    ) -> None:
        """Member updates go to their deals and accounts at once (the service routes them
        through the entity-events topic; the roll-ups come out the same, see ``rollup``)."""
        for target, update in forwards:
            outcome = apply_member(self.states.get(target), target, update, self.plan,
                                   now_ms=now_ms)  # fmt: skip
            self.states[target] = outcome.state
            changes.extend(outcome.changes)
            self._schedule(target, outcome.state)

    def advance_to(self, now_ms: int) -> list[ScoreChange]:
        """Apply every expiry and deferred award due at or before ``now_ms``, in due order."""
        changes: list[ScoreChange] = []
        timers = self._timers
        while timers and timers[0][0] <= now_ms:
            due, _, key = heapq.heappop(timers)
            if self._scheduled.get(key) != due:
                continue  # stale timer: the entity's due time moved
            del self._scheduled[key]
            outcome = advance(self.states[key], key, self.plan, now_ms=now_ms)
            self.states[key] = outcome.state
            changes.extend(outcome.changes)
            self._schedule(key, outcome.state)
            self._deliver(outcome.forwards, now_ms, changes)
        return changes

    def _schedule(self, key: EntityKey, state: EntityState) -> None:
        due = state.next_due_ms
        if due is None or self._scheduled.get(key) == due:
            return
        self._scheduled[key] = due
        self._counter += 1
        heapq.heappush(self._timers, (due, self._counter, key))

    def finals(self) -> Iterator[dict[str, Any]]:
        """One record per entity and score, sorted by tenant, entity kind, id and score."""
        keys = sorted(
            self.states,
            key=lambda k: (k.account_id is not None, k.account_id or "", k.kind, k.entity_id),
        )
        for key in keys:
            state = self.states[key]
            for score in sorted(self.plan.by_kind.get(key.kind, ()), key=lambda s: s.name):
                view = score_view(score, state)
                del view["seq"]  # the offline rows leave it out: it counts changes, not a value
                yield {
                    "kind": "score",
                    "account_id": key.account_id,
                    "entity": key.kind,
                    "entity_id": key.entity_id,
                    "score": score.name,
                    **view,
                }
            for name, label in cells(self.plan, key.kind, state).items():
                yield {
                    "kind": "matrix",
                    "account_id": key.account_id,
                    "entity": key.kind,
                    "entity_id": key.entity_id,
                    "matrix": name,
                    "label": label,
                }


def cmd_plan_check(path: str) -> int:
    plan = load_plan_or_exit(path)
    if isinstance(plan, int):
        return plan
    print(f"{path}: OK: {len(plan.scores)} score(s), {plan.rule_count} rule(s), "
          f"version {plan.version}")  # fmt: skip
    for score in plan.scores:
        extras = []
        if score.categories:
            extras.append("categories " + ", ".join(score.categories))
        if score.thresholds:
            extras.append("thresholds " + ", ".join(f"{t.name}@{t.at}" for t in score.thresholds))
        if score.quiet_hours is not None:
            extras.append(f"quiet hours ({score.quiet_hours.policy}, {score.timezone})")
        if score.tiers:
            extras.append("tiers " + ", ".join(t.name for t in score.tiers))
        if score.decays:
            extras.append(f"{len(score.decays)} decaying rule(s), checked every "
                          f"{format_duration(score.decay_granularity_ms)}")  # fmt: skip
        idle = score.inactivity
        if idle is not None:
            extras.append(f"inactivity {idle.points:+d} after {format_duration(idle.after_ms)}"
                          f" of silence ({'once' if idle.once else 'every'})")  # fmt: skip
        if score.rollup is not None:
            top = f" {score.rollup.k}" if score.rollup.aggregate == "top" else ""
            extras.append(f"roll-up: {score.rollup.aggregate}{top} of its contacts' "
                          f"{score.rollup.source}")  # fmt: skip
        tail = f"; {'; '.join(extras)}" if extras else ""
        print(f"  {score.name} ({score.entity}): {len(score.rules)} rule(s){tail}")
    for matrix in plan.matrices:
        print(f"  matrix {matrix.name} ({matrix.entity}): {matrix.rows} x {matrix.cols}, "
              f"{sum(len(row) for row in matrix.labels)} cells")  # fmt: skip
    return 0


def cmd_score(plan_path: str, events_path: str, *, changes: bool, until: str | None) -> int:
    plan = load_plan_or_exit(plan_path)
    if isinstance(plan, int):
        return plan
    until_ms = None
    if until is not None:
        until_ms = parse_instant(until)
        if until_ms is None:
            print(f"leadscore: --until must be epoch millis or ISO-8601 with an offset "
                  f"(got {until!r})", file=sys.stderr)  # fmt: skip
            return 2
    try:
        stream = sys.stdin if events_path == "-" else open(events_path, encoding="utf-8")  # noqa: SIM115
    except OSError as error:
        print(f"leadscore: cannot read events {events_path}: {error.strerror}", file=sys.stderr)
        return 1
    scorer = OfflineScorer(plan)
    out = sys.stdout
    try:
        bad = _score_lines(scorer, stream, out, changes=changes)
    except (OSError, UnicodeDecodeError) as error:
        print(f"leadscore: cannot read events {events_path}: {error}", file=sys.stderr)
        return 1
    finally:
        if stream is not sys.stdin:
            stream.close()
    if until_ms is not None:
        _print_changes(scorer.advance_to(until_ms), until_ms, out, enabled=changes)
    for record in scorer.finals():
        out.write(json.dumps(record) + "\n")
    if bad:
        print(f"leadscore: {bad} bad line(s) skipped", file=sys.stderr)
    return 0


def _score_lines(
    scorer: OfflineScorer, lines: Iterable[str], out: IO[str], *, changes: bool
) -> int:
    bad = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        item = parse_line(line)
        if isinstance(item, Invalid):
            bad += 1
            print(f"line {number}: {item.reason}", file=sys.stderr)
            continue
        produced = scorer.feed(item)
        _print_changes(produced, scorer.clock_ms or 0, out, enabled=changes)
    return bad


def parse_line(line: str) -> Item | Invalid:
    try:
        record = json.loads(line, parse_float=Decimal)
    except ValueError as error:
        return Invalid(f"not valid JSON: {error}")
    if not isinstance(record, dict):
        return Invalid("a line must hold one JSON object")
    return parse_input(record)


def _print_changes(
    changes: Iterable[ScoreChange], emitted_at_ms: int, out: IO[str], *, enabled: bool
) -> None:
    if not enabled:
        return
    for change in changes:
        out.write(json.dumps({"kind": "change", **change.to_dict(emitted_at_ms=emitted_at_ms)}))
        out.write("\n")


def load_plan_or_exit(path: str) -> Plan | int:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        print(f"leadscore: cannot read plan {path}: {error.strerror}", file=sys.stderr)
        return 1
    except UnicodeDecodeError as error:  # the file is there but is no plan: invalid input
        print(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})", file=sys.stderr)
        return 2
    try:
        return load_plan(text, source=path)
    except PlanError as error:
        print(str(error), file=sys.stderr)
        count = len(error.issues)
        print(f"{path}: {count} problem(s) found; fix them and run "
              f"'leadscore plan check {path}' again", file=sys.stderr)  # fmt: skip
        return 2
