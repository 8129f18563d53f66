"""In-process benchmark of the scoring engine over plans/reference.yaml.

Run ``make bench-engine`` (or ``.venv/bin/python bench/engine.py [--events N]``). A seeded
generator produces a realistic workload over 100,000 entities with skewed popularity; the
benchmark measures, on one core:

1. events/s with entity states held in memory (a dict),
2. events/s when every event also loads and stores its entity state through
   ``serialize.loads``/``dumps`` (what the stream shell does against RocksDB),
3. serialized state size per entity (median, p99, max) at the end,
4. peak resident memory of the process.

Results go to ``bench/results/engine-<UTC date>.json`` and a summary is printed.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.scoring import (  # noqa: E402
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
        account = TENANTS[index % len(TENANTS)]  # each contact belongs to one tenant
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


def run_memory(items: list[Item], plan: Plan) -> tuple[float, dict[EntityKey, EntityState], int]:
    states: dict[EntityKey, EntityState] = {}
    changes = 0
    clock = 0
    started = time.perf_counter()
    for item in items:
        if item.occurred_at_ms > clock:
            clock = item.occurred_at_ms
        for key in route(item):
            outcome = apply(states.get(key), key, item, plan, now_ms=clock)
            states[key] = outcome.state
            changes += len(outcome.changes)
    return time.perf_counter() - started, states, changes


def run_serialized(items: list[Item], plan: Plan) -> tuple[float, dict[EntityKey, bytes]]:
    blobs: dict[EntityKey, bytes] = {}
    clock = 0
    started = time.perf_counter()
    for item in items:
        if item.occurred_at_ms > clock:
            clock = item.occurred_at_ms
        for key in route(item):
            blob = blobs.get(key)
            outcome = apply(None if blob is None else loads(blob), key, item, plan, now_ms=clock)
            blobs[key] = dumps(outcome.state)
    return time.perf_counter() - started, blobs


def percentile(values: list[int], p: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000, help="events to generate")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--plan", default=str(ROOT / "plans" / "reference.yaml"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)

    plan = load_plan(Path(args.plan).read_text(), source=args.plan)
    print(f"plan {args.plan}: {len(plan.scores)} scores, {plan.rule_count} rules")
    records = generate(args.events, args.seed)
    started = time.perf_counter()
    parsed = [parse_input(r) for r in records]
    parse_s = time.perf_counter() - started
    items: list[Item] = [p for p in parsed if not isinstance(p, Invalid)]
    invalid = len(parsed) - len(items)
    del records, parsed
    applies = sum(len(route(i)) for i in items)
    print(f"generated {len(items):,} items ({invalid} invalid), {applies:,} entity applications")

    gc.collect()
    memory_s, states, changes = run_memory(items, plan)
    sizes = [len(dumps(s)) for s in states.values()]
    entities = len(states)
    del states
    gc.collect()
    serialized_s, blobs = run_serialized(items, plan)
    del blobs
    # The worker's garbage-collector settings (streams/worker.py): start-up objects frozen, young
    # objects collected every 50,000 allocations instead of 700. Same items, same plan.
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    tuned_s, states, _ = run_memory(items, plan)
    del states
    gc.set_threshold(*thresholds)
    gc.unfreeze()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    figures = {
        "items": len(items),
        "entity_applications": applies,
        "entities": entities,
        "changes": changes,
        "parse_events_per_s": round(len(items) / parse_s),
        "memory_events_per_s": round(len(items) / memory_s),
        "memory_seconds": round(memory_s, 3),
        "memory_events_per_s_worker_gc": round(len(items) / tuned_s),
        "serialized_events_per_s": round(len(items) / serialized_s),
        "serialized_seconds": round(serialized_s, 3),
        "state_bytes_median": percentile(sizes, 0.5),
        "state_bytes_p99": percentile(sizes, 0.99),
        "state_bytes_max": max(sizes),
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }
    now = datetime.now(UTC)
    result = {
        "benchmark": "engine",
        "run_at": now.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpu": cpu_model(),
            "cores": __import__("os").cpu_count(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
        },
        "workload": {"plan": Path(args.plan).name, "plan_version": plan.version,
                     "rules": plan.rule_count, "scores": len(plan.scores),
                     "seed": args.seed, "events": args.events,
                     "contacts": CONTACTS, "deals": DEALS, "span_days": SPAN_MS // 86_400_000},
        "goals": {"memory_events_per_s": 100_000, "serialized_events_per_s": 50_000},
        "figures": figures,
    }  # fmt: skip
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"engine-{now:%Y-%m-%d}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for name, value in figures.items():
        print(f"  {name:26} {value:>14,}")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
