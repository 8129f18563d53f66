"""Offline scoring shell: ``leadscore plan check`` and ``leadscore score``.

Reads files, drives the pure core with an event-time clock (the latest event time seen so far),
prints JSON lines. Exit codes: 0 success (bad input lines are reported on stderr and skipped),
1 unreadable file, 2 invalid plan or arguments.

Bad lines, each reported with its number and skipped: a line that is not UTF-8, longer than
``MAX_JSON_BYTES``, nested deeper than ``MAX_JSON_DEPTH``, not JSON, not a valid input, or
whose event time lies more than the plan's ``max_future`` ahead of the reference instant (the
stand-in for the worker's arrival time: ``--now``, else ``--until``, else the wall clock).
"""

from __future__ import annotations

import heapq
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

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
from streams.scoring.arrival import future_reason
from streams.scoring.durations import format_duration, parse_instant
from streams.scoring.matrix import cells
from streams.scoring.plan.reader import MAX_PLAN_BYTES, plan_size_problem
from streams.scoring.shown import shown
from streams.wire import jsonlimits
from streams.wire.publish import change_record, score_view


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
        forwards: list[Forward] = []
        for key in route(item):
            outcome = apply(self.states.get(key), key, item, self.plan, now_ms=self.clock_ms)
            self.states[key] = outcome.state
            changes.extend(outcome.changes)
            self._schedule(key, outcome.state)
            forwards.extend(outcome.forwards)
        # member updates after the item reached every entity it routes to: the service appends
        # them to the entity-events topic, behind the item's copies
        self._deliver(tuple(forwards), self.clock_ms, changes)
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
            key=lambda k: (k.tenant_id is not None, k.tenant_id or "", k.kind, k.entity_id),
        )
        for key in keys:
            state = self.states[key]
            for score in sorted(self.plan.by_kind.get(key.kind, ()), key=lambda s: s.name):
                view = score_view(score, state)
                del view["seq"]  # the offline rows leave it out: it counts changes, not a value
                yield {
                    "kind": "score",
                    "tenant_id": key.tenant_id,
                    "entity": key.kind,
                    "entity_id": key.entity_id,
                    "score": score.name,
                    **view,
                }
            for name, label in cells(self.plan, key.kind, state).items():
                yield {
                    "kind": "matrix",
                    "tenant_id": key.tenant_id,
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


def cmd_score(plan_path: str, events_path: str, *, changes: bool, until: str | None,
              now: str | None = None) -> int:  # fmt: skip
    plan = load_plan_or_exit(plan_path)
    if isinstance(plan, int):
        return plan
    instants: dict[str, int | None] = {}
    for option, given in (("--until", until), ("--now", now)):
        instants[option] = None if given is None else parse_instant(given)
        if given is not None and instants[option] is None:
            print(f"leadscore: {option} must be epoch millis or ISO-8601 with an offset "
                  f"(got {shown(given)})", file=sys.stderr)  # fmt: skip
            return 2
    until_ms = instants["--until"]
    reference = Reference.of(instants["--now"], until_ms)
    try:
        stream = (getattr(sys.stdin, "buffer", sys.stdin) if events_path == "-"
                  else open(events_path, "rb"))  # fmt: skip  # noqa: SIM115
    except OSError as error:
        print(f"leadscore: cannot read events {events_path}: {error.strerror}", file=sys.stderr)
        return 1
    scorer = OfflineScorer(plan)
    out = sys.stdout
    try:
        bad = _score_lines(scorer, stream, out, changes=changes, reference=reference)
    except OSError as error:
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


class Reference:
    """The instant offline reading takes for every line's arrival: ``--now``, else ``--until``,
    else the wall clock (read once, at the start)."""

    def __init__(self, at_ms: int, name: str) -> None:
        self.at_ms, self.name = at_ms, name

    @classmethod
    def of(cls, now_ms: int | None, until_ms: int | None, until_name: str = "--until") -> Reference:
        if now_ms is not None:
            return cls(now_ms, "--now")
        if until_ms is not None:
            return cls(until_ms, until_name)
        return cls(int(time.time() * 1000), "now (the wall clock)")

    def refusal(self, parsed: Item | Invalid, plan: Plan) -> str | None:
        """Why ``parsed`` is refused as lying too far ahead (the worker's check), or None."""
        occurred = parsed.occurred_ms if isinstance(parsed, Invalid) else parsed.occurred_at_ms
        if occurred is None:
            return None
        return future_reason(occurred, self.at_ms, plan.max_future_ms, reference=self.name)


def _score_lines(
    scorer: OfflineScorer, lines: IO[bytes] | IO[str], out: IO[str], *, changes: bool,
    reference: Reference,
) -> int:  # fmt: skip
    bad = 0
    for number, parsed in read_items(lines):
        reason = reference.refusal(parsed, scorer.plan)
        if reason is None and isinstance(parsed, Invalid):
            reason = parsed.reason
        if reason is not None:
            bad += 1
            print(f"line {number}: {reason}", file=sys.stderr)
            continue
        assert not isinstance(parsed, Invalid)  # noqa: S101 - its reason is not None
        produced = scorer.feed(parsed)
        _print_changes(produced, scorer.clock_ms or 0, out, enabled=changes)
    return bad


def read_items(stream: IO[bytes] | IO[str]) -> Iterator[tuple[int, Item | Invalid]]:
    """(line number, item or why not) of each non-blank line of a JSON-lines stream."""
    for number, line in read_lines(stream):
        if isinstance(line, Invalid):
            yield number, line
        elif line.strip():
            yield number, parse_line(line)


def read_lines(
    stream: IO[bytes] | IO[str], limit: int = jsonlimits.MAX_JSON_BYTES
) -> Iterator[tuple[int, str | Invalid]]:
    """(number, text) of each line, or why it is no line of text: longer than ``limit`` bytes
    (read no further than that), or not UTF-8. One bad line never ends the reading."""
    number = 0
    while True:
        raw = stream.readline(limit + 1)
        if not raw:
            return
        number += 1
        if len(raw) > limit and raw[-1:] not in (b"\n", "\n"):
            size = len(raw)
            while raw and raw[-1:] not in (b"\n", "\n"):  # skip the rest of the line
                raw = stream.readline(1 << 20)
                size += len(raw)
            size -= raw[-1:] in (b"\n", "\n")  # the newline is no part of the line
            yield number, Invalid(f"the line is {size:,} bytes long; at most {limit:,}")
            continue
        if isinstance(raw, str):
            yield number, raw
            continue
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as error:
            yield number, Invalid(f"not UTF-8 text ({error.reason} at byte {error.start + 1} "
                                  "of the line)")  # fmt: skip


def parse_line(line: str) -> Item | Invalid:
    """One line of JSON as an input item, or why it is not one."""
    try:
        record = jsonlimits.loads(line)
    except jsonlimits.JsonLimitError as error:
        return Invalid(f"the JSON value is refused: {error}")
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
        out.write(json.dumps({"kind": "change",
                              **change_record(change, emitted_at_ms=emitted_at_ms)}))  # fmt: skip
        out.write("\n")


def load_plan_or_exit(path: str) -> Plan | int:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_PLAN_BYTES + 1)  # no further: a larger plan is refused
            size = max(len(raw), os.fstat(handle.fileno()).st_size)
    except OSError as error:
        print(f"leadscore: cannot read plan {path}: {error.strerror}", file=sys.stderr)
        return 1
    too_big = plan_size_problem(size)
    if too_big is not None:  # as the worker and the plans topic refuse it
        print(f"{path}: {too_big}", file=sys.stderr)
        return 2
    try:
        text = raw.decode("utf-8")
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
