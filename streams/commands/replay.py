"""``leadscore replay --plan NEW``: what a candidate plan would change, before anything changes.

The retained inputs (a JSON-lines archive, or the input topics from an instant on) are scored
twice with the offline scorer, under the current plan and under the candidate, each advanced to
the same instant at the end (``--at``, default the newest event time). The report (dry run: it
publishes nothing) sets them side by side:

- per entity and score of either plan: the value under each, the delta, the tier under each;
- tier migrations: how many entities move from each tier to each other one;
- thresholds that would fire: per threshold, the entities that would cross it up (reached under
  the candidate, not now) or down;
- per rule: the points each rule holds at the end under each plan, and how many entities hold
  points of it.

Scores are matched by name; a score only one plan has shows ``null`` on the other side.

Each side refuses, as the worker would under its plan, an input whose event time lies more than
the plan's ``max_future`` ahead of its arrival: its record's Kafka timestamp when reading the
topics, ``--at`` (else the wall clock) for an archive. Bad archive lines are reported with their
numbers and skipped.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from streams.commands.offline import OfflineScorer, Reference, load_plan_or_exit, read_items
from streams.scoring import Invalid, Item, Plan
from streams.scoring.aggregate import reached, tier_of, total
from streams.scoring.arrival import future_reason
from streams.scoring.state import C_POINTS, C_RULE, EntityState

#: Entities listed in the report's ``entities`` (the largest moves first); counts cover all.
LISTED = 1000
#: An input and its arrival time (None: not checked against ``max_future``).
Arrived = tuple[Item, int | None]


def score_both(
    items: Iterable[Arrived],
    current: Plan,
    candidate: Plan,
    *,
    at_ms: int | None = None,
    progress: Any = None,
) -> tuple[OfflineScorer, ...]:
    """The two scorers after every item (in the given order) and the final advance; a side
    leaves out an item its plan refuses as too far ahead of its arrival (``max_future``)."""
    scorers = (OfflineScorer(current), OfflineScorer(candidate))
    newest = None
    for n, (item, arrival) in enumerate(items, 1):
        for scorer in scorers:
            if arrival is None or _refusal(item, arrival, scorer.plan) is None:
                scorer.feed(item)
        newest = item.occurred_at_ms if newest is None else max(newest, item.occurred_at_ms)
        if progress is not None and n % 1000 == 0:
            progress(n)
    end = at_ms if at_ms is not None else newest
    if end is not None:
        for scorer in scorers:
            scorer.advance_to(end)
    return scorers


Valued = tuple[int | None, str | None, tuple[str, ...]]


def _value(plan: Plan, name: str, state: EntityState | None) -> Valued:
    score = plan.by_name.get(name)
    if score is None:
        return None, None, ()
    ledger = state.scores.get(name) if state is not None else None
    value = ledger.total if ledger is not None else total(score, {})
    return value, tier_of(score, value), reached(score, value)


def diff(current: OfflineScorer, candidate: OfflineScorer) -> dict[str, Any]:
    """The dry-run report of two scorers fed the same inputs."""
    keys = sorted(set(current.states) | set(candidate.states),
                  key=lambda k: (k.tenant_id or "", k.kind, k.entity_id))  # fmt: skip
    rows: list[dict[str, Any]] = []
    migrations: Counter[tuple[str, str, str]] = Counter()
    fire: Counter[tuple[str, str, str]] = Counter()
    moved = 0
    for key in keys:
        names = sorted({s.name for s in current.plan.by_kind.get(key.kind, ())}
                       | {s.name for s in candidate.plan.by_kind.get(key.kind, ())})  # fmt: skip
        for name in names:
            old, old_tier, old_reached = _value(current.plan, name, current.states.get(key))
            new, new_tier, new_reached = _value(candidate.plan, name, candidate.states.get(key))
            if old == new and old_tier == new_tier:
                continue
            moved += 1
            delta = None if old is None or new is None else new - old
            rows.append({"tenant_id": key.tenant_id, "entity": key.kind,
                         "entity_id": key.entity_id, "score": name, "current": old,
                         "candidate": new, "delta": delta, "tier_current": old_tier,
                         "tier_candidate": new_tier})  # fmt: skip
            if old_tier != new_tier and old_tier is not None and new_tier is not None:
                migrations[(name, old_tier, new_tier)] += 1
            for threshold in set(new_reached) - set(old_reached):
                fire[(name, threshold, "up")] += 1
            for threshold in set(old_reached) - set(new_reached):
                fire[(name, threshold, "down")] += 1
    rows.sort(key=lambda r: (-abs(r["delta"] or 0), r["score"], r["entity_id"]))
    return {
        "entities_compared": len(keys),
        "scores_changed": moved,
        "entities": rows[:LISTED],
        "tier_migrations": [
            {"score": s, "from": a, "to": b, "entities": n}
            for (s, a, b), n in sorted(migrations.items())
        ],
        "thresholds_would_fire": [
            {"score": s, "threshold": t, "direction": d, "entities": n}
            for (s, t, d), n in sorted(fire.items())
        ],
        "rules": _rules(current, candidate),
    }


def _held(scorer: OfflineScorer) -> dict[tuple[str, str], tuple[int, int]]:
    """(score, rule) -> (points held at the end, entities holding some)."""
    points: Counter[tuple[str, str]] = Counter()
    holders: Counter[tuple[str, str]] = Counter()
    for state in scorer.states.values():
        for name, ledger in state.scores.items():
            if name not in scorer.plan.by_name:
                continue
            held: Counter[str] = Counter()
            for contrib in ledger.contribs:
                held[contrib[C_RULE]] += contrib[C_POINTS]
            for (rule, _), folded in ledger.folded.items():
                held[rule] += folded
            for rule, hold in ledger.holds.items():
                if hold is not None:
                    held[rule] += hold[C_POINTS]
            for rule, pts in held.items():
                points[(name, rule)] += pts
                holders[(name, rule)] += 1
    return {k: (points[k], holders[k]) for k in points}


def _rules(current: OfflineScorer, candidate: OfflineScorer) -> list[dict[str, Any]]:
    old, new = _held(current), _held(candidate)
    out = []
    for score, rule in sorted(set(old) | set(new)):
        before, after = old.get((score, rule), (0, 0)), new.get((score, rule), (0, 0))
        out.append({"score": score, "rule": rule, "points_current": before[0],
                    "points_candidate": after[0], "entities_current": before[1],
                    "entities_candidate": after[1]})  # fmt: skip
    return out


def _refusal(item: Item, arrival_ms: int, plan: Plan, reference: str = "its arrival") -> str | None:
    return future_reason(item.occurred_at_ms, arrival_ms, plan.max_future_ms, reference=reference)


def _archive_items(path: str, tenant: str | None, bad: list[int], reference: Reference,
                   plans: tuple[Plan, Plan]) -> Iterator[Arrived]:  # fmt: skip
    """The tenant's items of an archive, each with the reference instant as its arrival. Bad
    lines (for the worker: dead letters, under both plans) are reported and counted; a line
    only one plan refuses is reported, and that side leaves it out (``score_both``)."""
    with open(path, "rb") as lines:
        for number, parsed in read_items(lines):
            if isinstance(parsed, Invalid):
                bad[0] += 1
                why = reference.refusal(parsed, plans[1]) or parsed.reason
                print(f"line {number}: {why}", file=sys.stderr)
                continue
            if parsed.tenant_id != tenant:
                continue
            refusals = [reference.refusal(parsed, plan) for plan in plans]
            if all(refusals):
                bad[0] += 1
                print(f"line {number}: {refusals[1]}", file=sys.stderr)
                continue
            for side, refusal in zip(("current", "candidate"), refusals, strict=True):
                if refusal is not None:
                    print(f"line {number}: under the {side} plan only: {refusal}",
                          file=sys.stderr)  # fmt: skip
            yield parsed, reference.at_ms


def _topic_items(args: Any, from_ms: int, bad: list[int],
                 plans: tuple[Plan, Plan]) -> list[Arrived] | int:  # fmt: skip
    """The inputs of the service's input topics from ``from_ms`` (Kafka timestamps) on, each
    with its record's timestamp, in the order the topics give them (topic by topic; sorted by
    event time by the caller). Inputs both plans refuse as ahead of their arrival count as
    bad (the worker dead-letters them)."""
    from streams.wire.codec import Source
    from streams.wire.reading import read_arrivals, service_codec

    loaded = service_codec("replay")
    if isinstance(loaded, int):
        return loaded
    settings, codec = loaded
    items: list[Arrived] = []
    refused = 0

    def take(item: Item, arrival_ms: int) -> None:
        nonlocal refused
        if all(_refusal(item, arrival_ms, plan) is not None for plan in plans):
            refused += 1
        elif item.tenant_id == args.tenant:
            items.append((item, arrival_ms))

    why, bad[0] = read_arrivals(settings, codec, Source, take, args.timeout, from_ms=from_ms)
    bad[0] += refused
    if why is not None:
        print(f"leadscore replay: {why}", file=sys.stderr)
        return 1
    return items


def _summary(report: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [f"replay of {meta['events']} inputs ({meta['events_per_s']:,.0f} events/s), "
             f"{meta['current_version']} -> {meta['candidate_version']}: "
             f"{report['scores_changed']} scores of {report['entities_compared']} entities would "
             "change (dry run: nothing was published)"]  # fmt: skip
    for row in report["entities"][:10]:
        tier = (f"  {row['tier_current']} -> {row['tier_candidate']}"
                if row["tier_current"] != row["tier_candidate"] else "")  # fmt: skip
        lines.append(f"  {row['entity']}/{row['entity_id']} {row['score']}: {row['current']} -> "
                     f"{row['candidate']}{tier}")  # fmt: skip
    for fire in report["thresholds_would_fire"]:
        lines.append(f"  {fire['score']}.{fire['threshold']} would fire {fire['direction']} for "
                     f"{fire['entities']} entities")  # fmt: skip
    return "\n".join(lines)


def cmd_replay(args: Any) -> int:
    """``leadscore replay --plan NEW --current PLAN (--archive FILE | --from-time T)
    [--tenant TENANT] [--at T]``."""
    from streams.commands.options import instant_option

    candidate = load_plan_or_exit(args.plan)
    if isinstance(candidate, int):
        return candidate
    current = load_plan_or_exit(args.current)
    if isinstance(current, int):
        return current
    at_ms = None
    if args.at is not None:
        at_ms = instant_option(args.at, "replay", "--at")
        if at_ms is None:
            return 2
    if args.apply and (args.tenant is None or args.from_time is None):
        print("leadscore replay: --apply needs --tenant and --from-time (the "
              "workers recompute from their own retained records since then)",
              file=sys.stderr)  # fmt: skip
        return 2
    from_ms = 0
    bad = [0]
    started = time.perf_counter()
    items: list[Arrived]
    if args.archive is not None:
        reference = Reference.of(None, at_ms, "--at")
        try:
            items = list(_archive_items(args.archive, args.tenant, bad, reference,
                                        (current, candidate)))  # fmt: skip
        except OSError as error:
            print(f"leadscore replay: cannot read {args.archive}: {error}", file=sys.stderr)
            return 1
    else:
        parsed = instant_option(args.from_time, "replay", "--from-time")
        if parsed is None:
            return 2
        from_ms = parsed
        topic_items = _topic_items(args, from_ms, bad, (current, candidate))
        if isinstance(topic_items, int):
            return topic_items
        items = topic_items
    items.sort(key=lambda i: i[0].occurred_at_ms)  # (stable: the archive's order among equals)
    with _progress(len(items), enabled=not args.quiet) as step:
        scorers = score_both(items, current, candidate, at_ms=at_ms, progress=step)
    took = max(time.perf_counter() - started, 1e-9)
    report = diff(*scorers)
    meta = {"current_version": current.version, "candidate_version": candidate.version,
            "tenant": args.tenant, "events": len(items), "bad_lines": bad[0],
            "events_per_s": len(items) / took, "dry_run": not args.apply}  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "replay.json").write_text(json.dumps({**meta, **report}, indent=1) + "\n")
    print(_summary(report, meta))
    print(f"wrote {out / 'replay.json'}")
    if bad[0]:
        print(f"leadscore replay: {bad[0]} bad line(s) skipped", file=sys.stderr)
    if args.apply:
        return _apply(args, from_ms)
    return 0


def _apply(args: Any, from_ms: int) -> int:
    """``--apply``: the candidate goes to the ``plans`` topic for the tenant, asking every
    partition to recompute the tenant's entities from ``from_ms`` when it switches (cause
    ``recompute``; see ``streams.engine.tenants`` and ``streams.scoring.recompute``)."""
    from streams.commands.plan_publish import publish
    from streams.engine.tenants import RECOMPUTE_HEADER
    from streams.errors import LeadscoreError
    from streams.settings import load_settings

    try:
        settings = load_settings()
    except LeadscoreError as exc:
        print(f"leadscore replay: {exc}", file=sys.stderr)
        return 2
    text = Path(args.plan).read_bytes()
    print(f"applying: publishing {args.plan} for tenant {args.tenant}, recompute from "
          f"{from_ms}", file=sys.stderr)  # fmt: skip
    return publish(settings, args.tenant, text, wait_s=args.wait,
                   headers=[(RECOMPUTE_HEADER, str(from_ms).encode())])  # fmt: skip


class _progress:
    """A rich progress bar with events/s on stderr (a no-op when disabled or too short)."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total, self.enabled = total, enabled and total >= 5000
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.bar = Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]} events/s"),
                            console=Console(stderr=True), transient=True)  # fmt: skip
        started = time.perf_counter()
        self.bar.start()
        task = self.bar.add_task("replay", total=self.total, rate="-")

        def step(done: int) -> None:
            rate = done / max(time.perf_counter() - started, 1e-9)
            self.bar.update(task, completed=done, rate=f"{rate:,.0f}")

        return step

    def __exit__(self, *_: object) -> None:
        if self.bar is not None:
            self.bar.stop()


__all__ = ["cmd_replay", "diff", "score_both"]
