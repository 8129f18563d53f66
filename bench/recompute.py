"""A tenant's cut-over with a recompute (``make bench-recompute``; ``replay --apply``).

1. A fresh worker scores ``--events`` of the reference traffic mix, every record of tenant
   ``acme``, under the reference plan, until its consumer group has committed everything.
2. The tenant's new plan (the reference plan with every positive rule's points doubled, a new
   version) goes to the ``plans`` topic with a recompute from the first event, as
   ``leadscore replay --apply`` writes it.
3. Measured: from that publication until the group has committed the entity-events topic again
   (every partition has read its history, rebuilt the tenant's entities and committed their
   ``recompute`` changes): the cut-over time, the history items replayed per second, the
   entities and changes published. Then the worker's published values are checked against
   the offline scorer run under the new plan over the same events.

Writes ``bench/results/recompute-<date>.json`` and ``.md`` (machine, command, figures). Only
127.0.0.1 is used; the run ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kafkaio
from confluent_kafka import Consumer, Producer, TopicPartition
from contenders import PLAN, ROOT, Contender
from kafkaio import TopicSet
from run import log, machine, wait_ready

from streams.commands.traffic import TrafficShape, generate
from streams.wire.codec import Codec, Source

TENANT = "acme"


def events(count: int, contacts: int) -> list[tuple[Source, dict[str, Any]]]:
    shape = replace(TrafficShape(), contacts=contacts, deals=max(1, contacts // 10),
                    start_ms=int(time.time() * 1000) - count, step_ms=1)  # fmt: skip
    out = []
    for source, record in generate(count, seed=14, shape=shape):
        record["tenant_id"] = TENANT
        out.append((source, record))
    return out


def doubled(text: str) -> str:
    """The reference plan, every positive rule worth twice as much, as version ``doubled``."""
    text = re.sub(r"^version: .*$", "version: doubled", text, count=1, flags=re.M)
    return re.sub(r"points: (\d+)", lambda m: f"points: {2 * int(m.group(1))}", text)


async def drained(bootstrap: str, group: str, topics: list[str], timeout_s: float,
                  proc: Any) -> float:  # fmt: skip
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        proc.check()
        if await kafkaio.group_lag(bootstrap, group, topics) == 0:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{group} still behind on {topics} after {timeout_s:g} s")


def read_changes(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    codec = Codec.load()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-recompute-reader",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True})  # fmt: skip
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        pending, out = set(parts), []
        while pending:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error() is not None:
                pending.discard(msg.partition())
                continue
            out.append(codec.decode(codec.score_changed, msg.value()))
        return out
    finally:
        consumer.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tag = args.run
    topics = TopicSet.named(TopicSet.input_names(tag), tag)
    await kafkaio.create_topics(args.bootstrap, [*topics.inputs, *topics.outputs],
                                args.partitions, compacted=[topics.scores])  # fmt: skip
    sample = events(args.events, args.contacts)
    await kafkaio.preload(args.bootstrap, topics, sample)
    plans = f"{tag}-plans"
    who = Contender("ours", "service", settings=(
        ("LEADSCORE_TOPIC_PLANS", plans), ("LEADSCORE_TOPIC_PLAN_STATUS", f"{tag}-plan-status"),
        ("LEADSCORE_PARTITIONS", str(args.partitions)), ("LEADSCORE_LOG_LEVEL", "INFO"),
    ))  # fmt: skip
    proc = who.start(args.bootstrap, topics, tag, args.work / tag)
    entity_topic = f"{tag}-entity-events"
    try:
        await wait_ready(proc)
        scored_s = await drained(args.bootstrap, tag, [*topics.inputs, entity_topic], 600, proc)
        before = await kafkaio.total(args.bootstrap, topics.changed)
        log(f"{args.events:,} events scored in {scored_s:.1f} s; {before:,} changes")
        history = await kafkaio.total(args.bootstrap, entity_topic)
        producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True})
        producer.produce(plans, doubled(PLAN.read_text()).encode(), TENANT.encode(),
                         headers=[("leadscore.recompute-from-ms", b"0")])  # fmt: skip
        producer.flush(30)
        await asyncio.sleep(0.5)  # the plan record reaches the entity-events topic first
        cut_over_s = await drained(args.bootstrap, tag, [plans, entity_topic], 600, proc) + 0.5
        log(f"cut-over with recompute in {cut_over_s:.1f} s")
    finally:
        proc.stop()
    changes = read_changes(args.bootstrap, topics.changed)
    redone = [c for c in changes if c["cause"] == "recompute"]
    finals: dict[tuple[str, str, str], int] = {}
    for c in changes:
        finals[(c["entity"], c["entity_id"], c["score"])] = c["new_value"]
    expected = offline(sample)
    mismatched = sum(1 for k, v in expected.items() if finals.get(k, 0) != v)
    return {
        "events": args.events, "contacts": args.contacts, "partitions": args.partitions,
        "first_scoring_s": round(scored_s, 2), "changes_before": before,
        "entity_events_records": history, "cut_over_s": round(cut_over_s, 2),
        "history_records_per_s": round(history / cut_over_s),
        "recompute_changes": len(redone),
        "entities_recomputed": len({(c["entity"], c["entity_id"]) for c in redone}),
        "scores_checked_against_offline": len(expected), "mismatched": mismatched,
    }  # fmt: skip


def offline(sample: list[tuple[Source, dict[str, Any]]]) -> dict[Any, int]:
    """The new plan's finals over the same events, from the offline scorer."""
    from streams.commands.offline import OfflineScorer
    from streams.commands.traffic import as_offline_line
    from streams.scoring import Invalid, load_plan, parse_input

    scorer = OfflineScorer(load_plan(doubled(PLAN.read_text()), source="doubled"))
    items = [parse_input(as_offline_line(source, record)) for source, record in sample]
    valid = [item for item in items if not isinstance(item, Invalid)]
    for item in sorted(valid, key=lambda i: i.occurred_at_ms):
        scorer.feed(item)
    return {(row["entity"], row["entity_id"], row["score"]): row["value"]
            for row in scorer.finals() if row["kind"] == "score"}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench")
    args = parser.parse_args()
    args.run = f"r{uuid.uuid4().hex[:8]}"
    started = datetime.now(UTC)
    result: dict[str, Any] = {
        "benchmark": "recompute", "run_at": started.isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]), "machine": machine(),
    }  # fmt: skip
    result.update(asyncio.run(run(args)))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"recompute-{started:%Y-%m-%d}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    m = result["machine"]
    lines = [
        f"# Cut-over with a recompute, {started:%Y-%m-%d}", "",
        f"`{result['command']}` on {m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB).", "",
        f"- {result['events']:,} events of tenant {TENANT} ({result['contacts']:,} contacts), "
        f"{result['partitions']} partitions: scored in {result['first_scoring_s']} s",
        f"- cut-over (publication to the entity-events topic committed again): "
        f"**{result['cut_over_s']} s**, {result['entity_events_records']:,} entity-events "
        f"records, {result['history_records_per_s']:,} records/s",
        f"- {result['recompute_changes']:,} recompute changes for "
        f"{result['entities_recomputed']:,} entities",
        f"- {result['scores_checked_against_offline']:,} final values checked against the "
        f"offline scorer under the new plan: {result['mismatched']} mismatched", "",
    ]  # fmt: skip
    stem.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if result["mismatched"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
