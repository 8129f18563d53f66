"""Checks on what the service published, against the pure core and the offline CLI."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from streams.commands.traffic import as_offline_line
from streams.scoring import EntityKey, Plan, apply, load_plan, parse_input
from streams.wire.codec import Source
from streams.wire.publish import change_record

ChangeKey = tuple[str | None, str, str, str]  # tenant, entity, entity id, score


def exactly_once(changes: Iterable[dict[str, Any]]) -> dict[ChangeKey, list[dict[str, Any]]]:
    """Group published changes by entity and score and check exactly once on them (read_committed;
    docs/consumers.md).

    Every (entity, score, seq) and every ``change_id`` appears exactly once (no re-publication:
    the transactions make it needless); the seqs of an entity's score are exactly 1..n in the
    order a partition's consumer sees them; and each change starts where the previous one ended
    (``old_value`` of seq k+1 = ``new_value`` of seq k).
    """
    ids: set[str] = set()
    grouped: dict[ChangeKey, list[dict[str, Any]]] = defaultdict(list)
    for change in changes:
        assert change["change_id"] not in ids, f"change {change['change_id']} published twice"
        ids.add(change["change_id"])
        key = (change["tenant_id"], change["entity"], change["entity_id"], change["score"])
        grouped[key].append(change)
    for key, rows in grouped.items():
        seqs = [c["seq"] for c in rows]
        assert seqs == list(range(1, len(seqs) + 1)), f"{key}: seqs {seqs[:20]} not 1..n in order"
        for before, after in itertools.pairwise(rows):
            assert after["old_value"] == before["new_value"], (
                f"{key}: seq {after['seq']} starts "
                f"at {after['old_value']}, seq {before['seq']} ended at {before['new_value']}"
            )
    return dict(grouped)


def final_values(grouped: dict[ChangeKey, list[dict[str, Any]]]) -> dict[ChangeKey, int]:
    return {key: changes[-1]["new_value"] for key, changes in grouped.items()}


def replay_with_core(
    plan: Plan, order: list[tuple[EntityKey, str]], items: dict[str, Any], now_of: dict[Any, int]
) -> dict[ChangeKey, list[dict[str, Any]]]:
    """The changes the core gives for the applied order and the recorded "now" of each item."""
    states: dict[EntityKey, Any] = {}
    out: dict[ChangeKey, list[dict[str, Any]]] = defaultdict(list)
    for key, ident in order:
        outcome = apply(states.get(key), key, items[ident], plan, now_ms=now_of[(key, ident)])
        states[key] = outcome.state
        for change in outcome.changes:
            record = change_record(change, emitted_at_ms=None)  # the published shape
            out[(change.tenant_id, change.entity, change.entity_id, change.score)].append(record)
    return out


def offline_finals(plan_path: Path, records: list[tuple[Source, dict[str, Any]]],
                   work: Path) -> dict[ChangeKey, int]:  # fmt: skip
    """Final values from ``leadscore score`` run as a command on the same events."""
    events = work / "events.jsonl"
    with events.open("w") as fh:
        for source, record in records:
            fh.write(json.dumps(as_offline_line(source, record)) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "score", "--plan", str(plan_path), str(events)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    finals = {}
    for line in done.stdout.splitlines():
        row = json.loads(line)
        if row["kind"] != "score":
            continue  # (matrix rows)
        finals[(row["tenant_id"], row["entity"], row["entity_id"], row["score"])] = row["value"]
    return finals


def applied_input_order(
    records: list[tuple[Source, dict[str, Any]]], order: list[tuple[EntityKey, str]]
) -> tuple[list[tuple[Source, dict[str, Any]]], set[EntityKey]]:
    """The input records arranged so that each entity sees its items in the applied order, and
    the entities for which no such arrangement exists.

    One input can feed several entities (a deal's page visit scores the contact and the deal),
    so this merges the per-entity sequences: an input goes next once it heads the queue of every
    entity it feeds. Ingest emits an input's items together in one transaction, but offsets are
    given at append, not at commit: two workers ingesting different input partitions at once can
    append their items to two entity partitions in opposite orders, and both commit (seen once in
    test_zombie). Then no single order fits both entities; the merge takes the earliest pending
    input anyway and returns the entities whose order that breaks, to be left out of the offline
    comparison only (their changes are still checked against the core replayed in their order).
    """
    by_ident = {rec.get("event_id") or rec["command_id"]: (src, rec) for src, rec in records}
    queues: dict[EntityKey, list[str]] = defaultdict(list)
    feeds: dict[str, list[EntityKey]] = defaultdict(list)
    first_seen: dict[str, int] = {}
    for n, (key, ident) in enumerate(order):
        queues[key].append(ident)
        feeds[ident].append(key)
        first_seen.setdefault(ident, n)
    heads = {key: 0 for key in queues}
    out: list[tuple[Source, dict[str, Any]]] = []
    broken: set[EntityKey] = set()

    def heads_all(ident: str) -> bool:
        return all(heads[k] < len(queues[k]) and queues[k][heads[k]] == ident for k in feeds[ident])

    ready = [ident for ident in feeds if heads_all(ident)]
    done: set[str] = set()
    while len(done) < len(feeds):
        if not ready:  # a conflict: take the earliest pending input out of turn
            ident = min((i for i in feeds if i not in done), key=first_seen.__getitem__)
            for key in feeds[ident]:
                if queues[key][heads[key]] != ident:
                    broken.add(key)
                    queues[key].remove(ident)  # later in its queue: taken out of turn
                    queues[key].insert(heads[key], ident)
            ready.append(ident)
        ident = ready.pop()
        if ident in done:
            continue
        done.add(ident)
        out.append(by_ident[ident])
        for key in feeds[ident]:
            heads[key] += 1
            if heads[key] < len(queues[key]):
                nxt = queues[key][heads[key]]
                if heads_all(nxt):
                    ready.append(nxt)
    never_applied = [rec for ident, rec in by_ident.items() if ident not in feeds]
    return out + never_applied, broken


def items_by_id(records: list[tuple[Source, dict[str, Any]]]) -> dict[str, Any]:
    out = {}
    for source, record in records:
        item = parse_input(as_offline_line(source, record))
        ident = record.get("event_id") or record["command_id"]
        out[ident] = item
    return out


def load(plan_path: Path) -> Plan:
    return load_plan(plan_path.read_text(), source=str(plan_path))


def check_run(
    plan_path: Path,
    records: list[tuple[Source, dict[str, Any]]],
    published: list[dict[str, Any]],
    order: list[tuple[EntityKey, str, int]],
    work: Path,
) -> dict[ChangeKey, int]:
    """Every check of a service run; returns the final value of each entity's score.

    1. Exactly once: each (entity, score, seq) and change_id once, seqs 1..n, values chained.
    2. What was published equals, change for change, the pure core run over the order the
       service applied (first occurrences in the entity-events log) with each record's "now".
    3. Final scores equal ``leadscore score`` run offline on the same events, in the order the
       service applied them per entity (determinism: same events, same order per
       entity, same scores). Event-time order is not enough: which matches a cap admits may
       depend on arrival order (docs/plans.md, "Arrival order"), and a rebalance reorders.
       An entity whose applied order fits no single order of the inputs (two workers appended
       two inputs' items to two entity partitions in opposite orders, see
       :func:`applied_input_order`) is scored offline on its own, over its inputs in its order.
    """
    grouped = exactly_once(published)
    expected = replay_with_core(
        load(plan_path), [(key, ident) for key, ident, _ in order], items_by_id(records),
        {(key, ident): now_ms for key, ident, now_ms in order},
    )  # fmt: skip
    strip = ("change_id", "emitted_at")
    for key in sorted(set(grouped) | set(expected), key=str):
        got = [{f: v for f, v in c.items() if f not in strip} for c in grouped.get(key, [])]
        want = [{f: v for f, v in c.items() if f not in strip} for c in expected.get(key, [])]
        assert got == want, f"{key}: published changes differ from the core's replay"
    finals = final_values(grouped)
    in_applied_order, broken = applied_input_order(
        records, [(key, ident) for key, ident, _ in order]
    )
    skip = {(k.tenant_id, k.kind, k.entity_id) for k in broken}
    online = {k: v for k, v in finals.items() if v != 0 and k[:3] not in skip}
    offline = {k: v for k, v in offline_finals(plan_path, in_applied_order, work).items()
               if v != 0 and k[:3] not in skip}  # fmt: skip
    assert online == offline
    # each entity whose order fits no single input order: on its own, in its own applied order
    by_ident = {rec.get("event_id") or rec["command_id"]: (src, rec) for src, rec in records}
    for n, alone_key in enumerate(sorted(broken, key=str)):
        own = dict.fromkeys(ident for k, ident, _ in order if k == alone_key)
        (work / f"alone-{n}").mkdir(parents=True, exist_ok=True)
        alone = offline_finals(plan_path, [by_ident[i] for i in own], work / f"alone-{n}")
        entity = (alone_key.tenant_id, alone_key.kind, alone_key.entity_id)
        mine = {k: v for k, v in finals.items() if v != 0 and k[:3] == entity}
        theirs = {k: v for k, v in alone.items() if v != 0 and k[:3] == entity}
        assert mine == theirs, f"{alone_key}: finals differ from its items scored alone, in order"
    return finals


class LiveReader:
    """A ``read_committed`` reader of a topic that runs during a fault run, in a thread.

    It reads every partition from the beginning as records become visible, while workers are
    killed, frozen or rebalanced. :func:`check_live` then compares what it saw with the topic read
    once at the end: a reader that never sees an aborted record sees, per partition, a prefix of
    the final content, offset for offset and byte for byte.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        import threading

        self.bootstrap, self.topic = bootstrap, topic
        self.seen: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="live-reader", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> LiveReader:
        self.thread.start()
        return self

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        try:
            consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "live",
                                 "isolation.level": "read_committed",
                                 "enable.auto.commit": False, "log_level": 3})  # fmt: skip
            partitions = consumer.list_topics(self.topic, timeout=30).topics[self.topic].partitions
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            while not self.stopping.is_set():
                for msg in consumer.consume(500, 0.2):
                    if msg.error() is None:
                        self.seen[msg.partition() or 0].append(
                            (msg.offset() or 0, msg.value() or b"")
                        )
            consumer.close()
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def close(self) -> None:
        """Stop without checking (a test that failed before :func:`finish_live`)."""
        self.stopping.set()
        self.thread.join(60)

    def stop(self) -> dict[int, list[tuple[int, bytes]]]:
        self.stopping.set()
        self.thread.join(60)
        if self.error is not None:
            raise AssertionError(f"the live reader failed: {self.error!r}")
        return dict(self.seen)


def check_live(live: dict[int, list[tuple[int, bytes]]], final: Iterable[Any]) -> int:
    """What the live reader saw is, per partition, a prefix of the final committed content (no
    aborted record, nothing reordered, nothing different); returns how many records it saw."""
    by_partition: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    for rec in final:
        by_partition[rec.partition].append((rec.offset, rec.value))
    for partition, seen in live.items():
        committed = by_partition.get(partition, [])
        assert seen == committed[: len(seen)], (
            f"partition {partition}: the live read_committed reader saw records that are not "
            "the committed ones (an aborted record, or a different order)"
        )
    return sum(len(seen) for seen in live.values())


async def finish_live(reader: LiveReader, service: Any, timeout_s: float = 30) -> int:
    """Let the live reader catch up with the committed end of its topic (``score-changed``, or
    a shadow plan's), stop it, and check what it saw (:func:`check_live`); returns the records
    it saw (all of them)."""
    import asyncio
    import time

    final = await service.read_all(reader.topic)
    deadline = time.monotonic() + timeout_s
    while sum(len(v) for v in reader.seen.values()) < len(final) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    seen = check_live(reader.stop(), final)
    assert seen == len(final), f"the live reader saw {seen} of {len(final)} committed changes"
    return seen


def assert_no_hanging_transaction(bootstrap: str, topics: Iterable[str],
                                  timeout_s: float = 60) -> int:  # fmt: skip
    """A marker written now to every partition of ``topics`` is readable by a ``read_committed``
    consumer: no transaction of the service stayed open (an open one holds the last stable
    offset below the marker for as long as it is open). Returns the partitions checked.

    Call it after the published records were read and the workers stopped: the markers are not
    score changes, and a worker would read the one in its entity-events topic."""
    import time
    import uuid

    from confluent_kafka import Consumer, Producer, TopicPartition

    marker = f"no-hanging-transaction-{uuid.uuid4().hex}".encode()
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "log_level": 3})
    written: list[TopicPartition] = []

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, f"the marker could not be written: {err}"
        written.append(TopicPartition(msg.topic(), msg.partition(), msg.offset()))

    topics = list(topics)
    meta = producer.list_topics(timeout=30).topics
    for topic in topics:
        for partition in meta[topic].partitions:
            producer.produce(topic, marker, key=b"marker", partition=partition,  # compacted: a key
                             on_delivery=delivered)  # fmt: skip
    assert producer.flush(30) == 0, "markers not delivered"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "marker-check",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "log_level": 3})  # fmt: skip
    try:
        consumer.assign(written)
        pending = {(tp.topic, tp.partition) for tp in written}
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(100, 0.5):
                if msg.error() is None and msg.value() == marker:
                    pending.discard((msg.topic(), msg.partition()))
        assert not pending, f"a transaction hangs: markers unreadable on {sorted(pending)}"
    finally:
        consumer.close()
    return len(written)


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus text exposition's samples of ``name`` with ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
