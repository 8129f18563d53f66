"""The loop on fakes (``tests/engine/fakes.py``): no broker, real RocksDB stores in tmp_path.

Every run is compared with a clean run of the same input: the ``score-changed`` records (bytes:
the clock is fixed) must be the same multiset after aborts, rewinds, rebalances and recoveries:
nothing lost, nothing doubled.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from streams.bootstrap import Clients, build_loop
from streams.engine import loop as loop_module
from streams.engine.kafka import CALLS, ProducerLost
from streams.engine.loop import EXIT_FATAL, Loop
from streams.engine.score import ScoreStage
from streams.engine.tenants import RECOMPUTE_HEADER
from streams.metrics import Metrics
from streams.scoring import EntityKey, load_plan
from streams.settings import Settings
from streams.state.store import PLANS_KEY
from streams.wire import records
from streams.wire.codec import Codec, Source
from streams.wire.topics import entity_topic, input_topics, state_changelog_topic
from tests.engine.fakes import (
    Cluster,
    FakeConsumer,
    FakeProducer,
    FakeReader,
    FakeRestoreConsumer,
    error,
)

PLAN = """
version: loop-1
scores:
  - name: engagement
    entity: contact
    timezone: UTC
    thresholds: [{name: warm, at: 20}]
    rules:
      - {id: pricing, on: page_visit, where: {url: {contains: pricing}}, points: 10}
      - {id: any-page, on: page_visit, points: 1}
"""
TENANT_PLAN = (
    PLAN.replace("loop-1", "loop-2")
    .replace("points: 10", "points: 20")
    .replace("points: 1}", "points: 3}")
)
T0 = 1_795_100_000_000
TXN_ID = "t-instance"
CODEC = Codec.load()


def visits(n: int, seed: int = 1, tenant: str | None = None) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        url = rng.choice(["https://x.io/", "https://x.io/pricing", "https://x.io/blog"])
        out.append({"event_id": f"e{seed}-{i}", "occurred_at": T0 - (n - i) * 1000,
                    "contact_id": f"c{rng.randrange(8)}", "deal_id": None, "url": url,
                    "referrer": None, "title": None, "session_id": None,
                    **_tenant_field(tenant)})  # fmt: skip
    return out


def _tenant_field(tenant: str | None) -> dict[str, Any]:
    fields = {f["name"] for f in CODEC.inputs[Source.PAGE_VISITS]["fields"]}
    name = "tenant_id" if "tenant_id" in fields else "account_id"
    return {name: tenant}


class World:
    """A loop on fakes over one in-memory cluster."""

    def __init__(self, root: Path, *, input_partitions: int = 1, max_recoveries: int = 5,
                 **extra: Any) -> None:  # fmt: skip
        root.mkdir(parents=True, exist_ok=True)
        plan_path = root / "plan.yaml"
        plan_path.write_text(PLAN)
        self.settings = Settings(app_id="t", data_dir=str(root / "data"), partitions=2,
                                 plan_path=plan_path, batch_size=7, commit_max_records=1,
                                 producer_recoveries_max=max_recoveries, **extra)  # fmt: skip
        s = self.settings
        self.entity, self.changelog = entity_topic(s), state_changelog_topic(s)
        self.visits_topic = s.topic_page_visits
        counts = dict.fromkeys(input_topics(s), 1)
        counts[self.visits_topic] = input_partitions
        counts.update({s.topic_plans: 1, self.entity: 2, self.changelog: 2, s.topic_scores: 1,
                       s.topic_score_changed: 1, s.topic_dead_letters: 1,
                       s.topic_plan_status: 1})  # fmt: skip
        self.cluster = Cluster(counts, now_ms=T0)
        self.consumer = FakeConsumer(self.cluster, auto_assign=True)
        self.restore = FakeRestoreConsumer(self.cluster, self.changelog)
        self.reader = FakeReader(self.cluster)
        self.producers: list[FakeProducer] = []
        self.metrics = Metrics.create()
        clients = Clients(self.consumer, self._producer, self.restore, lambda: self.reader)
        plan = load_plan(PLAN, source="plan.yaml")
        self.loop: Loop = build_loop(s, plan, clients, metrics=self.metrics, codec=CODEC,
                                     clock=lambda: T0 / 1000)  # fmt: skip
        self.loop.recovery.sleep = lambda s: None

    def _producer(self) -> FakeProducer:
        producer = FakeProducer(self.cluster, TXN_ID)
        self.producers.append(producer)
        return producer

    @property
    def producer(self) -> FakeProducer:
        return self.producers[-1]

    def send(self, rows: list[dict[str, Any]]) -> None:
        n = self.cluster.partitions[self.visits_topic]
        for row in rows:
            partition = int(row["contact_id"][1:]) % n  # a contact's visits stay in order
            value = CODEC.encode(CODEC.inputs[Source.PAGE_VISITS], row)
            self.cluster.append(self.visits_topic, partition, b"any", value)

    def start(self) -> World:
        self.loop.start()
        self.loop.step()  # the assignment
        return self

    def lag(self) -> int:
        return sum(len(self.cluster.log(*tp)) - max(self.cluster.group.get(tp, 0), 0)
                   for tp in self.consumer.all_partitions())  # fmt: skip

    def drain(self, turns: int = 300) -> None:
        for _ in range(turns):
            self.loop.step()
            try:  # the loop's own policy commits by the clock too; here after every turn
                self.loop.commit()
            except ProducerLost as lost:
                self.loop.recover(lost)
            if self.lag() == 0 and not self.loop.restorer.active and not self.loop.cache.dirty:
                return
        raise AssertionError(f"not drained in {turns} turns (lag {self.lag()})")

    def changes(self) -> Counter[tuple[bytes | None, bytes | None]]:
        return Counter(
            (r.key, r.value) for r in self.cluster.values(self.settings.topic_score_changed)
        )

    def dead_letters(self) -> list[dict[str, bytes]]:
        return [
            dict(r.headers or []) for r in self.cluster.values(self.settings.topic_dead_letters)
        ]

    def total(self, contact: str, tenant: str | None = None) -> int:
        key = records.entity_key_bytes(EntityKey(tenant, "contact", contact))
        where, state = self.loop.read_state(key)
        assert where == "ok" and state is not None, where
        return int(state.scores["engagement"].total)

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.metrics.registry.get_sample_value(name, labels or {})
        return 0.0 if value is None else value


def reference(tmp_path: Path, rows: list[dict[str, Any]], **kw: Any) -> World:
    world = World(tmp_path / "reference", **kw).start()
    world.send(rows)
    world.drain()
    return world


ROWS = visits(60)


def test_a_clean_run_scores_everything_once_and_commits_every_offset(tmp_path: Path) -> None:
    world = World(tmp_path).start()
    world.send(ROWS)
    world.drain()
    changes = world.changes()
    assert changes and max(changes.values()) == 1
    assert world.lag() == 0
    assert world.sample("leadscore_transactions_total", {"result": "aborted"}) == 0
    assert len(world.cluster.transactions) > 3  # batches of 7: many transactions
    pricing = {r["contact_id"]: 0 for r in ROWS}
    for r in ROWS:
        pricing[r["contact_id"]] += 11 if "pricing" in r["url"] else 1
    assert {c: world.total(c) for c in pricing} == pricing


def test_an_abortable_commit_aborts_rewinds_and_the_replay_publishes_the_same(
    tmp_path: Path,
) -> None:
    world = World(tmp_path).start()
    world.send(ROWS)
    for _ in range(3):
        world.loop.step()
    world.producer.fail["commit_transaction"] = [error(KafkaError._STATE, abortable=True)]
    before = len(world.cluster.transactions)
    world.loop.step()
    assert world.producer.calls[-1] == "abort_transaction"
    assert len(world.cluster.transactions) == before  # nothing of it is visible
    assert world.consumer.seeks  # rewound to the first offsets it processed
    world.drain()
    assert world.sample("leadscore_transactions_total", {"result": "aborted"}) == 1
    assert world.changes() == reference(tmp_path, ROWS).changes()


class Exploding:
    """The entity stage, with a core that raises on one event (a bug)."""

    def __init__(self, stage: Any, event_id: str) -> None:
        self.stage, self.event_id, self.raised = stage, event_id, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stage, name)

    def on_item(self, partition: int, key: bytes, rec: records.ItemRecord) -> Any:
        if rec.record["event_id"] == self.event_id:
            self.raised += 1
            raise RuntimeError("a bug in the core")
        return self.stage.on_item(partition, key, rec)


def test_a_poison_record_aborts_then_is_dead_lettered_and_the_batch_rest_is_redone(
    tmp_path: Path,
) -> None:
    world = World(tmp_path).start()
    score = world.loop.stages[world.entity]
    assert isinstance(score, ScoreStage)
    poison = ROWS[20]["event_id"]
    score.stage = Exploding(score.stage, poison)  # type: ignore[assignment]
    world.send(ROWS)
    world.drain()
    assert score.stage.raised == 1  # type: ignore[attr-defined]  # once: then dead-lettered
    letters = world.dead_letters()
    assert [h["leadscore.error.class"] for h in letters] == [b"Unexpected:RuntimeError"]
    assert world.sample("leadscore_transactions_total", {"result": "aborted"}) == 1
    # everything else exactly once: as if the poisoned visit had never been sent
    expected = reference(tmp_path, [r for r in ROWS if r["event_id"] != poison]).changes()
    assert world.changes() == expected


def test_a_lost_assignment_aborts_and_commits_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop_module, "EARLY_COMMIT_S", 3600.0)
    world = World(tmp_path, commit_interval_ms=60_000).start()
    world.loop.settings = world.settings.model_copy(update={"commit_max_records": 1_000_000})
    world.send(ROWS[:5])
    world.loop.step()
    assert world.loop.txn.records > 0  # processed, not committed
    committed, transactions = dict(world.cluster.group), len(world.cluster.transactions)
    world.consumer.rebalance("lost", world.consumer.all_partitions())
    world.loop.step()
    assert world.producer.calls[-1] == "abort_transaction"
    assert (dict(world.cluster.group), len(world.cluster.transactions)) == (committed, transactions)
    assert world.loop.partitions.held == {} and world.loop.rebalance.assigned == set()
    assert not world.loop.cache.dirty and world.loop.txn.records == 0
    assert world.sample("leadscore_transactions_total", {"result": "aborted"}) == 1


def test_records_of_a_partition_revoked_inside_a_batch_are_left_to_the_new_owner(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, input_partitions=2).start()
    world.send(ROWS)
    p1 = (world.visits_topic, 1)
    # already fetched when the revoke is served: they come back in the same consume
    world.consumer.prefetched = list(world.cluster.log(*p1)[:5])
    world.consumer.rebalance("revoke", [p1])
    world.loop.step()
    assert p1 not in world.loop.rebalance.assigned
    sources = [records.decode(r.value or b"") for r in world.cluster.values(world.entity)]
    assert all(s.source[:2] != p1 for s in sources if isinstance(s, records.ItemRecord))
    assert world.cluster.group.get(p1, 0) == 0  # the new owner starts from the committed offset
    world.consumer.rebalance("assign", [p1])  # it comes back: read from its committed offset
    world.drain()
    assert world.changes() == reference(tmp_path, ROWS, input_partitions=2).changes()


def publish_plan(world: World, text: str | None, recompute_from_ms: int | None = None) -> None:
    headers = None
    if recompute_from_ms is not None:
        headers = [(RECOMPUTE_HEADER, str(recompute_from_ms).encode())]
    world.cluster.append(world.settings.topic_plans, 0, b"acme",
                         None if text is None else text.encode(), headers)  # fmt: skip


def test_a_recompute_stops_the_batch_commits_reads_the_history_and_rebuilds(
    tmp_path: Path,
) -> None:
    world = World(tmp_path).start()
    acme = visits(30, seed=2, tenant="acme")
    world.send(acme)
    world.drain()
    publish_plan(world, TENANT_PLAN, recompute_from_ms=0)
    world.drain()
    tenants = world.loop.stage.tenants
    assert [tenants.plan_for(p, "acme").version for p in (0, 1)] == ["loop-2", "loop-2"]
    assert world.reader.reads >= 1  # the history, read between two transactions
    plan_offsets = {
        (world.entity, r.partition): r.offset
        for r in world.cluster.values(world.entity)
        if isinstance(records.decode(r.value or b""), records.PlanRecord)
    }
    stops = [offs for _, offs in world.cluster.transactions
             if any(offs.get(tp) == off for tp, off in plan_offsets.items())]  # fmt: skip
    assert stops  # a commit that stopped right before a plan record
    expected = {r["contact_id"]: 0 for r in acme}
    for r in acme:  # rebuilt under the new plan: 20 for pricing and 3 for any page
        expected[r["contact_id"]] += 23 if "pricing" in r["url"] else 3
    assert {c: world.total(c, "acme") for c in expected} == expected


def test_a_plan_switched_in_an_aborted_transaction_rolls_back(tmp_path: Path) -> None:
    world = World(tmp_path).start()
    world.send(visits(10, seed=3, tenant="acme"))
    world.drain()
    publish_plan(world, TENANT_PLAN)
    world.loop.step()  # the plans stage: a plan record on every entity partition, committed
    plans = [r for r in world.cluster.values(world.entity)
             if isinstance(records.decode(r.value or b""), records.PlanRecord)]  # fmt: skip
    assert len(plans) == 2
    world.producer.fail["commit_transaction"] = [error(KafkaError._STATE, abortable=True)]
    world.loop.step()  # both partitions switch (their records hold nothing to produce)
    assert world.loop.stage.tenants.pending == {0, 1}
    world.loop.commit()  # and the commit fails
    assert world.producer.calls[-1] == "abort_transaction"
    tenants = world.loop.stage.tenants
    assert [tenants.plan_for(p, "acme").version for p in (0, 1)] == ["loop-1", "loop-1"]
    assert not tenants.pending
    assert all(h.store.get(PLANS_KEY) is None for h in world.loop.partitions.held.values())
    world.drain()
    assert [tenants.plan_for(p, "acme").version for p in (0, 1)] == ["loop-2", "loop-2"]
    assert all(h.store.get(PLANS_KEY) is not None for h in world.loop.partitions.held.values())


# ----- recovery in the process ------------------------------------------------------------------


def test_a_fatal_commit_error_recovers_with_a_new_producer_and_loses_nothing(
    tmp_path: Path,
) -> None:
    world = World(tmp_path).start()
    world.send(ROWS)
    for _ in range(4):
        world.loop.step()
    first = world.producer
    first.fail["commit_transaction"] = [error(KafkaError.INVALID_TXN_STATE, fatal=True)]
    # seen with librdkafka: a dead producer's flush serves a delivery callback while its fatal
    # error is pending in the binding, and raises SystemError; disposing of it goes on
    first.fail["flush"] = [SystemError("returned a result with an exception set")]
    seeks = len(world.consumer.seeks)
    world.drain()
    assert len(world.producers) == 2 and world.producers[1] is world.loop.producer
    assert {p.transactional_id for p in world.producers} == {TXN_ID}
    assert first.closed and "abort_transaction" not in first.calls[-4:]  # dead: never asked
    assert world.cluster.epochs[TXN_ID] == 2  # the new producer fenced the old epoch
    rewound = {tp for tp, _ in world.consumer.seeks[seeks:]}
    assert rewound >= set(world.consumer.all_partitions())  # every assigned partition
    assert world.sample("leadscore_producer_recoveries_total") == 1
    assert world.changes() == reference(tmp_path, ROWS).changes()  # exactly once


def test_a_commit_that_went_through_before_the_error_restores_the_stores(tmp_path: Path) -> None:
    world = World(tmp_path).start()
    world.send(ROWS)
    for _ in range(4):
        world.loop.step()
    restores = world.restore.restores
    # committed on the broker, but the client lost the outcome: the stores were never written
    world.producer.commit_then_fail = (world.changelog, error(KafkaError._TIMED_OUT, fatal=True))
    world.drain()
    assert len(world.producers) == 2
    assert world.restore.restores > restores  # caught up from the changelog
    clean = reference(tmp_path, ROWS)
    assert world.changes() == clean.changes()
    contacts = sorted({r["contact_id"] for r in ROWS})
    assert [world.total(c) for c in contacts] == [clean.total(c) for c in contacts]


def test_a_call_that_never_returns_is_abandoned_and_a_new_producer_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """librdkafka#5456: ``send_offsets_to_transaction`` blocks for good. The loop leaves it on its
    thread, keeps the producer (never closed: a thread is inside it) and recovers: no exit."""
    world = World(tmp_path).start()
    monkeypatch.setattr(CALLS, "limit_s", 0.3)
    world.send(ROWS)
    for _ in range(4):
        world.loop.step()
    first = world.producer
    release = threading.Event()
    first.send_offsets_to_transaction = lambda *args: release.wait()  # type: ignore[method-assign]
    try:
        world.drain()
        assert len(world.producers) == 2 and world.producers[1] is world.loop.producer
        assert world.loop.recovery.abandoned == [first]
        assert not first.closed and "purge" not in first.calls  # never touched again
        assert CALLS.stuck() == ["send_offsets_to_transaction"]
        assert world.cluster.epochs[TXN_ID] == 2  # the new producer fenced the old epoch
        assert world.sample("leadscore_producer_recoveries_total") == 1
    finally:
        release.set()
    assert world.changes() == reference(tmp_path, ROWS).changes()  # exactly once


def run_to_exit(world: World, turns: int = 200) -> int:
    calls = {"n": 0}
    consume = world.consumer.consume

    def bounded(max_records: int, timeout_s: float) -> Any:
        calls["n"] += 1
        assert calls["n"] < turns, "the loop did not exit"
        return consume(max_records, timeout_s)

    world.consumer.consume = bounded  # type: ignore[method-assign]
    return world.loop.run(started=True)


def test_a_fence_by_a_newer_instance_exits_70(tmp_path: Path) -> None:
    world = World(tmp_path).start()
    world.send(ROWS[:20])
    world.drain()
    world.cluster.bump(TXN_ID)  # a twin with our transactional.id started...
    world.cluster.on_init = world.cluster.bump  # ...and fences every new producer of ours
    world.send(ROWS[20:])
    assert run_to_exit(world) == EXIT_FATAL
    assert len(world.producers) == 2  # one recovery (it may be our own timeout), then the exit
    assert world.sample("leadscore_producer_recoveries_total") == 1


def test_too_many_recoveries_exit_70(tmp_path: Path) -> None:
    world = World(tmp_path, max_recoveries=2).start()
    world.send(ROWS)
    broken = world._producer

    def always_failing() -> FakeProducer:
        producer = broken()
        producer.fail["commit_transaction"] = [error(KafkaError.INVALID_TXN_STATE, fatal=True)] * 9
        return producer

    world.loop.recovery.make_producer = always_failing
    world.producer.fail["commit_transaction"] = [error(KafkaError.INVALID_TXN_STATE, fatal=True)]
    committed = dict(world.cluster.group)
    assert run_to_exit(world) == EXIT_FATAL
    assert len(world.producers) == 3  # the first, then one per allowed recovery
    assert world.sample("leadscore_producer_recoveries_total") == 2
    assert world.cluster.group == committed  # nothing committed on the way


def test_recoveries_with_commits_between_them_never_add_up_to_an_exit(tmp_path: Path) -> None:
    """A broker killed every few seconds loses the producer again and again; each new producer
    commits before it is lost: the recoveries work, and no count of them stops the worker."""
    world = World(tmp_path, max_recoveries=1).start()
    make = world._producer

    def lost_at_its_second_commit() -> FakeProducer:
        producer = make()
        producer.fail["commit_transaction"] = []
        commit = producer.commit_transaction

        def second_fails(timeout: float) -> None:
            if "commit_transaction" in producer.calls:  # committed once already
                producer.fail["commit_transaction"].append(
                    error(KafkaError.INVALID_TXN_STATE, fatal=True)
                )
            commit(timeout)

        producer.commit_transaction = second_fails  # type: ignore[method-assign]
        return producer

    world.loop.recovery.make_producer = lost_at_its_second_commit
    world.producer.fail["commit_transaction"] = [error(KafkaError.INVALID_TXN_STATE, fatal=True)]
    for chunk in range(4):
        world.send(ROWS[chunk * 15 : (chunk + 1) * 15])
        world.drain()  # a Fatal from a recovery would end the test here
    assert world.sample("leadscore_producer_recoveries_total") >= 4  # the limit is 1
    assert len(world.producers) >= 5
    assert world.changes() == reference(tmp_path, ROWS).changes()  # exactly once


def test_the_rewind_retries_a_partition_error_and_starts_from_the_beginning_without_a_commit(
    tmp_path: Path,
) -> None:
    from dataclasses import dataclass

    from confluent_kafka import TopicPartition

    world = World(tmp_path).start()
    world.send(ROWS[:10])
    world.drain()
    consumer = world.consumer
    answers = consumer.committed
    calls = {"n": 0}

    unstable = KafkaError(KafkaError.UNSTABLE_OFFSET_COMMIT, retriable=True)

    @dataclass
    class Failed:  # a TopicPartition with an error (its attributes are read-only)
        topic: str
        partition: int
        offset: int = -1001
        error: KafkaError = unstable

    def flaky(partitions: list[TopicPartition], timeout: float) -> list[Any]:
        calls["n"] += 1
        found: list[Any] = answers(partitions, timeout)
        if calls["n"] == 1:  # one partition's offset unknown: never sought, asked again
            found[0] = Failed(found[0].topic, found[0].partition)
        return found

    consumer.committed = flaky  # type: ignore[method-assign]
    seeks = len(consumer.seeks)
    positions = world.loop.recovery.rewind(consumer)
    assert calls["n"] == 2
    sought = dict(consumer.seeks[seeks:])
    assert sought == {tp: max(world.cluster.group.get(tp, 0), 0) for tp in consumer.fetch}
    assert positions == {tp: off for tp, off in world.cluster.group.items() if off >= 0}


def test_which_fences_mean_a_twin_and_which_are_our_own_timeout() -> None:
    from streams.engine.kafka import Fatal
    from streams.engine.recovery import Recovery

    recovery = Recovery(lambda: FakeProducer(Cluster({}), TXN_ID), max_recoveries=5,
                        call_timeout_s=1.0, transaction_timeout_s=10.0)  # fmt: skip
    fenced = ProducerLost("commit_transaction failed", KafkaError(KafkaError._FENCED, fatal=True))
    recovery.admit(fenced, 9.0)  # outlived 80% of its timeout: the coordinator's own fence
    with pytest.raises(Fatal, match="another live instance"):
        recovery.admit(fenced, 1.0)  # a fresh producer's young transaction: a twin
    recovery.commits = 3
    recovery.admit(fenced, 1.0)  # it had committed since its init: recover once
    denied = ProducerLost("x", KafkaError(KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED))
    with pytest.raises(Fatal, match="no new producer can help"):
        recovery.admit(denied, None)
    # the first admitted recovery counted; the producer lost after it had committed, so the
    # last recovery worked: a new run of one
    assert len(recovery.times) == 1


def test_a_restore_whose_partition_the_metadata_lost_refreshes_it_and_goes_on(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, kafka_call_timeout_s=1).start()
    world.send(ROWS[:20])
    world.drain()
    changelog = world.cluster.log(world.changelog, 0) + world.cluster.log(world.changelog, 1)
    assert changelog  # something to restore
    world.restore.unknown = {0, 1}  # as after a broker was killed
    world.consumer.rebalance("lost", world.consumer.all_partitions())
    world.loop.step()
    world.consumer.rebalance("assign", world.consumer.all_partitions())
    world.send(ROWS[20:])
    world.drain()
    assert world.restore.unknown == set() and world.loop.partitions.ready
    assert world.changes() == reference(tmp_path, ROWS).changes()
