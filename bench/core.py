"""In-process benchmark of the scoring core: this tree compiled and pure, against a baseline commit.

Run ``make bench-core`` (or ``.venv/bin/python bench/core.py [--events N] [--base SHA]``).
A seeded generator produces a realistic workload over 100,000 entities with skewed popularity
(``plans/reference.yaml``). Each *variant* runs in its own interpreter, one after another, and
the rounds alternate variants so a noisy machine slows them alike:

- ``base``: the core of the baseline commit (``--base``, default ``2110d38``, pure Python),
  exported into ``.cache/bench/tree-<sha>`` (``bench/trees.py``; ``base-compiled``: its own
  compiled build);
- ``pure``: this tree's core, interpreted (``LEADSCORE_CORE=pure``);
- ``compiled``: this tree's core compiled by mypyc (``LEADSCORE_CORE=compiled``);
- ``compiled-wave2`` / ``pure-wave2``: the same build on the second plan (``--wave2-plan``,
  default ``plans/reference-second-wave.yaml``: the reference plan with decay, tiers and
  roll-ups of contacts into accounts and deals), so its events/s stand beside the reference
  plan's in the same run. Member updates are applied to their accounts and deals at once, as
  the offline scorer does; each counts in the same pass as the item that sent it;
- ``compiled-predicted`` / ``pure-predicted``: the same build on the first plan (``--plan``)
  with two predicted scores added (``PREDICTED_SCORES``: a contact's conversion and a deal's
  win chance, whose features read the plan's scores, rule hits and properties), so the cost of
  re-evaluating them after every item stands beside the plan's events/s in the same run.

Each variant measures, on one core: parsing; ``apply`` with states in memory (the default
garbage collector, then the worker's GC policy); ``apply`` with a state round trip per event
(``loads`` + ``dumps``, timed apart); and a worker-shaped pass (batches of 2,000 items over an
in-memory cache, each dirty state encoded once per batch) under each GC policy the worker could
use. The best round of each figure is kept. ``--profile`` adds one sampled run per variant
(py-spy ``--native``, so compiled frames are seen) and reports microseconds per event by stage.

Results: ``bench/results/core-<UTC date>.json`` and ``.md`` (``engine-*``: runs from before the
rename of ``make bench-engine`` to ``make bench-core``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from profile import compiled  # bench/profile.py (this script's directory)
from typing import Any

import trees  # bench/trees.py

ROOT = Path(__file__).resolve().parents[1]
#: The tree whose core a child imports (``--tree``); the driver imports nothing of the core.
sys.path.insert(0, str(ROOT))
if "--tree" in sys.argv:
    sys.path.insert(0, sys.argv[sys.argv.index("--tree") + 1])

if "--child" in sys.argv:
    from streams.scoring import (
        EntityKey,
        EntityState,
        Invalid,
        Item,
        Plan,
        apply,
        dumps,
        load_plan,
        loads,
        parse_input,
        route,
    )

    try:  # roll-ups (absent in older trees, whose outcomes have no member updates)
        from streams.scoring import apply_member
    except ImportError:
        apply_member = None  # type: ignore[assignment]

T_START = 1_714_521_600_000  # 2024-05-01T00:00:00Z
SPAN_MS = 30 * 86_400_000
CONTACTS = 80_000
DEALS = 20_000
PAGES = [
    "https://www.example.com/", "https://www.example.com/pricing", "https://www.example.com/services/consulting",
    "https://www.example.com/customers/acme", "https://docs.example.com/api/auth",
    "https://www.example.com/blog/how-to-score-leads", "https://www.example.com/careers",
    "https://www.example.com/demo/thank-you", "https://www.example.com/trial/started?plan=pro",
    "https://www.example.com/contact-sales/sent", "https://www.example.com/features?utm_medium=cpc",
    "https://www.example.com/about",
]  # fmt: skip
PAGE_WEIGHTS = [20, 12, 8, 6, 10, 15, 2, 1, 1, 1, 6, 8]
EMAILS = ["email.sent", "email.open", "email.click", "email.reply", "email.forward",
          "email.bounce", "email.unsubscribe", "email.complaint"]  # fmt: skip
EMAIL_WEIGHTS = [30, 40, 18, 4, 2, 3, 2, 1]
KINDS = ["page_visit", "email", "purchase", "deal", "profile", "adjustment"]
KIND_WEIGHTS = [45, 30, 4, 8, 12, 1]
TENANTS = [None, None, None, "tenant-a", "tenant-b"]
STAGES = ["new", "qualified", "proposal", "negotiation", "closed"]


def skewed(rnd: random.Random, n: int) -> int:
    """Index in [0, n) with Zipf-like popularity (a few entities get most events)."""
    return min(n - 1, int(n * rnd.random() ** 3))


def _deal(rnd: random.Random, account: str | None) -> int:
    """A deal of the given tenant (deal i belongs to tenant i % len(TENANTS))."""
    index = skewed(rnd, DEALS // len(TENANTS))
    return index * len(TENANTS) + TENANTS.index(account)


def generate(count: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    records: list[dict[str, Any]] = []
    for i in range(count):
        at = T_START + (i * SPAN_MS) // count + rnd.randint(-600_000, 60_000)  # mild disorder
        index = skewed(rnd, CONTACTS)
        contact = f"contact-{index}"
        # each contact belongs to one tenant, under the field's former name ``account_id``,
        # which this tree still reads and every baseline reads (they know no ``tenant_id``)
        account = TENANTS[index % len(TENANTS)]
        kind = rnd.choices(KINDS, KIND_WEIGHTS)[0]
        base: dict[str, Any] = {"event_id": f"ev-{seed}-{i}", "occurred_at": at,
                                "account_id": account, "contact_id": contact}  # fmt: skip
        if rnd.random() < 0.05:
            base["deal_id"] = f"deal-{_deal(rnd, account)}"
        if kind == "page_visit":
            url = rnd.choices(PAGES, PAGE_WEIGHTS)[0]
            referrer = "https://www.google.com/" if "cpc" in url else None
            records.append({**base, "type": "page_visit", "url": url, "referrer": referrer})
        elif kind == "email":
            campaign = rnd.choice(["newsletter-05", "onboarding-2", "promo-q2"])
            records.append({**base, "type": rnd.choices(EMAILS, EMAIL_WEIGHTS)[0],
                            "campaign_id": campaign})  # fmt: skip
        elif kind == "purchase":
            amount = f"{rnd.randint(10, 9000)}.{rnd.randint(0, 99):02d}"
            records.append({**base, "type": "purchase", "order_id": f"o-{i}", "amount": amount,
                            "currency": "EUR"})  # fmt: skip
        elif kind == "deal":
            deal = f"deal-{_deal(rnd, account)}"
            stage = rnd.choice(STAGES)
            status = "open" if stage != "closed" else rnd.choice(["won", "lost"])
            records.append({**base, "type": "deal.stage_changed", "contact_id": None,
                            "deal_id": deal, "pipeline": "sales", "to_stage": stage,
                            "status": status, "value": rnd.randint(1, 200) * 500})  # fmt: skip
        elif kind == "profile":
            attributes = {
                "industry": rnd.choice(["saas", "fintech", "retail", "media", "ecommerce"]),
                "employees": rnd.choice([5, 50, 250, 1200, 5000]),
                "country": rnd.choice(["PL", "DE", "US", "BR", "JP"]),
                "seniority": rnd.choice(["c-level", "vp", "manager", "ic"]),
                "title": rnd.choice(["CTO", "Engineer", "Marketing Manager", "Student"]),
                # the company: about 8 contacts each, now and then a move to the next one
                "account_id": f"company-{index // 8 + (rnd.random() < 0.05)}",
            }
            records.append({**base, "type": "contact.updated", "attributes": attributes})
        else:
            op = rnd.choices(["add", "subtract", "set", "reset"], [50, 30, 10, 10])[0]
            command: dict[str, Any] = {"type": "adjustment", "command_id": f"cmd-{i}",
                                       "occurred_at": at, "account_id": account,
                                       "entity": "contact", "entity_id": contact,
                                       "score": "engagement", "op": op}  # fmt: skip
            if op != "reset":
                command["points"] = rnd.randint(1, 50)
            if op in ("add", "subtract") and rnd.random() < 0.5:
                command["expires_after"] = "7d"
            records.append(command)
    return records


# --- the child: one variant, one round -------------------------------------------------------


def run_memory(
    items: list[Item], plan: Plan, shadow: Plan | None = None
) -> tuple[float, dict[EntityKey, EntityState], int]:
    """The in-memory pass; with ``shadow``, each item is also scored under that plan into
    states of its own, as the worker scores a tenant's shadow plan (``-shadow`` variants)."""
    plans = (plan,) if shadow is None else (plan, shadow)
    all_states: tuple[dict[EntityKey, EntityState], ...] = tuple({} for _ in plans)
    changes = 0
    clock = 0
    started = time.perf_counter()
    for item in items:
        if item.occurred_at_ms > clock:
            clock = item.occurred_at_ms
        for key in route(item):
            for scored, states in zip(plans, all_states, strict=True):
                outcome = apply(states.get(key), key, item, scored, now_ms=clock)
                states[key] = outcome.state
                changes += len(outcome.changes)
                for target, update in getattr(outcome, "forwards", ()):
                    done = apply_member(states.get(target), target, update, scored, now_ms=clock)
                    states[target] = done.state
                    changes += len(done.changes)
    return time.perf_counter() - started, all_states[0], changes


def run_serialized(
    items: list[Item], plan: Plan, shadow: Plan | None = None
) -> tuple[float, float, float, list[int]]:
    """Every apply loads its state from bytes and stores it back: (total, decode, encode) seconds
    and the final blob sizes (with ``shadow``: also under that plan, as :func:`run_memory`)."""
    plans = (plan,) if shadow is None else (plan, shadow)
    all_blobs: tuple[dict[EntityKey, bytes], ...] = tuple({} for _ in plans)
    clock = 0
    decode = encode = 0.0
    timer = time.perf_counter

    def trip(blobs: dict[EntityKey, bytes], key: EntityKey, work: Any, *args: Any) -> Any:
        """Load the state of ``key``, ``work`` on it, store it back: timed."""
        nonlocal decode, encode
        blob = blobs.get(key)
        t0 = timer()
        state = None if blob is None else loads(blob)
        t1 = timer()
        outcome = work(state, *args, now_ms=clock)
        t2 = timer()
        blobs[key] = dumps(outcome.state)
        encode += timer() - t2
        decode += t1 - t0
        return outcome

    started = timer()
    for item in items:
        if item.occurred_at_ms > clock:
            clock = item.occurred_at_ms
        for key in route(item):
            for scored, blobs in zip(plans, all_blobs, strict=True):
                outcome = trip(blobs, key, apply, key, item, scored)
                for target, update in getattr(outcome, "forwards", ()):
                    trip(blobs, target, apply_member, target, update, scored)
    took = timer() - started
    return took, decode, encode, [len(b) for b in all_blobs[0].values()]


BATCH = 2000  # the worker's default LEADSCORE_BATCH_SIZE


def run_batches(items: list[Item], plan: Plan, policy: str) -> float:
    """The worker's shape: batches over a cache of decoded states, each dirty state encoded once
    per batch (the commit), under one garbage-collector policy (see GC_POLICIES)."""
    cache: dict[EntityKey, EntityState] = {}
    clock = 0
    saved = gc.get_threshold()
    gc.collect()
    if policy in ("worker-thresholds", "commit-freeze"):
        gc.freeze()  # start-up objects out of every scan
    if policy in ("worker-thresholds", "freeze-after-restore", "commit-freeze"):
        gc.set_threshold(50_000, 20, 100)  # young collections every 50k allocations, not 700
    if policy in ("between-batches", "off"):
        gc.disable()
    started = time.perf_counter()
    half = len(items) // 2
    for start in range(0, len(items), BATCH):
        if policy == "freeze-after-restore" and start == half - half % BATCH:
            gc.freeze()  # the first half stands for the states a restore loaded
        dirty: dict[EntityKey, EntityState] = {}
        for item in items[start : start + BATCH]:
            if item.occurred_at_ms > clock:
                clock = item.occurred_at_ms
            for key in route(item):
                outcome = apply(cache.get(key), key, item, plan, now_ms=clock)
                cache[key] = dirty[key] = outcome.state
                for target, update in getattr(outcome, "forwards", ()):
                    done = apply_member(cache.get(target), target, update, plan, now_ms=clock)
                    cache[target] = dirty[target] = done.state
        for state in dirty.values():
            dumps(state)
        if policy == "between-batches":  # off inside a batch, the young generation after it
            gc.collect(0)
        elif policy == "commit-freeze":  # young generations after each batch, then freeze
            gc.collect(1)
            gc.freeze()
    took = time.perf_counter() - started
    gc.enable()
    gc.unfreeze()
    gc.set_threshold(*saved)
    return took


#: default: CPython's (700, 10, 10); worker-thresholds: the worker's (start-up objects frozen,
#: 50,000 / 20 / 100); freeze-after-restore: those thresholds, the warm cache frozen once;
#: between-batches: off in a batch, young generation collected after it; commit-freeze:
#: worker thresholds, young generations collected and everything frozen after each batch;
#: off: never collected (the lower bound, not a policy: cycles would leak).
GC_POLICIES = ("default", "worker-thresholds", "freeze-after-restore", "between-batches",
               "commit-freeze", "off")  # fmt: skip


#: Appended to the scores of the first plan by the *-predicted variants (``plans/reference.yaml``
#: ends with its scores): docs/plans.md, Predicted scores.
PREDICTED_SCORES = """
  - name: conversion
    entity: contact
    predicted:
      model: bench-conversion-1
      intercept: -3.2104
      features:
        - {name: engagement, score: engagement, weight: 0.0213}
        - {name: fit, score: fit, weight: 0.031}
        - {name: email-health, score: email-health, weight: 0.012}
        - {name: pricing-7d, score: engagement, rule: pricing-page, within: 7d, weight: 0.41}
        - {name: demo-7d, score: engagement, rule: demo-request, within: 7d, weight: 1.2}
        - {name: clicks-7d, score: engagement, rule: email-click, within: 7d, of: points,
           weight: 0.05}
        - {name: saas, attribute: industry, equals: saas, weight: 0.8}
        - {name: employees, attribute: employees, weight: 0.0002, max: 5000}
    thresholds: [{name: likely, at: 5000}]
    tiers: [{name: unlikely, below: 1000}, {name: possible, below: 5000}, {name: likely}]
  - name: win-chance
    entity: deal
    predicted:
      model: bench-win-1
      intercept: -2.1
      features:
        - {name: health, score: deal-health, weight: 0.008}
        - {name: visits-7d, score: deal-health, rule: stakeholder-visit, within: 7d, weight: 0.2}
        - {name: negotiation, attribute: stage, equals: negotiation, weight: 1.1}
        - {name: value, attribute: value, weight: 0.00001, max: 100000}
"""


class CollectorClock:
    """A ``gc.callbacks`` entry that adds up the collector's time in the in-memory pass (under
    CPython's default thresholds, as the pass runs): young collections (generations 0 and 1)
    apart from full ones, which scan every tracked object of the states."""

    def __init__(self) -> None:
        self.young_s = self.full_s = 0.0
        self.full = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        if info["generation"] == 2:
            self.full_s += took
            self.full += 1
        else:
            self.young_s += took


#: Ledger sizes of the decay figures: a usual one, and one of the busiest entities' (the
#: second-wave pass at 200,000 events reaches a few hundred contributions).
DECAY_SIZES = (5, 200)


def decay_figures(plan: Plan) -> dict[str, float]:
    """``decay.evaluate`` alone, on ledgers of ``DECAY_SIZES`` contributions of the plan's first
    half-life rule an hour apart, evaluated days later: microseconds per call of the full pass
    (a tree with the decay memo drops it before each call), and nanoseconds per contribution
    of the larger; ``..._memo_...``: the same calls answered from the memo (trees that have
    one). None for a plan without such a rule, or a tree whose ``evaluate`` or contributions
    differ."""
    try:
        from streams.scoring.decay import evaluate
        from streams.scoring.state import Ledger

        score, rule = next((s, r) for s in plan.scores for r, d in s.decays.items()
                           if d.kind == "half_life")  # fmt: skip
    except (ImportError, AttributeError, StopIteration):
        return {}
    out: dict[str, float] = {}
    start, hour, day = 1_700_000_000_000, 3_600_000, 86_400_000
    memo = hasattr(Ledger(), "memo")
    for n in DECAY_SIZES:
        ledger = Ledger()
        made = [(rule, 30, None, start + i * hour, None, f"e{i}") for i in range(n)]
        ledger.contribs = type(ledger.contribs)(made)  # a list in older trees, else a tuple
        ledger.sums = {None: 30 * n}
        at = start + n * hour + 5 * day
        calls = max(1000, 200_000 // n)
        for kept in (False, True) if memo else (False,):
            took = float("inf")
            for _ in range(3):  # the best of three
                began = time.perf_counter()
                for k in range(calls):
                    if memo and not kept:
                        ledger.memo = None
                    try:
                        evaluate(score, ledger, at + k, drop=False)
                    except TypeError:  # another signature
                        return {}
                took = min(took, (time.perf_counter() - began) / calls)
            out[f"decay_evaluate_{'memo_' if kept else ''}us_per_call_{n}"] = took * 1e6
    out["decay_evaluate_ns_per_contribution"] = out[f"decay_evaluate_us_per_call_{n}"] * 1e3 / n
    return out


def child(args: argparse.Namespace) -> int:
    import streams.scoring as core

    build = "pure"
    try:
        from streams import native  # absent in older trees: they are pure

        build = native.loaded()
    except ImportError:
        pass
    text = Path(args.plan).read_text()
    if args.predicted:
        text = text.rstrip() + "\n" + PREDICTED_SCORES
    plan = load_plan(text, source=args.plan)
    # -shadow: a challenger scored beside it, with states of its own (the reference plan with
    # other points, as a tenant's shadow would have): the core's cost of one shadow plan
    doubled = re.sub(r"points: (-?[0-9]+)", lambda m: f"points: {2 * int(m[1])}", text)
    shadow = load_plan(doubled, source="shadow") if args.shadow else None
    records = generate(args.events, args.seed)
    started = time.perf_counter()
    parsed = [parse_input(r) for r in records]
    parse_s = time.perf_counter() - started
    items: list[Item] = [p for p in parsed if not isinstance(p, Invalid)]
    del records, parsed
    n = len(items)
    out: dict[str, Any] = {"tree": str(Path(core.__file__).resolve().parents[2]), "build": build,
                           "items": n, "parse_s": parse_s}  # fmt: skip
    if args.only == "memory":  # the instruction-count run: the in-memory pass alone, GC off
        gc.disable()
        out["memory_s"], _, out["changes"] = run_memory(items, plan)
        print(json.dumps(out))
        return 0
    if args.only == "serialized":  # the profiled run: parse + the round-trip pass
        gc.collect()
        out["serialized_s"] = run_serialized(items, plan)[0]
        out["section_s"] = parse_s + out["serialized_s"]
        print(json.dumps(out))
        return 0
    gc.collect()
    collector = CollectorClock()
    gc.callbacks.append(collector)
    cpu = time.process_time()  # CPU time beside the wall time: the machine may be shared
    memory_s, states, changes = run_memory(items, plan, shadow)
    out["memory_cpu_s"] = time.process_time() - cpu
    gc.callbacks.remove(collector)
    out["memory_gc_young_s"], out["memory_gc_full_s"] = collector.young_s, collector.full_s
    out["memory_gc_full"] = collector.full
    out["tracked_objects"] = len(gc.get_objects())  # the states', the items', the interpreter's
    out.update(memory_s=memory_s, changes=changes, entities=len(states),
               applications=sum(len(route(i)) for i in items))  # fmt: skip
    del states
    gc.collect()
    cpu = time.process_time()
    took, decode, encode, sizes = run_serialized(items, plan, shadow)
    out["serialized_cpu_s"] = time.process_time() - cpu
    out.update(serialized_s=took, decode_s=decode, encode_s=encode, sizes=sorted(sizes))
    for policy in () if args.quick else GC_POLICIES:
        out[f"batches_{policy}_s"] = run_batches(items, plan, policy)
    out.update(decay_figures(plan))
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))
    return 0


# --- the driver ------------------------------------------------------------------------------

#: Stage of a sampled stack, first match wins; each pattern is tried on every frame.
STAGE_PATTERNS = compiled(
    (
        ("gc", r"gc_collect_main|collect_with_callback|gc_collect"),
        ("parse", r"parse_input|scoring/events\.py|events___"),
        ("decode", r"\bloads \(|serialize___loads|_from_v\d|unpackb"),
        ("encode", r"\bdumps \(|serialize___dumps|Packer|msgpack_pack|_cmsgpack.*pack"),
        ("compaction", r"compaction\.py|compaction___|prune_history|settle_anchors"),
        ("emit", r"scoring/emit\.py|emit___|scoring/aggregate\.py|aggregate___|ScoreChange"),
        ("cap", r"scoring/capping\.py|capping___"),
        ("match", r"scoring/(conditions|patterns|catalog)\.py|(conditions|patterns|catalog)___"),
        ("dedup hash", r"id_hash|blake2b"),
        ("quiet hours", r"quiet_hours"),
        ("properties, state rules", r"scoring/(holds|profile)\.py|(holds|profile)___"),
        ("ledger", r"scoring/ledger\.py|ledger___|rebuild_sums|refresh_due|ScoreState.*recompute"),
        ("event rules", r"scoring/(evaluate|once|points)\.py|(evaluate|once|points)___"),
        ("engine, results", r"streams/scoring/|CPyDef_|CPyPy_"),
    )
)  # fmt: skip


def stage_of(stack: list[str]) -> str:
    for name, pattern in STAGE_PATTERNS:
        if any(pattern.search(frame) for frame in stack):
            return name
    return "harness"


def stage_costs(raw: Path, section_s: float, items: int) -> dict[str, float]:
    """Microseconds per event by stage: each stage's share of the samples x the section's time
    *without* the profiler (native sampling slows the process; the shares are what it gives)."""
    busy: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if count.isdigit() and any("run_serialized" in f or "<listcomp>" in f for f in frames):
            busy[stage_of(frames)] += int(count)
    total = sum(busy.values())
    per_event = section_s / items * 1e6
    return (
        {name: round(per_event * n / total, 2) for name, n in busy.most_common()} if total else {}
    )


WAVE2 = "-wave2"  # a variant on the second plan
PREDICTED = "-predicted"  # a variant on the first plan with predicted scores added
SHADOW = "-shadow"  # a variant on the first plan with a shadow plan scored beside it


def run_child(variant: str, tree: Path, args: argparse.Namespace, *extra: str,
              wrap: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("LEADSCORE_CORE", "PYTHONPATH")}
    plan = args.wave2_plan if variant.endswith(WAVE2) else args.plan
    if variant.startswith("base") and not variant.endswith(WAVE2):
        plan = getattr(args, "base_plan", "") or plan
    if variant.endswith(PREDICTED):
        extra = (*extra, "--predicted")
    if variant.endswith(SHADOW):
        extra = (*extra, "--shadow")
    variant = variant.removesuffix(WAVE2).removesuffix(PREDICTED).removesuffix(SHADOW)
    # base: pure Python, also when the tree has a compiled build (base-compiled, leadscore@)
    build = variant.removeprefix("base-") if variant != "base" else "pure"
    if build:
        env["LEADSCORE_CORE"] = build
    command = [sys.executable, __file__, "--child", "--tree", str(tree), "--events",
               str(args.events), "--seed", str(args.seed), "--plan", plan, *extra,
               *(["--quick"] if getattr(args, "quick", False) else [])]  # fmt: skip
    result = subprocess.run([*(wrap or []), *command], env=env, capture_output=True, text=True,
                            check=False)  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"bench-core: the {variant} run failed:\n{result.stderr[-3000:]}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    figures: dict[str, Any] = json.loads(lines[-1])
    if Path(figures["tree"]) != tree.resolve() or (build and figures["build"] != build):
        raise SystemExit(f"bench-core: the {variant} run imported {figures['build']} from "
                         f"{figures['tree']}, not {tree}")  # fmt: skip
    return figures


def instructions(variant: str, tree: Path, args: argparse.Namespace) -> int:
    """Instructions per event of the in-memory pass (parse included, GC off), counted by
    valgrind's cachegrind: the difference between a run of 3N and one of N events, over 2N.
    Unlike a timing, the count does not depend on what else the machine is doing."""
    small = max(1000, args.instructions)
    counts = []
    for events in (small, 3 * small):
        with tempfile.TemporaryDirectory() as temp:
            out = Path(temp) / "cachegrind.out"
            wrap = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
                    f"--cachegrind-out-file={out}"]  # fmt: skip
            run_child(variant, tree, argparse.Namespace(**{**vars(args), "events": events}),
                      "--only", "memory", wrap=wrap)  # fmt: skip
            summary = next(line for line in out.read_text().splitlines()
                           if line.startswith("summary:"))  # fmt: skip
            counts.append(int(summary.split()[1]))
    return (counts[1] - counts[0]) // (2 * small)


def base_plan(args: argparse.Namespace, tree: Path) -> str:
    """The plan the baseline scores with: ``--plan`` if its core loads it, else the baseline
    commit's own copy of that plan (2110d38 knows no tiers, which the reference plan has had
    since reference-2; its reference-1 has a threshold there), written into its tree."""
    check = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
         "from streams.scoring import load_plan; "
         "load_plan(open(sys.argv[2]).read(), source=sys.argv[2])",
         str(tree), args.plan], env={**os.environ, "LEADSCORE_CORE": "pure"},
        capture_output=True, check=False,
    )  # fmt: skip
    if check.returncode == 0:
        return ""
    relative = Path(args.plan).resolve().relative_to(ROOT).as_posix()
    own = subprocess.run(["git", "-C", str(ROOT), "show", f"{trees.resolve(args.base)}:{relative}"],
                         capture_output=True, check=True).stdout  # fmt: skip
    path = tree / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(own)
    print(f"the baseline cannot load {relative}: it scores with its own commit's copy")
    return str(path)


def best(rounds: list[dict[str, Any]], key: str) -> float:
    return min(r[key] for r in rounds)


def _relative(arg: str) -> str:
    """A command-line argument with this tree's path made relative (no machine paths)."""
    return arg.replace(f"{ROOT}{os.sep}", "").replace(str(ROOT), ".")


def median(rounds: list[dict[str, Any]], key: str) -> float:
    values = sorted(r[key] for r in rounds)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    first = rounds[0]
    n = first["items"]
    sizes = first["sizes"]
    out: dict[str, Any] = {
        "changes": first["changes"],
        "entities": first["entities"],
        "parse_events_per_s": round(n / best(rounds, "parse_s")),
        "memory_events_per_s": round(n / best(rounds, "memory_s")),
        "memory_events_per_s_median": round(n / median(rounds, "memory_s")),
        "serialized_events_per_s": round(n / best(rounds, "serialized_s")),
        "memory_events_per_cpu_s": round(n / best(rounds, "memory_cpu_s")),
        "serialized_events_per_cpu_s": round(n / best(rounds, "serialized_cpu_s")),
        "decode_us_per_event": round(best(rounds, "decode_s") / n * 1e6, 2),
        "encode_us_per_event": round(best(rounds, "encode_s") / n * 1e6, 2),
        "state_bytes_median": sizes[len(sizes) // 2],
        "state_bytes_p99": sizes[min(len(sizes) - 1, int(0.99 * len(sizes)))],
        "state_bytes_max": sizes[-1],
        "peak_rss_mib": max(r["peak_rss_mib"] for r in rounds),
    }
    if "memory_gc_full_s" in first:  # the collector's share of the best in-memory round
        fastest = min(rounds, key=lambda r: r["memory_s"])
        out["memory_gc_share"] = round(
            (fastest["memory_gc_young_s"] + fastest["memory_gc_full_s"]) / fastest["memory_s"], 3
        )
        out["memory_gc_full_collections"] = fastest["memory_gc_full"]
        out["tracked_objects"] = first["tracked_objects"]
    for name in (k for k in first if k.startswith("decay_evaluate_")):  # (second-wave plans)
        out[name] = round(min(r[name] for r in rounds), 3 if "_us_" in name else 1)
    for policy in GC_POLICIES:
        if f"batches_{policy}_s" in first:  # (not with --quick)
            out[f"batches_{policy}_events_per_s"] = round(n / best(rounds, f"batches_{policy}_s"))
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown(result: dict[str, Any]) -> str:
    variants = list(result["variants"])
    rows = [f"# Scoring-core benchmark, {result['run_at']}", "",
            f"`{result['command']}` on {result['machine']['cpu']} ({result['machine']['cores']} "
            f"cores), Python {result['machine']['python']}; {result['workload']['events']:,} "
            f"events, best of {result['rounds']} rounds; baseline `{result['base']}`; "
            f"1-minute load average before each round and at the end: "
            f"{', '.join(str(x) for x in result.get('load_average_1min', []))}.", "",
            "| figure | " + " | ".join(variants) + " |",
            "|---|" + "---:|" * len(variants)]  # fmt: skip
    names = list(dict.fromkeys(n for v in result["variants"].values() for n in v["figures"]))
    for name in names:  # (-: a figure the variant has not, as decay's on the reference plan)
        cells = [
            f"{result['variants'][v]['figures'][name]:,}"
            if name in result["variants"][v]["figures"]
            else "-"
            for v in variants
        ]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    rows += ["", "| ratio to the baseline | " + " | ".join(variants) + " |",
             "|---|" + "---:|" * len(variants)]  # fmt: skip
    for name in ("memory", "serialized", "memory_cpu", "serialized_cpu"):
        cells = [f"{result['variants'][v]['ratio_to_base'][name]:.2f}x" for v in variants]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    if result.get("stages"):
        stages = sorted({s for v in result["stages"].values() for s in v})
        rows += ["", "Microseconds per event by stage (parse + state round trip, py-spy --native):",
                 "", "| stage | " + " | ".join(result["stages"]) + " |",
                 "|---|" + "---:|" * len(result["stages"])]  # fmt: skip
        for stage in stages:
            cells = [f"{result['stages'][v].get(stage, 0):.2f}" for v in result["stages"]]
            rows.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events to generate")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--plan", default=str(ROOT / "plans" / "reference.yaml"))
    parser.add_argument("--wave2-plan", default=str(ROOT / "plans" / "reference-second-wave.yaml"),
                        help="the plan of the *-wave2 variants")  # fmt: skip
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--base", default="2110d38", help="baseline commit ('' = none)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the best is kept")
    parser.add_argument("--variants", default="base,pure,compiled,compiled-wave2",
                        help="of base, base-pure, base-compiled, pure, compiled, and the "
                             "latter two with -wave2 (the second plan), -predicted (the "
                             "first plan with predicted scores) or -shadow (the first plan "
                             "and a shadow plan beside it)")  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="stage costs with py-spy")
    parser.add_argument(
        "--name",
        default="",
        help="suffix of the results' file names "
        "(core-<date><name>.json), so a run does not replace the day's other",
    )
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="N",
        help="also count instructions per event with valgrind (N and 3N events)",
    )
    parser.add_argument(
        "--no-timing",
        action="store_true",
        help="skip the timed rounds (with --instructions: counts only)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", default=str(ROOT), help=argparse.SUPPRESS)
    parser.add_argument("--only", default="", help=argparse.SUPPRESS)
    parser.add_argument("--predicted", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the in-memory and round-trip passes (not the batch pass per GC policy)",
    )
    parser.add_argument("--shadow", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    variants = [v for v in args.variants.split(",") if v and (args.base or "base" not in v)]
    roots = {v: (trees.export(args.base) if v.startswith("base") else ROOT) for v in variants}
    args.base_plan = base_plan(args, roots[next(v for v in variants if v.startswith("base"))]) \
        if any(v.startswith("base") for v in variants) else ""  # fmt: skip
    if "base-compiled" in variants and not trees.compile_core(roots["base-compiled"]):
        print(f"no compiled build of {args.base} (it predates tools/build_core.py): skipped")
        variants.remove("base-compiled")
    counted: dict[str, int] = {}
    if args.instructions and shutil.which("valgrind") is None:
        print("valgrind is not on the PATH: no instruction counts (apt-get install valgrind)")
    elif args.instructions:
        for variant in variants:
            print(f"instructions: {variant} ...", flush=True)
            counted[variant] = instructions(variant, roots[variant], args)
            print(f"  {counted[variant]:,} per event")
        if args.no_timing:
            return 0
    rounds: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    load = [round(os.getloadavg()[0], 2)]  # the 1-minute load average before each round, at end
    for i in range(args.rounds):
        for variant in variants if i % 2 == 0 else reversed(variants):
            print(f"round {i + 1}/{args.rounds}: {variant} ...", flush=True)
            load.append(round(os.getloadavg()[0], 2))
            rounds[variant].append(run_child(variant, roots[variant], args))
    load.append(round(os.getloadavg()[0], 2))
    stages: dict[str, dict[str, float]] = {}
    if args.profile:
        spy = Path(sys.executable).parent / "py-spy"
        for variant in variants:
            raw = ROOT / ".cache" / "bench" / f"core-{variant}.raw"
            print(f"profile: {variant} ...", flush=True)
            figures = run_child(variant, roots[variant], args, "--only", "serialized", wrap=[
                str(spy), "record", "--native", "--format", "raw", "--rate", "250",
                "--output", str(raw), "--"])  # fmt: skip
            section_s = best(rounds[variant], "parse_s") + best(rounds[variant], "serialized_s")
            stages[variant] = stage_costs(raw, section_s, figures["items"])
    results = {v: {"figures": summarise(r), "rounds": r} for v, r in rounds.items()}
    for v, count in counted.items():
        results[v]["figures"]["instructions_per_event"] = count
    for v in variants:
        for r in results[v]["rounds"]:
            del r["sizes"]
            r["tree"] = os.path.relpath(r["tree"], ROOT)  # no machine paths in the results
    reference = results[variants[0]]["figures"]  # the first variant: the baseline
    for v in variants:
        f = results[v]["figures"]
        results[v]["ratio_to_base"] = {
            "memory": round(f["memory_events_per_s"] / reference["memory_events_per_s"], 2),
            "serialized": round(f["serialized_events_per_s"]
                                / reference["serialized_events_per_s"], 2),
            "memory_cpu": round(f["memory_events_per_cpu_s"]
                                / reference["memory_events_per_cpu_s"], 2),
            "serialized_cpu": round(f["serialized_events_per_cpu_s"]
                                    / reference["serialized_events_per_cpu_s"], 2),
        }  # fmt: skip
    changes = {v: results[v]["figures"]["changes"] for v in variants
               if not v.endswith((WAVE2, PREDICTED))}  # fmt: skip
    if len(set(changes.values())) > 1:
        print(f"WARNING: the variants disagree on the number of changes: {changes}")
    now = datetime.now(UTC)
    result = {
        "benchmark": "core",
        "run_at": now.isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/core.py", *map(_relative, argv or sys.argv[1:])]),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "platform": platform.platform()},
        "workload": {"plan": Path(args.plan).name, "wave2_plan": Path(args.wave2_plan).name,
                     "predicted_scores": PREDICTED_SCORES.strip(),
                     "seed": args.seed, "events": args.events,
                     "contacts": CONTACTS, "deals": DEALS, "span_days": SPAN_MS // 86_400_000},
        "base": args.base,
        "base_plan": "the baseline commit's own copy of the plan" if args.base_plan else "",
        "rounds": args.rounds,
        "load_average_1min": load,
        "goals": {"memory_ratio": 3.0, "memory_ratio_stretch": 5.0, "serialized_ratio": 3.0},
        "variants": results,
        "stages": stages,
    }  # fmt: skip
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"core-{now:%Y-%m-%d}{args.name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    path.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
