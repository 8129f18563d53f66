"""Memory over a long run at half load with 1,000,000 entities (``make memory``).

1. **Calibrate**: a fresh worker drains ``--calibrate-passes`` preloaded passes over every
   entity, then ``--calibrate-events`` more; its throughput over those (the consumer group's
   progress, every entity then has a state with a few contributions, as in the run) is the full
   load of the steady state, and the run gets half of it.
2. **Run**: another fresh worker, with the default bounds (entity cache
   ``LEADSCORE_CACHE_ENTITIES``, RocksDB block cache, write buffers), gets the reference traffic
   mix at that rate for ``--minutes``. Contacts are visited with a stride over ``--entities``
   ids (every id once per ``--entities`` events), so the state holds all of them after the first
   pass and the cache keeps churning. Every ``--sample-s`` seconds the worker's resident set
   (``VmRSS``) and the consumer group's lag are sampled.
3. **Verdict**: after the warm-up (the first pass over every entity, or ``--warmup-frac`` of the
   run if that is longer), RSS is flat if its highest sample is within 10% of its lowest.

Writes ``bench/results/memory-<date>.json`` (machine, command, settings, every sample), ``.md``
and ``.png`` (the curve). Only 127.0.0.1 is used; the run ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kafkaio
from confluent_kafka import Producer
from contenders import ROOT, Contender, Process
from kafkaio import TopicSet
from run import log, machine, wait_drained, wait_ready

from streams.commands.traffic import TrafficShape, generate
from streams.wire.codec import Codec, Source

STRIDE = 7919  # a prime: i * STRIDE mod n visits every id once per n events (n not a multiple)


def events(count: int, entities: int, seed: int, rate: float) -> Any:
    """The reference mix with live event times and contacts visited by a stride."""
    now = int(time.time() * 1000)
    shape = replace(TrafficShape(), contacts=entities, deals=max(1, entities // 50),
                    start_ms=now, step_ms=max(1, int(1000 / rate)))  # fmt: skip
    for i, (source, record) in enumerate(generate(count, seed=seed, shape=shape)):
        if record.get("contact_id") is not None:
            record["contact_id"] = f"c-{i * STRIDE % entities}"
        record["occurred_at"] = int(time.time() * 1000)
        yield source, record


async def calibrate(args: argparse.Namespace) -> float:
    """Full load in the steady state: a fresh worker drains ``--calibrate-passes`` passes over
    every entity and then ``--calibrate-events`` more; the rate is measured over the last part
    only, when every entity has a state that has grown for a few visits and the cache misses as
    it will in the run (the first pass creates states, which costs less than reading them back;
    states keep growing with each visit: a worker calibrated after one pass ran 40,000-100,000
    records behind at "half" load, after two passes it fell behind in the last five minutes of
    the run, whose contacts get about six visits; four passes keep it ahead)."""
    tag = f"{args.run}-cal"
    topics = TopicSet.named(TopicSet.input_names(tag), tag)
    await kafkaio.create_topics(args.bootstrap, [*topics.inputs, *topics.outputs],
                                args.partitions, compacted=[topics.scores])  # fmt: skip
    total = args.entities * args.calibrate_passes + args.calibrate_events
    await kafkaio.preload(args.bootstrap, topics, events(total, args.entities, 1, 1000.0))
    who = Contender("ours", "service", settings=tuple(args.setting))
    proc = who.start(args.bootstrap, topics, tag, args.work / tag)
    entity_topic = f"{tag}-entity-events"  # the scoring stage's input (streams.wire.topics)
    points: list[tuple[float, int]] = []  # (monotonic time, entity-events items committed)
    try:
        await wait_ready(proc)
        deadline = time.monotonic() + total / 100 + 300
        while time.monotonic() < deadline:
            proc.check()
            points.append((time.monotonic(), await committed(args.bootstrap, tag, entity_topic)))
            lag = await kafkaio.group_lag(args.bootstrap, who.group(tag),
                                          [*topics.inputs, entity_topic])  # fmt: skip
            if lag == 0:
                break
            await asyncio.sleep(1)
    finally:
        proc.stop()
    # The rate of the whole pipeline is the rate of its second hop: items scored. An input
    # makes one or two items, evenly over the stream, so inputs = items x inputs / all items.
    items = points[-1][1]
    first = items * args.entities * args.calibrate_passes / total
    last = items - items * 5000 / total
    steady = [(t, c) for t, c in points if first <= c <= last]
    if len(steady) < 2:
        raise RuntimeError(f"too few samples after the first pass to calibrate: {points[-5:]}")
    (t1, c1), (t2, c2) = steady[0], steady[-1]
    return (c2 - c1) / (t2 - t1) * total / items


async def committed(bootstrap: str, group: str, topic: str) -> int:
    """The offsets ``group`` committed on ``topic``, summed (transaction markers included)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


def gauges(proc: Process) -> dict[str, float]:
    """The worker's cache gauges from its /metrics (empty if it cannot answer)."""
    out: dict[str, float] = {}
    for line in proc.metrics().splitlines():
        for name in (
            "leadscore_cache_entries",
            "leadscore_cache_bytes",
            "leadscore_rocksdb_memory_bytes",
        ):
            if line.startswith(name + " "):
                out[name.removeprefix("leadscore_")] = float(line.split()[1])
    return out


def rss_mib(proc: Process) -> float:
    return proc.rss_mib("VmRSS")


async def steady(args: argparse.Namespace, rate: float) -> dict[str, Any]:
    tag = f"{args.run}-run"
    topics = TopicSet.named(TopicSet.input_names(tag), tag)
    await kafkaio.create_topics(args.bootstrap, [*topics.inputs, *topics.outputs],
                                args.partitions, compacted=[topics.scores])  # fmt: skip
    codec = Codec.load()
    topic_of = dict(zip(Source, topics.inputs, strict=True))
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 20,
                         "enable.idempotence": True})  # fmt: skip
    total = int(rate * args.minutes * 60)
    source = events(total, args.entities, 2, rate)
    who = Contender("ours", "service", settings=tuple(args.setting))
    proc = who.start(args.bootstrap, topics, tag, args.work / tag)
    samples: list[dict[str, Any]] = []
    sent = 0
    try:
        await wait_ready(proc)
        started = time.monotonic()
        next_sample = started
        for step in range(int(args.minutes * 60 * 10)):  # 100 ms steps
            due = int(rate * (step + 1) / 10)
            while sent < due:
                kind, record = next(source)
                producer.produce(topic_of[kind], codec.encode(codec.inputs[kind], record),
                                 kafkaio.entity_hint(record))  # fmt: skip
                sent += 1
                if sent % 1000 == 0:
                    producer.poll(0)
            producer.poll(0)
            now = time.monotonic()
            if now >= next_sample:
                proc.check()
                lag = await kafkaio.group_lag(args.bootstrap, who.group(tag), topics.inputs)
                samples.append({"t_s": round(now - started, 1), "rss_mib": round(rss_mib(proc), 1),
                                "events_sent": sent, "input_lag": lag, **gauges(proc)})  # fmt: skip
                log(f"{samples[-1]}")
                next_sample += args.sample_s
            await asyncio.sleep(max(0.0, started + (step + 1) / 10 - time.monotonic()))
        producer.flush(60)
        await wait_drained(args, proc, who.group(tag), topics, timeout_s=600)
        samples.append({"t_s": round(time.monotonic() - started, 1),
                        "rss_mib": round(rss_mib(proc), 1), "events_sent": sent,
                        "input_lag": 0, "drained": True})  # fmt: skip
        peak = proc.rss_mib("VmHWM")
    finally:
        proc.stop()
    warmup_s = max(args.entities / rate, args.minutes * 60 * args.warmup_frac)
    after = [s["rss_mib"] for s in samples if s["t_s"] >= warmup_s]
    low, high = min(after), max(after)
    return {"rate_events_per_s": round(rate), "events_sent": sent, "samples": samples,
            "warmup_s": round(warmup_s), "after_warmup_min_mib": low,
            "after_warmup_max_mib": high, "spread": round(high / low - 1, 4),
            "flat_within_10pct": high / low - 1 <= 0.10, "peak_rss_mib": round(peak, 1),
            "max_input_lag": max(s["input_lag"] for s in samples)}  # fmt: skip


def setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("LEADSCORE_"):
        raise argparse.ArgumentTypeError(f"expected LEADSCORE_NAME=VALUE, got {text!r}")
    return name, value


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot([s["t_s"] / 60 for s in samples], [s["rss_mib"] for s in samples], marker=".")
    ax.axvline(result["warmup_s"] / 60, color="grey", linestyle="--", label="end of warm-up")
    ax.axhspan(result["after_warmup_min_mib"], result["after_warmup_min_mib"] * 1.1,
               color="green", alpha=0.12, label="lowest after warm-up + 10%")  # fmt: skip
    ax.set_xlabel("minutes")
    ax.set_ylabel("worker RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Worker RSS at {result['rate_events_per_s']:,} events/s (half load), "
                 f"{result['settings']['entities']:,} entities")  # fmt: skip
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--calibrate-events", type=int, default=200_000,
                        help="events after the calibration's pass over every entity")  # fmt: skip
    parser.add_argument("--calibrate-passes", type=int, default=4,
                        help="passes over every entity before measuring")  # fmt: skip
    parser.add_argument("--rate", type=float, default=None, help="events/s (default: half load)")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        type=setting,
        metavar="LEADSCORE_NAME=VALUE",
        help="a worker setting, repeatable",
    )
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--warmup-frac", type=float, default=1 / 6)
    parser.add_argument("--settle-s", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench")
    args = parser.parse_args()
    args.run = f"m{uuid.uuid4().hex[:8]}"
    args.work = args.work / args.run
    started = datetime.now(UTC)
    full = None
    if args.rate is None:
        log(
            f"calibrating: {args.calibrate_passes} x {args.entities:,} + "
            f"{args.calibrate_events:,} events"
        )
        full = asyncio.run(calibrate(args))
        args.rate = full / 2
        log(f"full load {full:,.0f} events/s: running at {args.rate:,.0f}")
    result: dict[str, Any] = {
        "benchmark": "memory", "run_at": started.isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]), "machine": machine(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "work")},
        "full_load_events_per_s": None if full is None else round(full),
    }  # fmt: skip
    result.update(asyncio.run(steady(args, args.rate)))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"memory-{started:%Y-%m-%d}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    plot(result, stem.with_suffix(".png"))
    verdict = "flat" if result["flat_within_10pct"] else "NOT flat"
    lines = [
        f"# Worker memory at half load, {started:%Y-%m-%d}", "",
        f"`{result['command']}` on {result['machine']['cpu']} ({result['machine']['cores']} "
        f"cores, {result['machine']['memory_gib']} GiB).", "",
        f"- full load (calibration): {result['full_load_events_per_s'] or '-'} events/s; "
        f"run at {result['rate_events_per_s']:,} events/s for {args.minutes:g} minutes "
        f"({result['events_sent']:,} events, {args.entities:,} contacts by stride)",
        f"- RSS after the warm-up ({result['warmup_s']} s): lowest "
        f"{result['after_warmup_min_mib']} MiB, highest {result['after_warmup_max_mib']} MiB, "
        f"spread {result['spread']:.1%}: **{verdict}** (goal: within 10%)",
        f"- peak RSS {result['peak_rss_mib']} MiB; highest input lag sampled "
        f"{result['max_input_lag']:,} records", "",
        f"![RSS curve]({stem.with_suffix('.png').name})", "",
    ]  # fmt: skip
    stem.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
