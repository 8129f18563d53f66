"""Plan regexes on RE2: scoring with catastrophic patterns against a plan of plain conditions.

Run ``make bench-regex`` (or ``.venv/bin/python bench/regex.py [--events N]``). The same
``--events`` page visits, every text adversarial and every one distinct (so each pattern's
memo of answers never helps), are scored through the offline scorer
(``streams.commands.offline.OfflineScorer``) under two plans of eight rules each:

- ``plain``: ``glob`` (literals and ``*``), ``contains`` and ``starts_with`` conditions;
- ``catastrophic``: the classics that take a backtracking engine exponential or high
  polynomial time (``^(a|aa)+$``, ``(a+)+$``, ``(.*a){25}``, ``(x+x+)+y``, ``^(\\w+\\s?)*$``,
  ...) and a glob with ``?`` (on RE2 too).

The texts are long runs of ``a`` or ``x`` ending in ``!`` and a number, ``--min-length`` to
``--max-length`` characters: nothing matches, under either plan, so both do the same scoring
work and differ only in their conditions. The rounds alternate the plans; the best of each is
kept. For scale, Python's ``re`` (the engine before RE2) is timed on each catastrophic pattern
with inputs growing until one search takes over ``--re-budget`` seconds (``0`` skips it).

Results: ``bench/results/regex-<UTC date>.json`` and ``.md`` (machine, command, events/s of
both plans side by side, their ratio).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams import native  # noqa: E402  (after the path: the tree's own streams)
from streams.commands.offline import OfflineScorer  # noqa: E402
from streams.scoring import Invalid, Item, load_plan, parse_input  # noqa: E402

T_START = 1_714_521_600_000  # 2024-05-01T00:00:00Z
CONTACTS = 1_000

PLAIN_RULES = [
    ("url", "glob", "*/pricing*"),
    ("url", "glob", "https://*.example.com/docs/*"),
    ("url", "contains", "/customers/"),
    ("url", "starts_with", "https://docs."),
    ("title", "contains", "Pricing"),
    ("title", "glob", "*webinar*"),
    ("referrer", "glob", "*google.*"),
    ("referrer", "contains", "linkedin"),
]
#: The same fields and operators as the catastrophic plan, with ordinary patterns: what a plan
#: of regexes costs on RE2 whatever the patterns' shape
REGEX_RULES = [
    ("url", "regex", "^https?://[^/]+/pricing"),
    ("url", "regex", "/docs/[a-z-]+$"),
    ("url", "regex", "[?&]utm_source=(news|mail)"),
    ("url", "glob", "*/blog/*?*"),
    ("title", "regex", "(?i)webinar|case study"),
    ("title", "regex", "^Pricing( - [A-Z][a-z]+)?$"),
    ("title", "regex", "[0-9]{4}-[0-9]{2}-[0-9]{2}"),
    ("referrer", "regex", "^https://(www\\.)?(google|bing)\\."),
]
#: (field, operator, pattern, adversarial text of about n characters for Python's re)
CATASTROPHIC_RULES: list[tuple[str, str, str, Any]] = [
    ("url", "regex", "^(a|aa)+$", lambda n: "a" * n + "!"),
    ("url", "regex", "(a+)+$", lambda n: "a" * n + "!"),
    ("url", "regex", "^(([a-z])+.)+[A-Z]([a-z])+$", lambda n: "a" * n + "!"),
    ("url", "glob", "*a*a*a*a*a*a*a*a*a*a*?!", lambda n: "a" * n),
    ("title", "regex", "(x+x+)+y", lambda n: "x" * n),
    ("title", "regex", r"^(\w+\s?)*$", lambda n: "x" * n + "!"),
    ("title", "regex", "(.*a){25}", lambda n: "a" * 24 + "!" * (n // 8)),
    ("referrer", "regex", r"^([a-zA-Z0-9])(([\-.]|[_]+)?([a-zA-Z0-9]+))*(@)",
     lambda n: "a" * n + "!"),
]  # fmt: skip


def plan_text(name: str, rules: list[tuple[Any, ...]]) -> str:
    lines = [f"version: bench-regex-{name}", "scores:", "  - name: engagement",
             "    entity: contact", "    rules:"]  # fmt: skip
    for i, (field, op, pattern, *_) in enumerate(rules):
        lines.append(f"      - {{id: r{i}, on: page_visit, points: 1, "
                     f"where: {{{field}: {{{op}: {json.dumps(pattern)}}}}}}}")  # fmt: skip
    return "\n".join(lines) + "\n"


def events(count: int, seed: int, shortest: int, longest: int) -> list[Item]:
    """Page visits whose url, title and referrer are adversarial and distinct."""
    rnd = random.Random(seed)
    items: list[Item] = []
    for i in range(count):
        record = {
            "type": "page_visit", "event_id": f"ev-{i}", "occurred_at": T_START + i * 1000,
            "contact_id": f"contact-{rnd.randrange(CONTACTS)}",
            "url": "a" * rnd.randint(shortest, longest) + f"!{i}",
            "title": "x" * rnd.randint(shortest, longest) + f"!{i}",
            "referrer": "a" * rnd.randint(shortest, longest) + f"!{i}",
        }  # fmt: skip
        item = parse_input(record)
        if isinstance(item, Invalid):
            raise SystemExit(f"bench/regex.py: a generated event is invalid: {item}")
        items.append(item)
    return items


def score(plan: Any, items: list[Item]) -> tuple[float, int]:
    scorer = OfflineScorer(plan)
    changes = 0
    started = time.perf_counter()
    for item in items:
        changes += len(scorer.feed(item))
    return time.perf_counter() - started, changes


def python_re(budget_s: float) -> list[dict[str, Any]]:
    """Python's re on each catastrophic pattern: the input grows by two characters until one
    search takes longer than the budget (or the input reaches 64 characters)."""
    rows = []
    for _field, op, pattern, text_of in CATASTROPHIC_RULES:
        if op != "regex":
            continue
        regex = re.compile(pattern)
        n, took = 8, 0.0
        while took <= budget_s and n <= 64:
            text = text_of(n)
            started = time.perf_counter()
            regex.search(text)
            took = time.perf_counter() - started
            n += 2
        rows.append({"pattern": pattern, "characters": len(text), "seconds": round(took, 4)})
    return rows


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown(result: dict[str, Any]) -> str:
    m, w, p = result["machine"], result["workload"], result["plans"]
    rows = [f"# Plan regexes on RE2, {result['run_at']}", "",
            f"`{result['command']}` on {m['cpu']} ({m['cores']} cores), Python {m['python']}, "
            f"{m['core']}; {w['events']:,} page visits, texts of {w['min_length']} to "
            f"{w['max_length']} characters, every one distinct; best of {result['rounds']} "
            "rounds.", "",
            "| plan | rules | events/s | seconds | changes |",
            "|---|---|---:|---:|---:|"]  # fmt: skip
    for name in ("plain", "regex", "catastrophic"):
        rows.append(f"| {name} | {p[name]['rules']} | {p[name]['events_per_s']:,} | "
                    f"{p[name]['seconds']} | {p[name]['changes']} |")  # fmt: skip
    rows += [
        "",
        f"Ratio catastrophic / plain: **{result['ratio']:.2f}**; catastrophic / "
        f"ordinary regexes: **{result['ratio_regex']:.2f}** (events/s).",
        "",
    ]
    for name, rules in result["plan_rules"].items():
        cells = ", ".join(f"`{rule}`" for rule in rules)
        rows += [f"The {name} plan's conditions: {cells}.", ""]
    if result["python_re"]:
        rows += ["Python's `re` (the engine before RE2) on the catastrophic regexes, one search "
                 "on an adversarial input grown until it took over "
                 f"{result['re_budget_s']} s:", "",
                 "| pattern | characters | seconds |", "|---|---:|---:|"]  # fmt: skip
        for row in result["python_re"]:
            cell = row["pattern"].replace("|", "\\|")  # a | would end the table's cell
            rows.append(f"| `{cell}` | {row['characters']} | {row['seconds']} |")
        rows.append("")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="page visits to score")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--min-length", type=int, default=20, help="shortest adversarial text")
    parser.add_argument("--max-length", type=int, default=200, help="longest adversarial text")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best is kept")
    parser.add_argument("--re-budget", type=float, default=0.5,
                        help="seconds one Python re search may reach (0: skip)")  # fmt: skip
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)

    plans = {"plain": PLAIN_RULES, "regex": REGEX_RULES, "catastrophic": CATASTROPHIC_RULES}
    compiled = {name: load_plan(plan_text(name, rules), source=f"bench-regex-{name}")
                for name, rules in plans.items()}  # fmt: skip
    print(f"generating {args.events:,} events ...", flush=True)
    items = events(args.events, args.seed, args.min_length, args.max_length)
    rounds: dict[str, list[tuple[float, int]]] = {name: [] for name in plans}
    for i in range(args.rounds):
        for name in plans if i % 2 == 0 else reversed(plans):
            seconds, changes = score(compiled[name], items)
            rounds[name].append((seconds, changes))
            print(f"round {i + 1}/{args.rounds}: {name}: {seconds:.2f} s, "
                  f"{args.events / seconds:,.0f} events/s", flush=True)  # fmt: skip
    figures = {}
    for name in plans:
        seconds, changes = min(rounds[name])
        figures[name] = {"rules": len(plans[name]), "seconds": round(seconds, 3),
                         "events_per_s": round(args.events / seconds), "changes": changes,
                         "rounds_s": [round(s, 3) for s, _ in rounds[name]]}  # fmt: skip
    if args.re_budget > 0:
        print("Python's re on the catastrophic regexes ...", flush=True)
    now = datetime.now(UTC)
    result = {
        "benchmark": "regex",
        "run_at": now.isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/regex.py", *(argv or sys.argv[1:])]),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "platform": platform.platform(),
                    "core": native.describe()},
        "workload": {"events": args.events, "seed": args.seed, "contacts": CONTACTS,
                     "min_length": args.min_length, "max_length": args.max_length},
        "rounds": args.rounds,
        "plans": figures,
        "ratio": round(figures["catastrophic"]["events_per_s"]
                       / figures["plain"]["events_per_s"], 3),
        "ratio_regex": round(figures["catastrophic"]["events_per_s"]
                             / figures["regex"]["events_per_s"], 3),
        "plan_rules": {name: [f"{f} {op} {pattern}" for f, op, pattern, *_ in rules]
                       for name, rules in plans.items()},
        "re_budget_s": args.re_budget,
        "python_re": python_re(args.re_budget) if args.re_budget > 0 else [],
    }  # fmt: skip
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"regex-{now:%Y-%m-%d}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    path.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
