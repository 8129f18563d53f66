"""Where an event's milliseconds go in our worker: the latency budget at a given load.

``make bench`` measures each input's broker append to the broker append of the score change it
caused. This splits that time, and the time until the change is visible to a ``read_committed``
consumer, into the steps an input takes through the worker's two hops (ingest re-keys it into
the entity-events topic in one transaction; the entity stage scores it in a later one):

============== =============================================================================
queue, hop 1   input appended -> the ingest stage starts on its batch (``n`` of the re-keyed
               record: the stage's clock): fetch, the consumer's queue, the loop busy elsewhere
commit, hop 1  -> the re-keyed record is visible (``bench/tail.py``, read_committed): the rest of
               the batch, the wait for the transaction to commit and the commit itself
queue, hop 2   -> the entity stage starts on its batch (``emitted_at`` of the score change):
               fetching the committed record, the consumer's queue, the loop busy elsewhere
emit           -> the score change appended (broker ``LogAppendTime``): the rest of the batch,
               the producer's linger; ``make bench``'s latency ends here
commit, hop 2  -> the score change is visible (read_committed): its transaction's commit
============== =============================================================================

Per step: p50, p95 and p99 over the events, and each step's share of the end-to-end p99
events (the slowest 1%, by how their time splits). Also the worker's own figures over the
window (``/metrics``: commits, commit seconds, batch sizes) and the CPU of the worker and of
this process (the load generator) per second of window.

    .venv/bin/python bench/latency_budget.py --rate 5000 --seconds 30
    .venv/bin/python bench/latency_budget.py --load 0.5     # measures the maximum first

Writes ``bench/results/latency-<date>.{json,md}``. Everything goes to 127.0.0.1 (``--bootstrap``),
bounded by ``--seconds``; every topic it made is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import broker_cpu
import fastavro
import kafkaio
import msgpack
from contenders import ROOT, Contender
from kafkaio import TopicSet
from run import (
    DIRECT_CAUSES,
    free_stem,
    input_appends,
    log,
    machine,
    open_loop,
    percentile,
    throughput,
    traffic,
    wait_drained,
    wait_ready,
)

from streams.wire.codec import Source

COMMIT, BATCH = "leadscore_commit_seconds", "leadscore_batch_records"
STEPS = ("queue, hop 1", "commit, hop 1", "queue, hop 2", "emit", "commit, hop 2")


def scrape(text: str) -> dict[str, float]:
    """The worker's counters and histogram sums and counts that the budget reads."""
    wanted = ("leadscore_commit_seconds_sum", "leadscore_commit_seconds_count",
              "leadscore_batch_records_sum", "leadscore_batch_records_count",
              'leadscore_transactions_total{result="committed"}',
              'leadscore_processing_seconds_sum{stage="ingest"}',
              'leadscore_processing_seconds_sum{stage="score"}',
              'leadscore_processing_seconds_count{stage="ingest"}',
              'leadscore_processing_seconds_count{stage="score"}')  # fmt: skip
    out = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in wanted:
            out[name] = float(value)
    return out


async def budget(args: argparse.Namespace, rate: float) -> dict[str, Any]:
    tag = f"{args.run}-ours-budget"
    topics = TopicSet.named(TopicSet.input_names(tag), tag)
    entity = f"{tag}-entity-events"  # streams.wire.topics.entity_topic
    await kafkaio.create_topics(args.bootstrap, (*topics.inputs, *topics.outputs), args.partitions,
                                compacted=[topics.scores])  # fmt: skip
    count = int(rate * args.seconds)
    events = traffic(args.warmup + count, seed=7, contacts=args.contacts, deals=args.deals)
    warm, timed = events[: args.warmup], events[args.warmup :]
    work = args.work / tag
    who = Contender("ours", "service", settings=tuple(args.setting))
    recording = None
    proc = who.start(args.bootstrap, topics, tag, work)
    seen = work / "tail.txt"
    tail = subprocess.Popen([sys.executable, str(ROOT / "bench" / "tail.py"), "--bootstrap",
                             args.bootstrap, "--topics", f"{entity},{topics.changed}",
                             "--out", str(seen)])  # fmt: skip
    try:
        await wait_ready(proc)
        await kafkaio.preload(args.bootstrap, topics, warm)
        await wait_drained(args, proc, tag, topics, timeout_s=300)
        if args.broker_profile and args.broker_pid is not None and broker_cpu.Recording.available():
            recording = broker_cpu.Recording(args.broker_pid, work / "broker.jfr")
            recording.start()
        before, cpu_before = scrape(proc.metrics()), proc.cpu_s()
        own_before = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
        tail_before = broker_cpu.cpu_s(tail.pid)
        broker_before = broker_threads(args)
        started = time.monotonic()
        sent_s = await open_loop(args.bootstrap, topics, timed, rate)
        window = time.monotonic() - started
        broker_after = broker_threads(args)
        if recording is not None:
            recording.stop()  # the window's end (and again, doing nothing, in ``finally``)
        cpu = {"worker": proc.cpu_s() - cpu_before,
               "load generator (this process)":
                   sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - own_before,
               "tail": broker_cpu.cpu_s(tail.pid) - tail_before}  # fmt: skip
        if broker_before and broker_after:
            cpu["broker"] = sum(broker_after.values()) - sum(broker_before.values())
        _, lag = await wait_drained(args, proc, tag, topics, timeout_s=count / rate * 4 + 300)
        after = scrape(proc.metrics())
        load = os.getloadavg()[0]
    finally:
        if recording is not None:
            recording.stop()
        await asyncio.to_thread(proc.stop)
        tail.terminate()
        tail.wait(60)
    figures = await split(args, topics, entity, timed, seen)
    await kafkaio.delete_topics(args.bootstrap, tag)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    commits, batches = delta.get(f"{COMMIT}_count", 0), delta.get(f"{BATCH}_count", 0)
    figures["worker"] = {
        "commits_per_s": round(commits / window, 1),
        "commit_ms_mean": round(1000 * delta.get(f"{COMMIT}_sum", 0) / max(commits, 1), 1),
        "batch_records_mean": round(delta.get(f"{BATCH}_sum", 0) / max(batches, 1), 1),
        "consume_calls_per_s": round(batches / window, 1),
        # wall time per record in each stage (descheduled time included)
        **{f"{stage}_us_per_record": per_record(delta, stage) for stage in ("ingest", "score")},
    }
    figures["cpu_cores_during_window"] = {k: round(v / window, 2) for k, v in cpu.items()}
    if broker_before and broker_after:
        figures["broker_cores_by_thread"] = broker_cpu.cores_by_group(
            broker_before, broker_after, window
        )
    if recording is not None:
        figures["broker_samples_by_request"] = recording.summary()
    figures.update({"target_rate_per_s": round(rate, 1),
                    "achieved_rate_per_s": round(len(timed) / sent_s, 1),
                    "events": len(timed), "input_lag_at_end": lag, "load_1m": round(load, 2),
                    "settings": dict(args.setting)})  # fmt: skip
    return figures


def per_record(delta: dict[str, float], stage: str) -> float:
    """Microseconds of a stage per record, from the worker's processing histogram."""
    total = delta.get(f'leadscore_processing_seconds_sum{{stage="{stage}"}}', 0)
    count = delta.get(f'leadscore_processing_seconds_count{{stage="{stage}"}}', 0)
    return round(1e6 * total / max(count, 1), 1)


def broker_threads(args: argparse.Namespace) -> dict[str, float]:
    """The broker's CPU seconds per thread group, when it runs on this machine."""
    if args.broker_pid is None:
        return {}
    try:
        return broker_cpu.threads(args.broker_pid)
    except OSError:  # the broker went away
        return {}


async def split(
    args: argparse.Namespace,
    topics: TopicSet,
    entity: str,
    timed: list[tuple[Source, dict[str, Any]]],
    seen_path: Path,
) -> dict[str, Any]:
    """Join each timed input to its re-keyed record and its score changes, step by step."""
    ids = {str(r.get("event_id") or r.get("command_id")) for _, r in timed}
    appended = await input_appends(args.bootstrap, topics, ids)
    visible: dict[tuple[int, int, int], int] = {}
    for line in seen_path.read_text().splitlines():
        t, p, o, ms = (int(x) for x in line.split())
        visible[(t, p, o)] = min(ms, visible.get((t, p, o), ms))  # re-assigned: read again
    # the re-keyed records: input id -> (ingest clock, visible); the first of an input's
    ingested: dict[str, tuple[int, int]] = {}
    for m in await kafkaio.read_all(args.bootstrap, entity):
        body = msgpack.unpackb(m.value)
        if "i" not in body:
            continue
        ident = str(body["i"].get("event_id") or body["i"].get("command_id"))
        seen = visible.get((0, m.partition, m.offset))
        if ident in appended and seen is not None and ident not in ingested:
            ingested[ident] = (body["n"], seen)
    writer = fastavro.parse_schema(
        json.loads((ROOT / "schemas" / "score_changed.avsc").read_text())
    )
    rows = []
    for m in await kafkaio.read_all(args.bootstrap, topics.changed):
        change = fastavro.schemaless_reader(io.BytesIO(m.value), writer, None)
        assert isinstance(change, dict)  # noqa: S101 - a record schema
        ident = change.get("source_event_id")
        if change["cause"] not in DIRECT_CAUSES or ident not in ingested:
            continue
        t_in, (t_ingest, t_e_visible) = appended[ident], ingested[ident]
        emitted = round(change["emitted_at"].timestamp() * 1000)  # timestamp-millis
        t_out_visible = visible.get((1, m.partition, m.offset))
        if t_out_visible is None:
            continue
        rows.append((t_ingest - t_in, t_e_visible - t_ingest, emitted - t_e_visible,
                     m.timestamp - emitted, t_out_visible - m.timestamp,
                     m.timestamp - t_in, t_out_visible - t_in, t_in))  # fmt: skip
    steps = {
        name: {f"p{q}_ms": percentile([r[i] for r in rows], q / 100) for q in (50, 95, 99)}
        for i, name in enumerate(STEPS)
    }
    ends = {
        name: {f"p{q}_ms": percentile([r[i] for r in rows], q / 100) for q in (50, 95, 99)}
        for i, name in ((5, "append to append (make bench)"), (6, "append to visible"))
    }
    slowest = sorted(rows, key=lambda r: r[5])[-max(1, len(rows) // 100) :]
    share = {name: round(sum(r[i] for r in slowest) / max(1, sum(r[5] for r in slowest)), 3)
             for i, name in enumerate(STEPS[:4])}  # fmt: skip
    # how the time moved over the window: the end-to-end median per tenth of the events, in
    # the order the inputs were appended (a queue that grows shows as a rising series)
    by_time = sorted(rows, key=lambda r: r[7])
    tenth = max(1, len(by_time) // 10)
    trend = [percentile([r[5] for r in by_time[i : i + tenth]], 0.5)
             for i in range(0, len(by_time), tenth)][:10]  # fmt: skip
    return {"samples": len(rows), "steps": steps, "end_to_end": ends,
            "share_of_slowest_1pct_append_to_append": share,
            "median_append_to_append_per_tenth_ms": trend}  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    lines = [f"Command: `{result['command']}`", ""]
    for run in result["runs"]:
        lines += [
            f"**{run['target_rate_per_s']:,} events/s** (achieved {run['achieved_rate_per_s']:,}; "
            f"{run['samples']:,} samples; settings {run['settings'] or 'default'}; "
            f"load average {run['load_1m']})",
            "",
            "| step | p50 ms | p95 ms | p99 ms | share of the slowest 1% |",
            "|---|---:|---:|---:|---:|",
        ]
        share = run["share_of_slowest_1pct_append_to_append"]
        for name, f in {**run["steps"], **run["end_to_end"]}.items():
            lines.append(f"| {name} | {f['p50_ms']} | {f['p95_ms']} | {f['p99_ms']} | "
                         f"{share.get(name, '')} |")  # fmt: skip
        lines += ["", f"Worker: {run['worker']}", "",
                  f"CPU cores used during the window: {run['cpu_cores_during_window']}", "",
                  f"Broker cores by thread: {run.get('broker_cores_by_thread', 'not measured')}",
                  "",
                  "Broker's Java samples by request (`--broker-profile`): "
                  f"{run.get('broker_samples_by_request', 'not recorded')}", "",
                  "Median append to append per tenth of the window, ms: "
                  f"{run['median_append_to_append_per_tenth_ms']}", ""]  # fmt: skip
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    rates = list(args.rate)
    if args.load:
        inputs = TopicSet.input_names(f"{args.run}-tput")
        await kafkaio.create_topics(args.bootstrap, inputs, args.partitions)
        await kafkaio.preload(args.bootstrap, TopicSet.named(inputs, "unused"),
                              traffic(args.events, seed=3, contacts=args.contacts, deals=args.deals))  # fmt: skip  # noqa: E501
        tput = await throughput(args, Contender("ours", "service", settings=tuple(args.setting)),
                                inputs)  # fmt: skip
        log(f"maximum: {tput}")
        rates.append(tput["events_per_s"] * args.load)
        runs.append({"maximum": tput})
    for rate in rates:
        log(f"budget at {rate:.0f} events/s for {args.seconds:.0f} s")
        figures = await budget(args, rate)
        log(json.dumps(figures))
        runs.append(figures)
    return {
        "runs": [r for r in runs if "steps" in r],
        "maximum": next((r["maximum"] for r in runs if "maximum" in r), None),
    }


def setting(text: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    return name, value


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--rate", type=float, action="append", default=[],
                        help="events/s (repeat for several runs)")  # fmt: skip
    parser.add_argument("--load", type=float, default=0.0,
                        help="also a run at this share of the maximum, measured first")  # fmt: skip
    parser.add_argument("--events", type=int, default=50_000, help="for the maximum (--load)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--settle-s", type=float, default=4.0)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--deals", type=int, default=3_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--setting", action="append", default=[], type=setting,
                        help="LEADSCORE_X=value for the worker (repeatable)")  # fmt: skip
    parser.add_argument("--broker-profile", action="store_true",
                        help="record the broker (Java Flight Recorder) in each window")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench")
    args = parser.parse_args()
    args.broker_pid = broker_cpu.broker_pid(args.bootstrap)
    args.run = f"b{uuid.uuid4().hex[:8]}"
    args.work = args.work / args.run
    return args


def main() -> int:
    args = arguments()
    started = datetime.now(UTC)
    result: dict[str, Any] = {
        "benchmark": "latency-budget",
        "run_at": started.isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
    }
    try:
        result.update(asyncio.run(main_async(args)))
    finally:
        asyncio.run(kafkaio.delete_topics(args.bootstrap, f"{args.run}-"))
    shutil.rmtree(args.work, ignore_errors=True)  # the worker's state and the tail's notes
    args.out.mkdir(parents=True, exist_ok=True)
    stem = free_stem(args.out, f"latency-{started:%Y-%m-%d}")
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    log(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
