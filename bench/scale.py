"""Scale-out on the three-node cluster (``make bench-scale``): throughput with 1, 2 and 4 workers,
the processing pause at each join and leave, and a rebuild of the state from the changelog.

Everything runs against a three-node KRaft cluster of ``deploy/kafka/kafka.sh cluster-up``: by
default one of the run's own, on free ports, stopped and deleted at the end (:class:`Cluster`:
``make test`` kills nodes of the checkout's cluster); ``--shared-cluster`` uses the checkout's
(started if down, stopped at the end only then), ``--bootstrap`` any other, left alone. Every
topic has replication factor 3 and ``min.insync.replicas`` 2, as in production
(``LEADSCORE_REPLICATION_FACTOR=3`` for the worker's own). The workers are
``bench/contenders.py``'s ``ours``: the service as shipped, one process each, all in one consumer
group (one ``LEADSCORE_APP_ID``), each with its own data directory (so its own instance id and
transactional id) and web port.

1. **Throughput** for each count of ``--workers`` (default 1, 2, 4), on fresh topics: the workers
   are started and every one of them answers ``/readyz`` (the group is settled), then the same
   ``--events`` (``streams.commands.traffic``, one seed) are produced at once as fast as the
   client can; events/s from the first to the last ``score-changed`` append (broker
   ``LogAppendTime``), once the group has committed every input and the output stopped growing
   (``bench/run.py``'s ``wait_drained``). CPU seconds are the workers' together.
2. **Pauses**: fresh topics, one worker, and an open-loop producer at ``--rate`` events/s (default
   ``--load`` of the one-worker throughput) for the whole phase. Every ``--hold-s`` seconds one
   change of the group, in the order of ``--changes`` (default ``join,join,leave,leave``: 1 -> 2 ->
   3 -> 2 -> 1 workers). A **join** starts a worker process and waits for its ``/readyz``; a
   **leave** stops the most recently started one with SIGTERM (it commits and leaves the group)
   and waits for its exit. For each change, at instant ``t`` (process start, or SIGTERM), over the
   window from ``t`` to the next change (or the end of the traffic):

   - **longest gap**: the longest interval between two consecutive ``score-changed`` appends of
     which the second falls in the window (the first may be before ``t``): how long no output at
     all was appended. Also the instant that gap ended, in seconds after ``t``;
   - **longest partition gap**: the same per partition of ``score-changed`` (an entity's changes
     go to one partition), the worst partition: with cooperative rebalancing the partitions that
     do not move keep going, so the whole topic hides the pause of the ones that do;
   - **caught up**: from ``t`` to the last append in the window of a change whose latency (its
     input's append to its own append, both ``LogAppendTime``) is above the steady state's worst
     (the highest latency between the first output and the first change, with one worker): after
     that instant every change is again as prompt as before the change of the group. 0 when no
     change in the window was slower than that.

   The steady state's longest gap, longest partition gap and latency percentiles are reported
   beside them. Gaps are measured on appends, not on what a ``read_committed`` reader sees: a
   transaction's records are appended as they are produced and become visible at its commit.
3. **Rebuild** (``--restore-entities``, 0 skips it): a changelog holding that many real entity
   states (``bench/run.py``'s ``write_changelog``), then the time from process start to
   ``/readyz`` with an empty data directory for one worker, and for two workers started together
   (each rebuilds the partitions it is assigned). Sampled entities are read back over HTTP after
   the one-worker rebuild and must equal the states written.

Writes ``bench/results/scale-<date>.json`` (``<date>b``... when taken) and ``.md`` (machine, load
average, versions, the command and every figure) and deletes every topic it made. ``--smoke``
checks the harness with tiny counts and writes to ``var/bench-scale-smoke``; it is not part of
``make test`` (it needs the cluster and a few minutes): ``tests/bench/test_bench_scale.py`` checks
the pure parts (gaps, catch-up, tables) without a broker.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import kafkaio
from contenders import ROOT, Contender, Process
from kafkaio import TopicSet
from run import (
    check_scores,
    free_stem,
    input_appends,
    log,
    machine,
    open_loop,
    output_ids,
    percentile,
    state_templates,
    traffic,
    versions,
    wait_drained,
    wait_ready,
    write_changelog,
)

KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"
REPLICATION = 3
MIN_ISR = 2


# ---------------------------------------------------------------- pure parts (tested without Kafka)


def longest_gap(stamps: Sequence[int], start: int, end: int) -> tuple[int, int] | None:
    """The longest interval between consecutive ``stamps`` (sorted, ms) whose second stamp falls in
    ``[start, end)``; the first may lie before ``start``. Returns (gap ms, the stamp that ended it),
    or None with no stamp in the window."""
    lo = bisect.bisect_left(stamps, start)
    hi = bisect.bisect_left(stamps, end)
    best: tuple[int, int] | None = None
    for i in range(max(lo, 1), hi):
        gap = stamps[i] - stamps[i - 1]
        if best is None or gap > best[0]:
            best = (gap, stamps[i])
    if best is None and lo < hi:  # the window's only stamps have none before them
        best = (0, stamps[lo])
    return best


def longest_partition_gap(
    appends: Iterable[tuple[int, int]], start: int, end: int
) -> tuple[int, int] | None:
    """:func:`longest_gap` per partition of (partition, stamp) appends; the worst partition's
    (gap ms, partition)."""
    by_partition: dict[int, list[int]] = {}
    for partition, stamp in appends:
        by_partition.setdefault(partition, []).append(stamp)
    best: tuple[int, int] | None = None
    for partition, stamps in sorted(by_partition.items()):
        found = longest_gap(sorted(stamps), start, end)
        if found is not None and (best is None or found[0] > best[0]):
            best = (found[0], partition)
    return best


def caught_up_ms(latencies: Iterable[tuple[int, int]], start: int, end: int, threshold: int) -> int:
    """From ``start`` to the last (append stamp, latency ms) in ``[start, end)`` whose latency is
    above ``threshold``; 0 when none is."""
    late = [stamp for stamp, lat in latencies if start <= stamp < end and lat > threshold]
    return max(late) - start if late else 0


#: A change caught up within its window only if its last slow change came this long before the
#: window's end (else the backlog may go on into the next window: "not within").
CAUGHT_UP_MARGIN_MS = 1000


def windows(instants: Sequence[int], end: int) -> list[tuple[int, int]]:
    """Each change's window: from its instant to the next change's, the last to ``end``."""
    return list(zip(instants, [*instants[1:], end][: len(instants)], strict=True))


def pause_figures(
    change: dict[str, Any],
    window: tuple[int, int],
    stamps: Sequence[int],
    appends: Sequence[tuple[int, int]],
    latencies: Sequence[tuple[int, int]],
    threshold: int,
) -> dict[str, Any]:
    """The figures of one change of the group over its window (see the module's docstring)."""
    start, end = window
    gap = longest_gap(stamps, start, end)
    part = longest_partition_gap(appends, start, end)
    in_window = [lat for stamp, lat in latencies if start <= stamp < end]
    caught = caught_up_ms(latencies, start, end, threshold)
    return {
        **change,
        "window_s": round((end - start) / 1000, 1),
        "longest_gap_ms": gap[0] if gap else None,
        "gap_ended_s_after": round((gap[1] - start) / 1000, 2) if gap else None,
        "longest_partition_gap_ms": part[0] if part else None,
        "caught_up_s": round(caught / 1000, 2),
        "caught_up_within_window": end - start - caught >= CAUGHT_UP_MARGIN_MS,
        "p99_latency_ms": percentile([float(v) for v in in_window], 0.99) if in_window else None,
        "max_latency_ms": max(in_window) if in_window else None,
    }


def steady_figures(
    stamps: Sequence[int],
    appends: Sequence[tuple[int, int]],
    latencies: Sequence[tuple[int, int]],
    start: int,
    end: int,
) -> dict[str, Any]:
    """The one-worker steady state before the first change: gaps and latency percentiles."""
    gap = longest_gap(stamps, start, end)
    part = longest_partition_gap(appends, start, end)
    lat = [float(v) for stamp, v in latencies if start <= stamp < end]
    return {
        "window_s": round((end - start) / 1000, 1),
        "longest_gap_ms": gap[0] if gap else None,
        "longest_partition_gap_ms": part[0] if part else None,
        "changes": len(lat),
        "p50_latency_ms": percentile(lat, 0.5),
        "p99_latency_ms": percentile(lat, 0.99),
        "max_latency_ms": max(lat) if lat else None,
    }


def speedups(rows: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Events/s of each worker count over one worker's (when one worker was measured)."""
    one = rows.get("1", {}).get("events_per_s")
    return {n: round(r["events_per_s"] / one, 2) for n, r in rows.items() if one} if one else {}


def shown_caught_up(change: dict[str, Any]) -> str:
    """The caught-up time, or "> window" when the window ended first."""
    if change.get("caught_up_within_window", True):
        return str(change["caught_up_s"])
    return f"> {change['window_s']}"


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Scale-out on the three-node cluster, {result['run_at']}, {result['duration_s']} s: "
        f"{m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}; "
        f"load average {result['load_avg_start']} at the start, {result['load_avg_end']} at "
        f"the end. `{result['command']}`",
    ]
    rows = result.get("throughput", {})
    if rows:
        lines += [
            "",
            "| workers | events/s | x one worker | CPU s per 1M events (all workers) | outputs "
            "| window s | load 1 min |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
    ups = speedups(rows)
    for n, r in rows.items():
        lines.append(
            f"| {n} | {r['events_per_s']:,} | {ups.get(n, '-')} | "
            f"{r['cpu_s_per_million_events']:,} | {r['outputs']:,} | {r['window_s']} | "
            f"{r['load_1m']} |"
        )
    pauses = result.get("pauses")
    if pauses:
        s = pauses["steady"]
        lines += [
            "",
            f"Pauses at {pauses['rate_per_s']:,} events/s (open loop, achieved "
            f"{pauses['achieved_rate_per_s']:,}). Steady state, one worker, {s['window_s']} s: "
            f"longest gap {s['longest_gap_ms']} ms, longest partition gap "
            f"{s['longest_partition_gap_ms']} ms, latency p50 {s['p50_latency_ms']} / p99 "
            f"{s['p99_latency_ms']} / max {s['max_latency_ms']} ms.",
            "",
            "| change | workers | done after s | longest gap ms | gap ended s after "
            "| longest partition gap ms | caught up s | p99 latency ms | max latency ms |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in pauses["changes"]:
            lines.append(
                f"| {c['change']} | {c['workers_before']} -> {c['workers_after']} | "
                f"{c['done_s']} | {c['longest_gap_ms']} | {c['gap_ended_s_after']} | "
                f"{c['longest_partition_gap_ms']} | {shown_caught_up(c)} | {c['p99_latency_ms']} | "
                f"{c['max_latency_ms']} |"
            )
    rebuild = result.get("rebuild")
    if rebuild:
        lines += [
            "",
            "Rebuild from the changelog: " + ", ".join(f"{k} {v}" for k, v in rebuild.items()),
        ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- the cluster


#: The client port of this run's own cluster is looked for from here (``kafka.sh
#: free-cluster-port`` starts at 39092, where ``make test`` looks when 19092 is taken).
OWN_CLUSTER_BASE = 49092
#: The ports one cluster listens on, from its first client port (``kafka.sh``'s ``free_cluster``).
CLUSTER_OFFSETS = (0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port(base: int = OWN_CLUSTER_BASE, step: int = 40) -> int:
    for _ in range(100):
        if all(port_free(base + offset) for offset in CLUSTER_OFFSETS):
            return base
        base += step
    raise SystemExit(f"no free ports for a cluster from {OWN_CLUSTER_BASE} on")


@dataclass
class Cluster:
    """The three-node cluster of ``deploy/kafka/kafka.sh``. By default one of this run's own (its
    data under ``var/bench-scale/kafka``, on free ports from :data:`OWN_CLUSTER_BASE`, or
    ``KAFKA_CLUSTER_PORT``), stopped and deleted at the end: the checkout's cluster is also the
    one ``make test`` kills nodes of, and a benchmark beside a node kill measures the kill.
    ``--shared-cluster``: the checkout's own (127.0.0.1:19092-19094 or ``KAFKA_CLUSTER_PORT``),
    started if no node of it runs and stopped at the end only then."""

    shared: bool
    env: dict[str, str] = field(default_factory=dict)
    started: bool = False

    def sh(self, *argv: str) -> str:
        done = subprocess.run(
            ["bash", str(KAFKA_SH), *argv],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, **self.env},
        )
        if done.returncode != 0:
            raise RuntimeError(f"kafka.sh {' '.join(argv)} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def up(self) -> str:
        """Start it as needed; its bootstrap servers."""
        if not self.shared:
            port = os.environ.get("KAFKA_CLUSTER_PORT") or str(free_cluster_port())
            self.env = {
                "LEADSCORE_VAR_DIR": str(ROOT / "var" / "bench-scale"),
                "KAFKA_CLUSTER_PORT": port,
            }
        status = self.sh("cluster-status").splitlines()
        self.started = not any(line.endswith(")") for line in status)
        self.sh("cluster-up")  # starts the nodes that are down, if any
        return self.sh("bootstrap", "cluster").strip()

    def down(self) -> None:
        if not self.shared:
            self.sh("cluster-wipe")  # stops the nodes and deletes their data
        elif self.started:
            self.sh("cluster-down")


async def create_topics(
    bootstrap: str, names: Iterable[str], partitions: int, *, compacted: Iterable[str] = ()
) -> None:
    """``kafkaio.create_topics`` with replication factor 3 and ``min.insync.replicas`` 2, as the
    cluster's own topics (single-replica topics refuse writes at ``min.insync.replicas=2``)."""
    await kafkaio.create_topics(bootstrap, names, partitions, compacted=compacted,
                                replication=REPLICATION,
                                configs={"min.insync.replicas": str(MIN_ISR)})  # fmt: skip


# ------------------------------------------------------------------------------- the workers


@dataclass
class Pool:
    """Workers of one consumer group (one app id), each with its own directory and port."""

    args: argparse.Namespace
    topics: TopicSet
    tag: str
    workers: list[Process] = field(default_factory=list)
    started: int = 0
    name: str = "pool"

    def worker(self) -> Contender:
        return Contender(
            "ours",
            "service",
            settings=(
                ("LEADSCORE_REPLICATION_FACTOR", str(REPLICATION)),
                ("LEADSCORE_PARTITIONS", str(self.args.partitions)),
            ),
        )

    def start(self) -> Process:
        self.started += 1
        workdir = self.args.work / self.tag / f"w{self.started}"
        proc = self.worker().start(self.args.bootstrap, self.topics, self.tag, workdir)
        self.workers.append(proc)
        return proc

    async def ready(self, timeout_s: float = 300) -> float:
        """Until every worker answers ``/readyz`` in one sweep: the group is settled."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            self.check()
            if all(await asyncio.gather(*(asyncio.to_thread(w.ready) for w in self.workers))):
                return time.monotonic() - started
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.tag}: {len(self.workers)} workers not ready in {timeout_s} s")

    async def leave(self) -> int:
        """SIGTERM to the most recently started worker; its exit code."""
        proc = self.workers.pop()
        return await asyncio.to_thread(proc.stop)

    async def stop(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in self.workers))
        self.workers.clear()

    # what run.wait_drained asks of the process it watches
    def check(self) -> None:
        for w in self.workers:
            w.check()

    def cpu_s(self) -> float:
        return sum(w.cpu_s() for w in self.workers)

    def data_dirs(self) -> list[Path]:
        return sorted((self.args.work / self.tag).glob("w*/data"))


def fresh_topics(args: argparse.Namespace, name: str) -> tuple[str, TopicSet]:
    tag = f"{args.run}-{name}"
    return tag, TopicSet.named(TopicSet.input_names(tag), tag)


async def throughput(args: argparse.Namespace, n: int, events: list[Any]) -> dict[str, Any]:
    tag, topics = fresh_topics(args, f"n{n}")
    await create_topics(
        args.bootstrap,
        (*topics.inputs, *topics.outputs),
        args.partitions,
        compacted=[topics.scores],
    )
    pool = Pool(args, topics, tag)
    try:
        for _ in range(n):
            pool.start()
        ready_s = await pool.ready()
        cpu_start, started = pool.cpu_s(), time.monotonic()
        await kafkaio.preload(args.bootstrap, topics, events)
        preload_s = time.monotonic() - started
        _, lag = await wait_drained(
            args, cast(Process, pool), tag, topics, timeout_s=len(events) / 50 + 300
        )
        cpu_s = pool.cpu_s() - cpu_start
    finally:
        await pool.stop()
    stamps = [m.timestamp for m in await kafkaio.read_all(args.bootstrap, topics.changed)]
    window_s = (max(stamps) - min(stamps)) / 1000
    return {
        "workers": n,
        "events": len(events),
        "outputs": len(stamps),
        "ready_s": round(ready_s, 1),
        "preload_s": round(preload_s, 2),
        "window_s": round(window_s, 2),
        "events_per_s": round(len(events) / window_s),
        "cpu_s_per_million_events": round(cpu_s / len(events) * 1e6, 1),
        "input_lag_at_end": lag,
        "load_1m": round(os.getloadavg()[0], 2),
    }


async def pauses(args: argparse.Namespace, rate: float) -> dict[str, Any]:
    tag, topics = fresh_topics(args, "pause")
    await create_topics(
        args.bootstrap,
        (*topics.inputs, *topics.outputs),
        args.partitions,
        compacted=[topics.scores],
    )
    changes = [c for c in args.changes.split(",") if c]
    joins = changes.count("join")
    planned_s = args.hold_s * (len(changes) + 1) + args.join_allowance_s * joins
    events = traffic(int(rate * planned_s), seed=5, contacts=args.contacts, deals=args.deals)
    pool = Pool(args, topics, tag)
    done: list[dict[str, Any]] = []
    try:
        pool.start()
        await pool.ready()
        sending = asyncio.ensure_future(open_loop(args.bootstrap, topics, events, rate))
        for change in changes:
            await asyncio.sleep(args.hold_s)
            if sending.done():
                break  # the traffic ended first: no window for the rest
            before, at = len(pool.workers), int(time.time() * 1000)
            clock = time.monotonic()
            if change == "join":
                pool.start()
                await wait_ready(pool.workers[-1], timeout_s=300)
                code = 0
            else:
                code = await pool.leave()
            done.append(
                {
                    "change": change,
                    "workers_before": before,
                    "workers_after": len(pool.workers),
                    "at_ms": at,
                    "done_s": round(time.monotonic() - clock, 2),
                    "exit_code": code,
                }
            )
            log(
                f"pauses: {change}, {before} -> {len(pool.workers)} workers, {done[-1]['done_s']} s"
            )
        sent_s = await sending
        ended = int(time.time() * 1000)
        await wait_drained(args, cast(Process, pool), tag, topics, timeout_s=600)
    finally:
        await pool.stop()
    outputs = await kafkaio.read_all(args.bootstrap, topics.changed)
    stamps = sorted(m.timestamp for m in outputs)
    appends = [(m.partition, m.timestamp) for m in outputs]
    ids = output_ids(pool.worker(), outputs)
    appended = await input_appends(args.bootstrap, topics, {i for i, _ in ids})
    latencies = sorted((ts, ts - appended[i]) for i, ts in ids if i in appended)
    first_change = done[0]["at_ms"] if done else ended
    steady_from = stamps[0] + int(args.warm_s * 1000) if stamps else first_change
    steady = steady_figures(stamps, appends, latencies, steady_from, first_change)
    threshold = int(steady["max_latency_ms"] or 0)
    if done:  # the last change's window: as long as the others', if the traffic lasts
        last = done[-1]
        ended = min(ended, last["at_ms"] + int((last["done_s"] + args.hold_s) * 1000))
    spans = windows([c["at_ms"] for c in done], ended)
    return {
        "rate_per_s": round(rate, 1),
        "achieved_rate_per_s": round(len(events) / sent_s, 1),
        "events": len(events),
        "outputs": len(outputs),
        "steady": steady,
        "caught_up_threshold_ms": threshold,
        "changes": [
            pause_figures(c, w, stamps, appends, latencies, threshold)
            for c, w in zip(done, spans, strict=True)
        ],
        "load_1m": round(os.getloadavg()[0], 2),
    }


async def rebuild(args: argparse.Namespace) -> dict[str, Any]:
    tag, topics = fresh_topics(args, "rebuild")
    changelog = f"{tag}-state-changelog"  # streams.wire.topics.state_changelog_topic
    await create_topics(
        args.bootstrap,
        (*topics.inputs, *topics.outputs),
        args.partitions,
        compacted=[topics.scores],
    )
    await create_topics(args.bootstrap, [changelog], args.partitions, compacted=[changelog])
    templates = state_templates(min(2000, args.restore_entities))
    args.restart_entities = args.restore_entities  # what run.write_changelog reads
    log(f"rebuild: writing {args.restore_entities:,} entity states to {changelog}")
    started = time.monotonic()
    samples = await write_changelog(args, changelog, templates)
    figures: dict[str, Any] = {
        "entities": args.restore_entities,
        "changelog_write_s": round(time.monotonic() - started, 1),
    }
    for n in (1, 2):
        pool = Pool(args, topics, tag)
        pool.started = 10 * n  # fresh data directories: w11, then w21 and w22
        try:
            for _ in range(n):
                pool.start()
            figures[f"ready_s_{n}_worker{'s' * (n > 1)}"] = round(await pool.ready(900), 2)
            if n == 1:
                figures["checked"] = check_scores(pool.workers[0], samples)
                figures["state_dir_mib"] = round(
                    sum(
                        f.stat().st_size
                        for d in pool.data_dirs()
                        for f in d.rglob("*")
                        if f.is_file()
                    )
                    / 2**20,
                    1,
                )
        finally:
            await pool.stop()
        log(f"rebuild: {figures}")
    return figures


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"throughput": {}}
    events = traffic(args.events, seed=3, contacts=args.contacts, deals=args.deals)
    for n in [int(w) for w in args.workers.split(",") if w]:
        log(f"throughput: {n} worker(s), {len(events):,} events")
        result["throughput"][str(n)] = await throughput(args, n, events)
        log(f"throughput: {result['throughput'][str(n)]}")
    result["speedup"] = speedups(result["throughput"])
    if args.changes:
        one = result["throughput"].get("1", {}).get("events_per_s")
        rate = args.rate or (one * args.load if one else 200.0)
        log(f"pauses: {args.changes} at {rate:.0f} events/s, {args.hold_s} s apart")
        result["pauses"] = await pauses(args, rate)
        log(f"pauses: {result['pauses']}")
    if args.restore_entities > 0:
        result["rebuild"] = await rebuild(args)
    return result


async def run_and_clean(args: argparse.Namespace) -> dict[str, Any]:
    try:
        return await run(args)
    finally:
        deleted = await kafkaio.delete_topics(args.bootstrap, f"{args.run}-")
        log(f"deleted the run's {deleted} topics")


#: ``--smoke``: the harness end to end in a few minutes, nothing worth timing.
SMOKE = {
    "events": 1000,
    "contacts": 500,
    "deals": 100,
    "workers": "1,2",
    "changes": "join,leave",
    "hold_s": 4.0,
    "join_allowance_s": 20.0,
    "rate": 100.0,
    "warm_s": 1.0,
    "settle_s": 1.0,
    "restore_entities": 2000,
}


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default="",
        help="a cluster's bootstrap servers (default: kafka.sh's three-node "
        "cluster, started if down)",
    )
    parser.add_argument(
        "--shared-cluster",
        action="store_true",
        help="the checkout's cluster instead of one of this run's own",
    )
    parser.add_argument("--events", type=int, default=40_000, help="preloaded per worker count")
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--deals", type=int, default=3_000)
    parser.add_argument("--partitions", type=int, default=8, help="of every topic")
    parser.add_argument("--workers", default="1,2,4", help="worker counts for throughput")
    parser.add_argument(
        "--changes",
        default="join,join,leave,leave",
        help="the pause phase's group changes in order ('' skips it)",
    )
    parser.add_argument("--hold-s", type=float, default=20.0, help="seconds between changes")
    parser.add_argument(
        "--join-allowance-s",
        type=float,
        default=30.0,
        help="traffic added per join for its start-up",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="pause phase events/s (0: --load of one worker's throughput)",
    )
    parser.add_argument("--load", type=float, default=0.3)
    parser.add_argument(
        "--warm-s",
        type=float,
        default=5.0,
        help="the steady state starts this long after the first output",
    )
    parser.add_argument("--settle-s", type=float, default=4.0, help="output quiet time = drained")
    parser.add_argument("--restore-entities", type=int, default=500_000, help="0: skip")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench-scale")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny counts (SMOKE), results to var/bench-scale-smoke"
    )
    if parser.parse_known_args(argv)[0].smoke:  # the smoke's defaults; explicit options win
        parser.set_defaults(**SMOKE, out=ROOT / "var" / "bench-scale-smoke")
    args = parser.parse_args(argv)
    args.run = f"s{uuid.uuid4().hex[:8]}"
    args.work = args.work / args.run
    return args


def main() -> int:
    args = arguments()
    started = datetime.now(UTC)
    load_start = [round(v, 2) for v in os.getloadavg()]
    cluster, own = (
        Cluster(shared=args.shared_cluster),
        not args.bootstrap and not args.shared_cluster,
    )
    if not args.bootstrap:
        args.bootstrap = cluster.up()
        log(f"cluster on {args.bootstrap}" + (" (started by this run)" if cluster.started else ""))
    try:
        figures = asyncio.run(run_and_clean(args))
    finally:
        if cluster.env or cluster.started:
            cluster.down()
            log("cluster stopped" + (" and deleted" if not cluster.shared else ""))
    found = versions(sys.executable)  # no Quix venv here: the key says so
    found.pop("quixstreams", None)
    result = {
        "benchmark": "scale-out",
        "run_at": started.isoformat(timespec="seconds"),
        "command": shlex.join(["python", *sys.argv]),
        "machine": machine(),
        "versions": found,
        "cluster": {
            "own": own,
            "nodes": 3,
            "replication_factor": REPLICATION,
            "min_insync_replicas": MIN_ISR,
            "bootstrap": args.bootstrap,
        },
        "settings": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("out", "work", "bootstrap")
        },
        "load_avg_start": load_start,
        **figures,
        "load_avg_end": [round(v, 2) for v in os.getloadavg()],
        "duration_s": round((datetime.now(UTC) - started).total_seconds()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = free_stem(args.out, f"scale-{started:%Y-%m-%d}")
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    log(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")
    print(markdown(result))
    if not args.keep_logs:
        shutil.rmtree(args.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
