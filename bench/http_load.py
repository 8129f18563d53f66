"""Processing throughput with and without HTTP load (``make bench-http``).

The same preloaded Avro inputs (``bench/run.py``'s traffic) are processed by a fresh worker
several times, alternating: quiet, then while an HTTP load generator keeps ``--connections``
requests in flight against the worker (score reads of random contacts, explanations, unknown
tenants, bad paths, ``/metrics``). Events/s are measured as ``make bench`` measures them (first to
last output appended). The load generator runs in this process on the same machine, so it also
takes CPU from the worker: the figure is a worst case for a 2-core box.

Writes ``bench/results/http-<date>.json`` and ``.md``: the machine, the command, every round and
the ratio of the medians (loaded / quiet).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kafkaio
from contenders import ROOT, Contender, Process
from kafkaio import TopicSet
from run import log, machine, traffic, wait_drained, wait_ready


async def hammer(port: int, connections: int, stop: asyncio.Event, seen: Counter[int]) -> None:
    """Keep ``connections`` requests in flight until ``stop`` is set."""
    paths = ["/scores/contact/c-{n}", "/scores/contact/c-{n}/explain?score=engagement",
             "/scores/contact/c-{n}?account=nobody", "/scores/deal/d-{n}", "/metrics",
             "/no/such/path", "/readyz"]  # fmt: skip
    rng = random.Random(5)

    async def client() -> None:
        while not stop.is_set():
            path = rng.choice(paths).format(n=rng.randrange(20_000))
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
                )
                await writer.drain()
                status = (await reader.readline()).split()
                await reader.read()
                writer.close()
                seen[int(status[1]) if len(status) > 1 else 0] += 1
            except (ConnectionError, OSError):
                seen[-1] += 1

    await asyncio.gather(*(client() for _ in range(connections)))


async def one_round(args: argparse.Namespace, inputs: tuple[str, ...], n: int,
                    loaded: bool) -> dict[str, Any]:  # fmt: skip
    tag = f"{args.run}-{n}-{'load' if loaded else 'quiet'}"
    topics = TopicSet.named(inputs, tag)
    await kafkaio.create_topics(args.bootstrap, topics.outputs, args.partitions,
                                compacted=[topics.scores])  # fmt: skip
    who = Contender("ours", "service")
    proc: Process = who.start(args.bootstrap, topics, tag, args.work / tag)
    stop, seen = asyncio.Event(), Counter[int]()
    load = None
    try:
        await wait_ready(proc)
        if loaded:
            if proc.port is None:
                raise RuntimeError("the worker has no HTTP port")
            load = asyncio.create_task(hammer(proc.port, args.connections, stop, seen))
        await wait_drained(args, proc, who.group(tag), topics, timeout_s=args.events / 100 + 300)
    finally:
        stop.set()
        if load is not None:
            await load
        proc.stop()
    outputs = await kafkaio.read_all(args.bootstrap, topics.changed)
    stamps = [m.timestamp for m in outputs]
    window_s = (max(stamps) - min(stamps)) / 1000
    return {"round": n, "http_load": loaded, "events_per_s": round(args.events / window_s),
            "window_s": round(window_s, 2), "http_answers": dict(sorted(seen.items()))}  # fmt: skip


async def run(args: argparse.Namespace) -> dict[str, Any]:
    inputs = TopicSet.input_names(f"{args.run}-in")
    await kafkaio.create_topics(args.bootstrap, inputs, args.partitions)
    log(f"preloading {args.events:,} events")
    preloaded = traffic(args.events, seed=3, contacts=args.contacts, deals=args.deals)
    await kafkaio.preload(args.bootstrap, TopicSet.named(inputs, "unused"), preloaded)
    rounds = []
    for n in range(args.rounds):
        for loaded in (False, True):
            figures = await one_round(args, inputs, n, loaded)
            log(str(figures))
            rounds.append(figures)
    quiet = statistics.median(r["events_per_s"] for r in rounds if not r["http_load"])
    loaded = statistics.median(r["events_per_s"] for r in rounds if r["http_load"])
    return {"rounds": rounds, "median_quiet_events_per_s": quiet,
            "median_loaded_events_per_s": loaded, "loaded_over_quiet": round(loaded / quiet, 3),
            "goal_loaded_over_quiet": 0.8}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--deals", type=int, default=3_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=100, help="HTTP requests in flight")
    parser.add_argument("--settle-s", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench")
    args = parser.parse_args()
    args.run = f"h{uuid.uuid4().hex[:8]}"
    args.work = args.work / args.run
    started = datetime.now(UTC)
    result = {"benchmark": "http-load", "run_at": started.isoformat(timespec="seconds"),
              "command": " ".join(["python", *sys.argv]), "machine": machine(),
              "settings": {k: v for k, v in vars(args).items() if k not in ("out", "work")},
              **asyncio.run(run(args))}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"http-{started:%Y-%m-%d}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    lines = [f"# Processing under HTTP load, {started:%Y-%m-%d}", "",
             f"`{result['command']}` on {result['machine']['cpu']} "
             f"({result['machine']['cores']} cores), {args.events:,} events per round, "
             f"{args.connections} HTTP requests in flight during loaded rounds.", "",
             "| round | HTTP load | events/s | HTTP answers |", "|---|---|---|---|"]  # fmt: skip
    for r in result["rounds"]:
        lines.append(f"| {r['round']} | {'yes' if r['http_load'] else 'no'} | "
                     f"{r['events_per_s']:,} | {r['http_answers'] or '-'} |")  # fmt: skip
    lines += ["", f"Median quiet {result['median_quiet_events_per_s']:,.0f} events/s, loaded "
              f"{result['median_loaded_events_per_s']:,.0f}: loaded/quiet = "
              f"{result['loaded_over_quiet']} (goal at least 0.8)."]  # fmt: skip
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
