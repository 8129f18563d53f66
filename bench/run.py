"""Side-by-side benchmark (``make bench``): our worker, the raw-client ceiling, Quix Streams.

One run, one broker, one machine, every contender in turn, so that the ratios hold while the
absolute numbers drift. For each contender:

1. **throughput**: the same preloaded Avro inputs (a deterministic, skewed mix of the six input
   types, ``streams.commands.traffic``, whose contact profiles here also name the contact's
   company: :func:`traffic`); events/s from the first to the last output appended, once
   the contender's consumer group has committed every input and the output has stopped growing; CPU
   seconds per million events and peak RSS of the processing process over that window;
2. **latency**: fresh topics, a short warm-up, then an open-loop producer at half the throughput
   measured in step 1 for a fixed time, and (same process, drained between) at one **common rate**
   for every contender (``--latency-rate``; by default the slowest contender's half load); each
   input's append to each score change it caused (``cause`` rule, state or adjustment) being
   appended (both broker ``LogAppendTime``);
3. **restart** (our worker only): a changelog holding ``--restart-entities`` entity states, then
   time to ``/readyz`` with no local state (rebuild from the changelog) and after a clean stop with
   the state kept (warm restart), with the worker's RSS.

The contenders are ``bench/contenders.py``'s; ``leadscore@<commit>`` is our worker from another
commit (``--base``), so a change's effect on the worker is measured in the same run as the rest;
``ours-wave2`` is our worker on the second-wave plan (decay, tiers, account and deal roll-ups),
so that plan's cost stands beside the reference plan's. Every contender reads the same inputs and
the drain check is the same for every plan: each input committed, then no new score change for
``--settle-s``, and for our worker every roll-up member update it sent received back (they go
through its own entity-events topic; its ``leadscore_member_updates`` metric counts both).

Writes ``bench/results/<date>.json`` (``<date>b``... when taken), a Markdown table beside it,
and the PNG chart (``bench/chart.py``); deletes every topic it made at the end.

``--smoke`` checks the harness and times nothing (``make bench-smoke``, run by ``make test``):
every contender and phase with tiny counts (:data:`SMOKE`), the contenders side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Container, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import fastavro
import kafkaio
from confluent_kafka import Producer as ConfluentProducer
from contenders import (
    PLAN,
    ROOT,
    WAVE2_PLAN,
    Contender,
    Process,
    build_of,
    leadscore_at,
    prepare,
)
from kafkaio import TopicSet

from streams.commands.traffic import TrafficShape, generate
from streams.scoring import (
    EntityKey,
    Invalid,
    apply,
    dumps,
    load_plan,
    parse_input,
    route,
)
from streams.scoring.plan.spec import QuietHours
from streams.scoring.quiet_hours import quiet_until
from streams.state.store import pack_value
from streams.wire import records
from streams.wire.codec import Codec, Source
from streams.wire.routing import partition_for

DIRECT_CAUSES = {"rule", "state", "adjustment"}  # changes caused by an input, not by the clock
#: The last Faust worker, built by ``bench/faust_venv.sh`` (``make bench`` runs it first).
BASELINE_COMMIT = "2110d38"
BASELINE_TREE = ROOT / ".cache" / "bench" / f"faust-baseline-{BASELINE_COMMIT}"
BASELINE_PYTHON = str(ROOT / ".cache" / "bench" / "faust-venv" / "bin" / "python")


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")


#: Contacts per company in the generated profiles (as ``bench/core.py``'s workload).
COMPANY_SIZE = 8
#: The share of profile updates that name the next company: a contact moving to another account.
COMPANY_MOVES = 0.05


def traffic(
    count: int, seed: int, *, contacts: int, deals: int
) -> list[tuple[Source, dict[str, Any]]]:
    """``count`` generated inputs (``streams.commands.traffic``) ending about a minute ago, each
    contact profile naming the contact's company (:func:`with_company`)."""
    span_ms = count * 20
    shape = replace(
        TrafficShape(),
        contacts=contacts,
        deals=deals,
        start_ms=traffic_end(int(time.time() * 1000), span_ms) - span_ms,
        step_ms=20,
    )
    moves = random.Random(seed)  # sample data, not security
    return [with_company(source, record, moves) for source, record in
            generate(count, seed=seed, shape=shape)]  # fmt: skip


@functools.cache
def quiet_hours_of(plans: tuple[Path, ...]) -> list[tuple[QuietHours, ZoneInfo]]:
    """The quiet hours of each score of ``plans`` that has them, with the score's time zone."""
    return [(score.quiet_hours, score.zone) for path in plans
            for score in load_plan(path.read_text(), source=str(path)).scores
            if score.quiet_hours is not None]  # fmt: skip


def traffic_end(now_ms: int, span_ms: int, plans: tuple[Path, ...] = (PLAN, WAVE2_PLAN)) -> int:
    """Where generated traffic of ``span_ms`` ends: a minute before ``now_ms``, or, when some of
    its event times would fall in a quiet window of a score of ``plans``, just before the latest
    such window. Both plans defer awards in quiet hours (the reference plan's contacts from
    22:00 to 07:00 Warsaw time on weekdays and all Saturday), so traffic that simply ended
    before ``now_ms`` scored differently by the hour of the day: at night most awards were held,
    and the same 50,000 events made 15,767 changes against 26,571 by day. Windows have minute
    resolution, so each minute of the span (and a minute past it, for the generator's jitter)
    is checked; the walk back is at most a week and a day."""
    quiet = quiet_hours_of(plans)
    end = (now_ms - 60_000) // 60_000 * 60_000
    floor = end - 8 * 86_400_000
    while end > floor:
        busy = next((minute for minute in range(end + 60_000, end - span_ms - 60_000, -60_000)
                     if any(quiet_until(q, zone, minute) is not None for q, zone in quiet)),
                    None)  # fmt: skip
        if busy is None:
            return end
        end = busy - 120_000  # the span's last checked minute is the one before it
    raise ValueError(f"no {span_ms} ms without quiet hours in the week before {now_ms}")


def with_company(
    source: Source, record: dict[str, Any], moves: random.Random
) -> tuple[Source, dict[str, Any]]:
    """A contact profile with the attribute ``account_id``, the company the contact belongs to
    (``COMPANY_SIZE`` contacts each, now and then the next one): the generator sets none, and
    without it the second plan's account roll-ups have no members. The reference plan reads no
    such attribute; other inputs are returned as they are."""
    if source is not Source.CONTACT_PROFILES:
        return source, record
    company = int(record["contact_id"].removeprefix("c-")) // COMPANY_SIZE
    company += moves.random() < COMPANY_MOVES
    attributes = {**record["attributes"], "account_id": f"company-{company}"}
    return source, {**record, "attributes": attributes}


async def wait_ready(proc: Process, timeout_s: float = 180) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        proc.check()
        if proc.ready():
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready within {timeout_s}s")


async def wait_drained(
    args: argparse.Namespace, proc: Process, group: str, topics: TopicSet, *, timeout_s: float
) -> tuple[float | None, int]:
    """Until the group has committed every input and the output stopped growing for a while.

    Returns the CPU time of the process when the first output appeared, and the lag at the end.
    """
    started, last, stable_since, cpu_first = time.monotonic(), -1, time.monotonic(), None
    async with kafkaio.EndOffsets(args.bootstrap) as ends:
        while True:
            proc.check()
            out = await ends.total(topics.changed)
            now = time.monotonic()
            if out > 0 and cpu_first is None:
                cpu_first = proc.cpu_s()
            if out != last:
                last, stable_since = out, now
            elif out > 0 and now - stable_since >= args.settle_s:
                lag = await kafkaio.group_lag(args.bootstrap, group, topics.inputs, ends)
                # and our worker's member updates applied: they go through its entity-events
                # topic, whose lag a transactional topic's markers keep above 0 (smoke runs
                # ended before them, with no roll-up changes, when they took over settle_s)
                if lag == 0 and await asyncio.to_thread(proc.member_updates_pending) <= 0:
                    return cpu_first, lag
            if now - started > timeout_s:
                raise RuntimeError(
                    f"{proc.name}: not drained within {timeout_s:.0f}s ({out} outputs)"
                )
            await asyncio.sleep(0.5)


async def throughput(
    args: argparse.Namespace,
    who: Contender,
    inputs: tuple[str, ...],
    *,
    profile: bool = False,
    round_no: int = 0,
) -> dict[str, Any]:
    tag = f"{args.run}-{who.slug}-{'prof' if profile else 'tput'}" + (
        f"{round_no}" * (round_no > 0)
    )
    topics = TopicSet.named(inputs, tag)
    await kafkaio.create_topics(
        args.bootstrap, topics.outputs, args.partitions, compacted=[topics.scores]
    )
    proc = who.start(args.bootstrap, topics, tag, args.work / tag)
    raw = args.work / tag / "profile.txt"
    spy = (
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(proc.proc.pid),
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(raw),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if profile
        else None
    )
    try:
        cpu_first, lag = await wait_drained(
            args, proc, who.group(tag), topics, timeout_s=args.events / 100 + 300
        )
        cpu_end, rss = proc.cpu_s(), proc.rss_mib()
        core = proc.core_build() if who.kind == "service" else None
        relaunched = proc.relaunched
    finally:
        await asyncio.to_thread(proc.stop)
        if spy is not None:
            await asyncio.to_thread(spy.wait, 60)
    outputs = await kafkaio.read_all(args.bootstrap, topics.changed)
    stamps = [m.timestamp for m in outputs]
    window_s = (max(stamps) - min(stamps)) / 1000
    kinds = (
        Counter(c["entity"] for c, _ in changes_of(who, outputs)) if who.kind == "service" else {}
    )
    if spy is not None:
        from profile import summarise

        args.out.mkdir(parents=True, exist_ok=True)
        kept = args.out / f"{datetime.now(UTC):%Y-%m-%d}-{who.name}.profile.txt"
        shutil.copyfile(raw, kept)
        return {"layers": summarise(raw), "profile_events_per_s": round(args.events / window_s),
                "raw_profile": kept.name}  # fmt: skip
    return {
        "events": args.events,
        "outputs": len(outputs),
        "window_s": round(window_s, 2),
        "events_per_s": round(args.events / window_s),
        "cpu_s_per_million_events": round((cpu_end - (cpu_first or 0)) / args.events * 1e6, 1),
        "peak_rss_mib": round(rss, 1),
        "input_lag_at_end": lag,
        "load_1m": round(os.getloadavg()[0], 2),  # the machine's, at the end (others' work too)
        # score changes per entity kind (a worker's): deals and accounts show the roll-ups
        **({"outputs_by_entity": dict(sorted(kinds.items()))} if kinds else {}),
        **({"core": core} if core else {}),
        **({"started_again": relaunched} if relaunched else {}),  # Quix's topic race
    }


def changes_of(who: Contender, outputs: list[Any]) -> Iterator[tuple[dict[str, Any], int]]:
    """The score change of each of a worker's output records, with its append time."""
    # in the schema of the contender's own tree: an older commit's lacks later fields
    schema = json.loads((who.source_dir / "schemas" / "score_changed.avsc").read_text())
    writer = fastavro.parse_schema(schema)
    for m in outputs:
        change = fastavro.schemaless_reader(io.BytesIO(m.value), writer, None)
        assert isinstance(change, dict)  # noqa: S101 - a record schema
        yield change, m.timestamp


def output_ids(who: Contender, outputs: list[Any]) -> list[tuple[str, int]]:
    """(input id, append time) per output record that an input caused directly."""
    if who.kind == "pipe":
        return [(m.key.decode(), m.timestamp) for m in outputs]
    return [(change["source_event_id"], ts) for change, ts in changes_of(who, outputs)
            if change["cause"] in DIRECT_CAUSES and change.get("source_event_id")]  # fmt: skip


async def latency(
    args: argparse.Namespace, who: Contender, windows: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """One process on fresh topics: a warm-up, then one open-loop window per entry of
    ``windows`` (name: events/s), in order, each drained before the next; figures per window."""
    tag = f"{args.run}-{who.slug}-lat"
    topics = TopicSet.named(TopicSet.input_names(tag), tag)
    await kafkaio.create_topics(
        args.bootstrap,
        (*topics.inputs, *topics.outputs),
        args.partitions,
        compacted=[topics.scores],
    )
    counts = {name: max(200, int(rate * args.latency_s)) for name, rate in windows.items()}
    events = traffic(args.warmup + sum(counts.values()), seed=7, contacts=args.contacts,
                     deals=args.deals)  # fmt: skip
    warm, rest = events[: args.warmup], events[args.warmup :]
    timed: dict[str, list[tuple[Source, dict[str, Any]]]] = {}
    for name, count in counts.items():
        timed[name], rest = rest[:count], rest[count:]
    sent: dict[str, dict[str, Any]] = {}
    proc = who.start(args.bootstrap, topics, tag, args.work / tag)
    try:
        await wait_ready(proc)
        await kafkaio.preload(args.bootstrap, topics, warm)
        await wait_drained(args, proc, who.group(tag), topics, timeout_s=300)
        for name, rate in windows.items():
            sent_s = await open_loop(args.bootstrap, topics, timed[name], rate)
            _, lag = await wait_drained(
                args, proc, who.group(tag), topics, timeout_s=counts[name] / max(rate, 1) * 4 + 300
            )
            sent[name] = {"sent_s": sent_s, "lag": lag, "rss": proc.rss_mib(),
                          "load_1m": round(os.getloadavg()[0], 2)}  # fmt: skip
    finally:
        await asyncio.to_thread(proc.stop)
    window_of = {str(r.get("event_id") or r.get("command_id")): name
                 for name, evs in timed.items() for _, r in evs}  # fmt: skip
    appended = await input_appends(args.bootstrap, topics, window_of)
    samples: dict[str, list[float]] = {name: [] for name in windows}
    for ident, ts in output_ids(who, await kafkaio.read_all(args.bootstrap, topics.changed)):
        if ident in appended:
            samples[window_of[ident]].append(float(ts - appended[ident]))
    return {
        name: {
            "target_rate_per_s": round(rate, 1),
            "achieved_rate_per_s": round(len(timed[name]) / sent[name]["sent_s"], 1),
            "events": len(timed[name]),
            "samples": len(samples[name]),
            "p50_ms": percentile(samples[name], 0.50),
            "p95_ms": percentile(samples[name], 0.95),
            "p99_ms": percentile(samples[name], 0.99),
            "max_ms": max(samples[name]) if samples[name] else None,
            "peak_rss_mib": round(sent[name]["rss"], 1),
            "input_lag_at_end": sent[name]["lag"],
            "load_1m": sent[name]["load_1m"],
        }
        for name, rate in windows.items()
    }


async def input_appends(bootstrap: str, topics: TopicSet, ids: Container[str]) -> dict[str, int]:
    """The broker append time of each input whose id is in ``ids``."""
    codec = Codec.load()
    appended: dict[str, int] = {}
    for topic, source in zip(topics.inputs, Source, strict=True):
        for m in await kafkaio.read_all(bootstrap, topic):
            rec = codec.decode(codec.inputs[source], m.value)
            ident = str(rec.get("event_id") or rec.get("command_id"))
            if ident in ids:
                appended[ident] = m.timestamp
    return appended


def latency_windows(
    args: argparse.Namespace, tput: dict[str, Any], common: float | None
) -> dict[str, float]:
    """The latency windows of a contender: the common rate, then its own load, unless they are
    the same (the slowest contender's; ``--smoke`` runs both windows all the same). The common
    rate comes first: a contender that falls behind at its own load would otherwise start the
    common-rate window in the aftermath of that backlog (a grown heap, compactions, a cold
    cache), and the two figures would mix."""
    own = own_rate(args, tput)
    if common is None or (same_rate(own, common) and not args.smoke):
        return {"latency": own}
    return {"latency_common": common, "latency": own}


def windows_done(figures: dict[str, Any]) -> None:
    """A contender whose own load is the common rate has one window for both."""
    if "latency" in figures and "latency_common" not in figures:
        figures["latency_common"] = {**figures["latency"], "same_window_as_own_load": True}


async def open_loop(
    bootstrap: str, topics: TopicSet, events: list[tuple[Source, dict[str, Any]]], rate: float
) -> float:
    """Send each event at its scheduled instant (start + i / rate), never waiting on the system.

    The sender is a confluent-kafka producer in a thread of its own (librdkafka batches and
    sends in C): on this 2-core machine the load generator shares the CPU with the contender,
    and aiokafka's ``send``, which it used before, took about 90 µs of CPU per event, as much as
    a contender's whole work on it. Keys are partitioned by ``murmur2_random`` (the Java
    client's and aiokafka's partitioner), so each event lands where it did before."""
    codec = Codec.load()
    topic_of = dict(zip(Source, topics.inputs, strict=True))
    encoded = [
        (topic_of[s], codec.encode(codec.inputs[s], r), kafkaio.entity_hint(r)) for s, r in events
    ]
    return await asyncio.to_thread(send_open_loop, bootstrap, encoded, rate)


def send_open_loop(bootstrap: str, encoded: list[tuple[str, bytes, bytes]], rate: float) -> float:
    """:func:`open_loop`'s sender; returns the seconds from the first send to the last ack."""
    failed: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    prod = ConfluentProducer({
        "bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,  # as the contenders
        "partitioner": "murmur2_random", "enable.idempotence": False,
    })  # fmt: skip
    started, i = time.monotonic(), 0
    while i < len(encoded):
        due = int((time.monotonic() - started) * rate) + 1
        while i < min(due, len(encoded)):
            topic, value, key = encoded[i]
            try:
                prod.produce(topic, value, key, on_delivery=delivered)
            except BufferError:  # the client's queue is full: let it send, then this one again
                prod.poll(0.01)
                continue
            i += 1
        prod.poll(0)
        time.sleep(0.002)
    left = prod.flush(120)
    if left or failed:
        raise RuntimeError(f"open loop: {left} events not acknowledged, {len(failed)} failed "
                           f"({failed[:3]})")  # fmt: skip
    return time.monotonic() - started


def state_templates(count: int) -> list[tuple[bytes, dict[str, int]]]:
    """Real contact states from the core: (changelog value, score totals)."""
    plan = load_plan(PLAN.read_text(), source=str(PLAN))
    codec = Codec.load()
    states: dict[EntityKey, Any] = {}
    now = 0
    for source, raw in traffic(count * 6, seed=11, contacts=count, deals=count // 5):
        record = codec.decode_input(source, codec.encode(codec.inputs[source], raw), fmt="avro")
        item = parse_input(record)
        if isinstance(item, Invalid):
            continue
        now = max(now, record["occurred_at"])
        for key in route(item):
            states[key] = apply(states.get(key), key, item, plan, now_ms=now).state
    out = []
    for key, state in states.items():
        if key.kind == "contact" and state.scores:
            value = pack_value(state.next_due_ms, dumps(state))  # the loop's changelog layout
            out.append((value, {name: ledger.total for name, ledger in state.scores.items()}))
    return out


async def restart(args: argparse.Namespace) -> dict[str, Any]:
    """Readiness of our worker over a changelog of ``--restart-entities`` entities."""
    tag = f"{args.run}-ours-restart"
    inputs = TopicSet.input_names(tag)
    topics = TopicSet.named(inputs, tag)
    changelog = f"{tag}-state-changelog"  # streams.wire.topics.state_changelog_topic
    await kafkaio.create_topics(
        args.bootstrap, (*inputs, *topics.outputs), args.partitions, compacted=[topics.scores]
    )
    await kafkaio.create_topics(args.bootstrap, [changelog], args.partitions, compacted=[changelog])
    templates = state_templates(min(2000, args.restart_entities))
    log(
        f"restart: writing {args.restart_entities:,} entity states "
        f"({len(templates)} templates) to {changelog}"
    )
    started = time.monotonic()
    samples = await write_changelog(args, changelog, templates)
    written_s = time.monotonic() - started
    ours = Contender("ours", "service")
    data = args.work / tag
    figures: dict[str, Any] = {
        "entities": args.restart_entities,
        "changelog_write_s": round(written_s, 1),
    }
    for phase in ("rebuild", "warm"):
        proc = ours.start(args.bootstrap, topics, tag, data)
        try:
            ready_s = await wait_ready(proc, timeout_s=900)
            figures[f"{phase}_ready_s"] = round(ready_s, 2)
            figures[f"{phase}_rss_mib"] = round(proc.rss_mib("VmRSS"), 1)
            figures[f"{phase}_peak_rss_mib"] = round(proc.rss_mib(), 1)
            figures[f"{phase}_checked"] = check_scores(proc, samples)
            log(f"restart: {phase} ready in {ready_s:.1f}s, RSS {figures[f'{phase}_rss_mib']} MiB")
        finally:
            await asyncio.to_thread(proc.stop)
    figures["state_dir_mib"] = round(
        sum(f.stat().st_size for f in data.rglob("*") if f.is_file()) / 2**20, 1
    )
    return figures


async def write_changelog(
    args: argparse.Namespace, topic: str, templates: list[tuple[bytes, dict[str, int]]]
) -> list[tuple[str, dict[str, int]]]:
    """One state per entity ``bench-<i>``, cycling through the templates; returns samples."""
    every = args.restart_entities // 20 or 1
    samples = [
        (f"bench-{i}", templates[i % len(templates)][1])
        for i in range(0, args.restart_entities, every)
    ]

    def states() -> Iterator[tuple[str, bytes, bytes, int]]:
        for i in range(args.restart_entities):
            key = records.entity_key_bytes(EntityKey(None, "contact", f"bench-{i}"))
            partition = partition_for(key, args.partitions)
            yield topic, key, templates[i % len(templates)][0], partition

    await kafkaio.produce_all(
        args.bootstrap, states(), window=20_000, linger_ms=50, max_batch_size=512 * 1024
    )
    return samples


def check_scores(proc: Process, samples: list[tuple[str, dict[str, int]]]) -> int:
    """Ask the worker for sampled entities: each must answer with the score totals written."""
    for entity_id, totals in samples:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{proc.port}/scores/contact/{entity_id}", timeout=10
        ) as r:
            body = json.loads(r.read())
        got = {name: score["value"] for name, score in body["scores"].items()}
        if got != {name: totals.get(name, 0) for name in got}:
            raise RuntimeError(f"{entity_id}: worker says {got}, the changelog holds {totals}")
    return len(samples)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gib": round(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
            1,
        ),
    }


def versions(quix_python: str) -> dict[str, str]:
    from importlib.metadata import version

    found = {
        name: version(name)
        for name in ("confluent-kafka", "aiokafka", "rocksdict", "fastavro", "waitress")
    }
    import confluent_kafka

    found["librdkafka"] = confluent_kafka.libversion()[0]
    found["quixstreams"] = (
        subprocess.run(
            [quix_python, "-c", "import quixstreams; print(quixstreams.__version__)"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if Path(quix_python).exists()
        else "not installed"
    )
    current = ROOT / ".cache" / "kafka" / "current"
    found["kafka"] = current.resolve().name if current.exists() else "unknown"
    found["leadscore"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return found


def markdown(result: dict[str, Any]) -> str:
    commits = ", ".join(
        f"{name} {sha[:12]}{sha[40:]}" for name, sha in result.get("commits", {}).items()
    )
    others = "; ".join(f"{name}: {plan}" for name, plan in result.get("plans", {}).items())
    common = result.get("common_rate")
    rows = [
        *([f"Commits: {commits}.", ""] if commits else []),
        *([f"Plans: plans/reference.yaml, except {others}.", ""] if others else []),
        *([f"Common latency rate: {common['events_per_s']:,} events/s ({common['from']}).", ""]
          if common else []),
        "| contender | events/s | CPU s per 1M events | peak RSS MiB "
        "| own load events/s | p50 ms | p95 ms | p99 ms "
        "| common rate: p50 ms | p99 ms | core |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]  # fmt: skip
    for name, fig in result["contenders"].items():
        t, lat, com = fig["throughput"], fig.get("latency", {}), fig.get("latency_common", {})
        rows.append(
            f"| {name} | {t['events_per_s']:,} | {t['cpu_s_per_million_events']:,} | "
            f"{t['peak_rss_mib']} | {lat.get('achieved_rate_per_s', '-')} | "
            f"{lat.get('p50_ms', '-')} | {lat.get('p95_ms', '-')} | {lat.get('p99_ms', '-')} | "
            f"{com.get('p50_ms', '-')} | {com.get('p99_ms', '-')} | {t.get('core', '-')} |"
        )
    lines = ["\n".join(rows), ""]
    for name, value in result["ratios"].items():
        lines.append(f"- {name}: {value}")
    for name, fig in result["contenders"].items():
        if by_entity := fig["throughput"].get("outputs_by_entity"):
            kinds = ", ".join(f"{k} {v:,}" for k, v in by_entity.items())
            lines.append(f"- {name} score changes by entity (throughput): {kinds}")
        if "throughput_rounds" in fig:
            runs = ", ".join(f"{v:,}" for v in fig["throughput_rounds"])
            lines.append(
                f"- {name} throughput rounds (events/s, the best above): {runs}; "
                f"median {median(fig['throughput_rounds']):,}"
            )
    for name, goal in result.get("latency_goals", {}).items():
        verdict = "met" if goal["met"] else "not met"
        lines.append(f"- goal {name}: {goal['measured']} (goal {goal['goal']}): {verdict}")
    if "restart" in result:
        lines.append("")
        lines.append(
            "Restart of our worker: " + ", ".join(f"{k} {v}" for k, v in result["restart"].items())
        )
    return "\n".join(lines) + "\n"


def contenders(args: argparse.Namespace) -> list[Contender]:
    """The contenders ``--contenders`` names, in order (nothing built yet: :func:`prepare`)."""
    quix_python = str(ROOT / ".cache" / "bench" / "quix-venv" / "bin" / "python")
    every = {
        "pipe-aiokafka": Contender("pipe-aiokafka", "pipe"),
        "pipe-confluent": Contender("pipe-confluent", "pipe", script="pipe_confluent.py"),
        "pipe-confluent-txn": Contender(
            "pipe-confluent-txn", "pipe", script="pipe_confluent.py", extra=("--transactional",)
        ),
        "ours": Contender("ours", "service"),
        # the same worker and build on the second-wave plan (roll-ups into accounts and deals)
        "ours-wave2": Contender(
            "ours-wave2", "service", settings=(("LEADSCORE_PLAN_PATH", str(WAVE2_PLAN)),)
        ),
        # on its own commit's reference plan: the current one has tiers, which it cannot load
        # (reference-2 has a tier where reference-1 has a threshold; the rest is the same)
        "faust-baseline": Contender(
            "faust-baseline",
            "service",
            source_dir=BASELINE_TREE,
            python=BASELINE_PYTHON,
            settings=(("LEADSCORE_PLAN_PATH", str(BASELINE_TREE / "plans" / "reference.yaml")),),
        ),
        "quix-alo": Contender("quix-alo", "quix", "at-least-once", python=quix_python),
        "quix-eos": Contender("quix-eos", "quix", "exactly-once", python=quix_python),
    }
    names = [name for name in args.contenders.split(",") if name]
    return [every[n] if n in every
            else leadscore_at(n.removeprefix("leadscore@"), compiled=not args.smoke)
            for n in names]  # fmt: skip


class Builds:
    """Each contender's environment (venvs, trees, cores) built once: contenders that share a
    build (``quix-alo`` and ``quix-eos``: the Quix Streams venv) wait for the same one."""

    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Future[str]] = {}

    async def of(self, who: Contender) -> float:
        started, key = time.monotonic(), build_of(who)
        if key not in self.tasks:
            self.tasks[key] = asyncio.ensure_future(asyncio.to_thread(prepare, who))
        what = await self.tasks[key]
        took = round(time.monotonic() - started, 1)
        log(f"{who.name}: {what} ({took} s)")
        return took


async def prepare_all(chosen: list[Contender]) -> dict[str, float]:
    """Build each contender's environment, all at once; seconds each contender waited."""
    builds = Builds()
    took = await asyncio.gather(*(builds.of(who) for who in chosen))
    return dict(zip((who.name for who in chosen), took, strict=True))


def own_rate(args: argparse.Namespace, tput: dict[str, Any]) -> float:
    """The latency load at ``--load`` of the contender's own throughput (``--smoke``: capped)."""
    rate = tput["events_per_s"] * args.load
    return min(rate, args.latency_max_rate) if args.latency_max_rate else rate


def common_rate(args: argparse.Namespace, contenders: dict[str, Any]) -> tuple[float, str]:
    """One load for every contender: ``--latency-rate``, else the slowest contender's own
    (half) load. Returns the rate and where it came from."""
    if args.latency_rate:
        return args.latency_rate, "--latency-rate"
    name = min(contenders, key=lambda n: own_rate(args, contenders[n]["throughput"]))
    return own_rate(args, contenders[name]["throughput"]), f"{args.load:.0%} of {name}'s"


def same_rate(a: float, b: float) -> bool:
    return abs(a - b) <= 0.005 * max(a, b, 1.0)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    chosen = contenders(args)
    result: dict[str, Any] = {"contenders": {}, "commits": {}, "plans": {}}  # once prepared
    inputs = TopicSet.input_names(f"{args.run}-tput")
    await kafkaio.create_topics(args.bootstrap, inputs, args.partitions)
    log(f"preloading {args.events:,} events, {args.contacts:,} contacts, {args.deals:,} deals")
    preloaded = kafkaio.preload(
        args.bootstrap,
        TopicSet.named(inputs, "unused"),
        traffic(args.events, seed=3, contacts=args.contacts, deals=args.deals),
    )
    if args.smoke:  # everything at once: the harness is checked, nothing is timed
        return await smoke(args, chosen, inputs, preloaded, result)
    await preloaded
    result["prepare_s"] = await prepare_all(chosen)
    result["commits"], result["plans"] = commits(chosen), plans(chosen)
    rounds: dict[str, list[dict[str, Any]]] = {who.name: [] for who in chosen}
    for i in range(args.rounds):  # alternating the order, so drift slows the contenders alike
        for who in chosen if i % 2 == 0 else reversed(chosen):
            log(f"{who.name}: throughput" + (f", round {i + 1}/{args.rounds}" * (args.rounds > 1)))
            rounds[who.name].append(await throughput(args, who, inputs, round_no=i))
            log(f"{who.name}: {rounds[who.name][-1]}")
    for who in chosen:
        figures: dict[str, Any] = {
            "throughput": max(rounds[who.name], key=lambda r: r["events_per_s"])  # the best
        }
        if args.rounds > 1:
            figures["throughput_rounds"] = [r["events_per_s"] for r in rounds[who.name]]
        result["contenders"][who.name] = figures
    if args.latency_s > 0:
        rate, source = common_rate(args, result["contenders"])
        result["common_rate"] = {"events_per_s": round(rate, 1), "from": source}
        for who in chosen:  # each at the common rate, then at its own load
            figures = result["contenders"][who.name]
            windows = latency_windows(args, figures["throughput"], rate)
            log(f"{who.name}: latency at " + ", then ".join(f"{r:.0f}" for r in windows.values())
                + f" events/s (the common rate, {args.load:.0%} of its own)")  # fmt: skip
            figures.update(await latency(args, who, windows))
            windows_done(figures)
            log(f"{who.name}: " + "; ".join(f"{k} {figures[k]}" for k in windows))
    if args.profile and "ours" in args.contenders.split(","):
        log("ours: profile under load (py-spy, a run of its own)")
        result["profile_ours"] = await throughput(args, Contender("ours", "service"), inputs,
                                                  profile=True)  # fmt: skip
        log(f"ours: {result['profile_ours']}")
    if args.restart_entities > 0:
        result["restart"] = await restart(args)
    result["ratios"] = ratios(result["contenders"])
    return result


async def smoke(
    args: argparse.Namespace,
    chosen: list[Contender],
    inputs: tuple[str, ...],
    preloaded: Any,
    result: dict[str, Any],
) -> dict[str, Any]:
    """``--smoke``: every contender and every phase, each contender's phases one after the
    other but the contenders (and the profile and the restart) side by side, with tiny counts,
    so that a change that breaks the harness fails ``make test`` within a couple of minutes.
    The common rate is ``--latency-rate`` (the smoke's default), so no contender waits for the
    others' throughput; :func:`common_rate` is checked without a broker."""
    rate = args.latency_rate
    result["common_rate"] = {"events_per_s": rate, "from": "--latency-rate"}
    result["prepare_s"] = {}

    result["phase_s"] = phases = {}  # wall seconds per contender and phase: where time goes
    builds = Builds()

    async def chain(who: Contender) -> None:
        clock = time.monotonic()
        took = phases[who.name] = {}

        def lap(phase: str) -> None:
            nonlocal clock
            now = time.monotonic()
            took[phase], clock = round(now - clock, 1), now

        await builds.of(who)
        lap("prepare")
        result["prepare_s"][who.name] = took["prepare"]
        await ready_inputs
        lap("wait_for_preload")
        figures: dict[str, Any] = {"throughput": await throughput(args, who, inputs)}
        lap("throughput")
        log(f"{who.name}: throughput {figures['throughput']}")
        windows = latency_windows(args, figures["throughput"], rate)
        figures.update(await latency(args, who, windows))
        lap("latency")
        windows_done(figures)
        log(f"{who.name}: " + "; ".join(f"{k} {figures[k]}" for k in windows))
        result["contenders"][who.name] = figures

    async def profile() -> None:
        started = time.monotonic()
        await ready_inputs
        result["profile_ours"] = await throughput(args, Contender("ours", "service"), inputs,
                                                  profile=True)  # fmt: skip
        phases["profile"] = round(time.monotonic() - started, 1)
        log(f"ours: profile {result['profile_ours']}")

    async def restarts() -> None:
        started = time.monotonic()
        result["restart"] = await restart(args)
        phases["restart"] = round(time.monotonic() - started, 1)

    ready_inputs = asyncio.ensure_future(preloaded)
    await asyncio.gather(
        *(chain(who) for who in chosen),
        *([profile()] if args.profile and "ours" in args.contenders.split(",") else []),
        *([restarts()] if args.restart_entities > 0 else []),
    )
    result["contenders"] = {who.name: result["contenders"][who.name] for who in chosen}
    result["commits"], result["plans"] = commits(chosen), plans(chosen)
    result["ratios"] = ratios(result["contenders"])
    return result


async def run_and_clean(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`run`, then delete every topic the run made: inputs, outputs and the contenders'
    own (all hold the run's id). At the end only, in one request: the broker deletes a topic's
    logs after answering, and deleting while a contender starts slows the metadata it waits for."""
    try:
        return await run(args)
    finally:
        deleted = await kafkaio.delete_topics(args.bootstrap, f"{args.run}-")
        log(f"deleted the run's last {deleted} topics")


def commits(chosen: list[Contender]) -> dict[str, str]:
    """The commit each leadscore worker ran: ``ours`` (and ``ours-wave2``) is this checkout's
    HEAD (``+changes``: with uncommitted changes to what the worker runs), ``leadscore@<commit>``
    its tree's."""
    out = {}
    for who in chosen:
        if who.kind == "service" and who.source_dir == ROOT:
            git = ["git", "-C", str(ROOT)]
            head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
            dirty = subprocess.run([*git, "status", "--porcelain", "--", "streams", "schemas"],
                                   capture_output=True, text=True).stdout.strip()  # fmt: skip
            out[who.name] = head.stdout.strip() + (" +changes" if dirty else "")
        elif who.name.startswith("leadscore@"):
            out[who.name] = (who.source_dir / ".exported").read_text().strip()
    return out


def median(values: list[int]) -> int:
    """The middle value (the upper one of an even count)."""
    return sorted(values)[len(values) // 2]


def plans(chosen: list[Contender]) -> dict[str, str]:
    """The plan each contender scores with, where it is not ``plans/reference.yaml``."""
    out = {}
    for who in chosen:
        path = Path(dict(who.settings).get("LEADSCORE_PLAN_PATH", PLAN))
        if path != PLAN:
            version = next((line.split(":", 1)[1].strip() for line in path.read_text().splitlines()
                            if line.startswith("version:")), "?")  # fmt: skip
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            out[who.name] = f"{shown} (version {version})"
    return out


def ratios(contenders: dict[str, Any]) -> dict[str, float]:
    """Our worker (``ours``, else the first contender) over each other contender."""
    if not contenders:
        return {}
    name = "ours" if "ours" in contenders else next(iter(contenders))
    ours = contenders[name]
    out = {}
    for other, theirs in contenders.items():
        if other == name:
            continue
        out[f"throughput {name}/{other}"] = round(
            ours["throughput"]["events_per_s"] / theirs["throughput"]["events_per_s"], 3
        )
        if "throughput_rounds" in ours and "throughput_rounds" in theirs:
            out[f"median throughput {name}/{other}"] = round(
                median(ours["throughput_rounds"]) / median(theirs["throughput_rounds"]), 3
            )
        if "latency" in ours and "latency" in theirs:
            out[f"p99 {name}/{other}"] = round(
                ours["latency"]["p99_ms"] / max(theirs["latency"]["p99_ms"], 1.0), 3
            )
        if "latency_common" in ours and "latency_common" in theirs:
            out[f"p99 at the common rate {name}/{other}"] = round(
                ours["latency_common"]["p99_ms"] / max(theirs["latency_common"]["p99_ms"], 1.0), 3
            )
    return out


def latency_goals(result: dict[str, Any]) -> dict[str, Any]:
    """Issue 28's latency goals for ``ours``, from one run: p99 at the common rate at most
    250 ms, and p99 at its own half load at most 3x the transactional confluent-kafka pipe's
    p99 at its own."""
    found = result["contenders"]
    ours, pipe = found.get("ours", {}), found.get("pipe-confluent-txn", {})
    goals: dict[str, Any] = {}
    if "latency_common" in ours:
        p99 = ours["latency_common"]["p99_ms"]
        goals["p99_ms_at_common_rate"] = {"measured": p99, "goal": 250, "met": p99 <= 250}
    if "latency" in ours and "latency" in pipe:
        ratio = round(ours["latency"]["p99_ms"] / max(pipe["latency"]["p99_ms"], 1.0), 2)
        goals["p99_own_load_over_pipe_txn"] = {"measured": ratio, "goal": 3.0, "met": ratio <= 3}
    return goals


#: ``--smoke``: a run of every contender and phase in about a minute (``make bench-smoke``).
SMOKE = {
    "events": 1000,
    "contacts": 2000,
    "deals": 300,
    "latency_s": 1.5,
    "latency_max_rate": 300.0,
    "latency_rate": 100.0,
    "warmup": 50,
    "settle_s": 1.0,
    "restart_entities": 1000,
}


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument(
        "--events", type=int, default=50_000, help="preloaded events for throughput"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="throughput runs per contender, best kept"
    )
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--deals", type=int, default=3_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--latency-s", type=float, default=30.0, help="open-loop seconds (0: skip)")
    parser.add_argument("--load", type=float, default=0.5, help="latency load, share of throughput")
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=0.0,
        help="the common latency load in events/s, run for every contender besides --load "
        "(0: the slowest contender's --load)",
    )
    parser.add_argument(
        "--latency-max-rate",
        type=float,
        default=0.0,
        help="at most this many events/s for a contender's own --load (0: no cap)",
    )
    parser.add_argument("--warmup", type=int, default=300, help="events before the latency window")
    parser.add_argument("--settle-s", type=float, default=4.0, help="output quiet time = drained")
    parser.add_argument("--restart-entities", type=int, default=1_000_000, help="0: skip")
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="profile ours under load with py-spy (a throughput run of its own)",
    )
    parser.add_argument(
        "--base",
        default="3f54bb3",
        help="the commit of the leadscore@<commit> contender ('' = none; make bench: BENCH_BASE)",
    )
    parser.add_argument(
        "--contenders",
        default="pipe-aiokafka,pipe-confluent,pipe-confluent-txn,ours,ours-wave2,{base},"
        "faust-baseline,quix-alo,quix-eos",
        help="comma-separated; leadscore@<commit> for any commit; {base} is leadscore@<--base>",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the contenders' logs in --work/<run>"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="check the harness, time nothing: every contender and phase side by side, tiny "
        "counts (SMOKE), leadscore@<commit> on its pure core; writes smoke-<date>.* to "
        "var/bench-smoke unless --out",
    )
    if parser.parse_known_args(argv)[0].smoke:  # the smoke's defaults; explicit options win
        parser.set_defaults(**SMOKE, out=ROOT / "var" / "bench-smoke")
    args = parser.parse_args(argv)
    args.contenders = args.contenders.replace(
        "{base}", f"leadscore@{args.base}" if args.base else ""
    )
    args.run = f"b{uuid.uuid4().hex[:8]}"
    args.work = args.work / args.run
    return args


def free_stem(out: Path, name: str) -> Path:
    """``out/name``, or ``out/nameb``, ``namec``...: an earlier run's files are kept."""
    for suffix in ("", *"bcdefghijklmnopqrstuvwxyz"):
        stem = out / f"{name}{suffix}"
        if not stem.with_suffix(".json").exists():
            return stem
    raise SystemExit(f"{out}: {name} to {name}z exist already")


def main() -> int:
    args = arguments()
    started = datetime.now(UTC)
    result = {
        "benchmark": "side-by-side",
        "run_at": started.isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "versions": versions(str(ROOT / ".cache" / "bench" / "quix-venv" / "bin" / "python")),
        "settings": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("out", "work")
        },
        "goals": {
            "ours_events_per_s": 10_000,
            "ours_events_per_s_stretch": 20_000,
            "ours_over_quix_alo": 4.0,
            "ours_over_faust_baseline": 14.0,
            "cpu_us_per_event": 100,
            "p99_ms_at_common_rate": 250,
            "p99_at_half_load_over_pipe_confluent_txn": 3.0,
            "rss_mib_at_1m_entities": 512,
            "rebuild_ready_s": 30,
            "warm_ready_s": 5,
        },
    }
    result.update(asyncio.run(run_and_clean(args)))
    result["latency_goals"] = latency_goals(result)
    result["cpu_s"] = {  # this process (producers, readers) and every process it waited for
        "harness": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 1),
        "children": round(sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]), 1),
    }
    result["duration_s"] = round((datetime.now(UTC) - started).total_seconds())
    args.out.mkdir(parents=True, exist_ok=True)
    stem = free_stem(args.out, f"{'smoke-' * args.smoke}{started:%Y-%m-%d}")
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    log(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")
    print(markdown(result))
    if not args.keep_logs:
        shutil.rmtree(args.work, ignore_errors=True)
    if result["contenders"]:
        from chart import chart

        chart(stem.with_suffix(".json"), stem.with_suffix(".png"))
        log(f"wrote {stem.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
