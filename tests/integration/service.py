"""Harness for tests of the real service: workers as subprocesses against the real broker.

Each test gets its own app id, topics, consumer group and data directories, so tests never share
state. Workers are started with ``python -m streams.cli worker`` and the ``LEADSCORE_*`` settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from confluent_kafka import Consumer as ConfluentConsumer
from confluent_kafka import KafkaError
from confluent_kafka import TopicPartition as ConfluentTP

from streams.wire.codec import Codec, Source
from streams.wire.records import ItemRecord, decode, entity_key_from_bytes

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
REPO = Path(__file__).resolve().parents[2]
PLAN = REPO / "tests" / "integration" / "plans" / "service.yaml"
SOURCES = {
    Source.PAGE_VISITS: "page-visits",
    Source.EMAIL_EVENTS: "email-events",
    Source.PURCHASES: "purchases",
    Source.DEAL_STAGE_CHANGES: "deal-stage-changes",
    Source.CONTACT_PROFILES: "contact-profiles",
    Source.SCORE_ADJUSTMENTS: "score-adjustments",
}
SETTING_OF = {
    Source.PAGE_VISITS: "TOPIC_PAGE_VISITS",
    Source.EMAIL_EVENTS: "TOPIC_EMAIL_EVENTS",
    Source.PURCHASES: "TOPIC_PURCHASES",
    Source.DEAL_STAGE_CHANGES: "TOPIC_DEAL_STAGE_CHANGES",
    Source.CONTACT_PROFILES: "TOPIC_CONTACT_PROFILES",
    Source.SCORE_ADJUSTMENTS: "TOPIC_SCORE_ADJUSTMENTS",
}


def crash_traffic(events: int, contacts: int, rng: random.Random) -> list[tuple[Source, Any]]:
    """Demo traffic for a fault run: ``contacts`` contacts (a fifth as many deals), event times
    50 ms apart ending now."""
    from streams.commands.traffic import TrafficShape, generate

    now = int(time.time() * 1000)
    shape = replace(TrafficShape(), contacts=contacts, deals=contacts // 5, step_ms=50,
                    start_ms=now - events * 50)  # fmt: skip
    return list(generate(events, seed=rng.randrange(1000), shape=shape))


async def produce_with_kills(service: Service, worker: Worker, records: list[Any], kills: int,
                             rng: random.Random) -> None:  # fmt: skip
    """``records`` in ``kills + 1`` chunks; during each chunk but the last, ``kill -9`` of the
    worker while it arrives (transactions open, with outputs in them), and a restart."""
    chunk = len(records) // (kills + 1)
    for k in range(kills + 1):
        sending = asyncio.create_task(
            service.produce(records[k * chunk : (k + 1) * chunk if k < kills else None])
        )
        if k < kills:
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            worker.kill()
            worker.start()
            await worker.wait_ready()
        await sending


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Sender(Protocol):
    """``Service.sender``'s send: one record to its source's topic."""

    def __call__(self, source: Source, record: dict[str, Any] | bytes, *,
                 wait: bool = True) -> Awaitable[None]: ...  # fmt: skip


@dataclass
class Service:
    """One deployment of the service under test: its names, settings and workers."""

    bootstrap: str
    unique: str
    root: Path
    plan: Path = PLAN
    partitions: int = 4
    json_sources: frozenset[Source] = frozenset()
    extra: dict[str, str] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)
    worker_bootstrap: str | None = None  # the workers' own (e.g. through proxies); else bootstrap
    restarts: int = 0  # fenced workers started again by supervise()

    def topic(self, source: Source) -> str:
        return f"{SOURCES[source]}-{self.unique}"

    @property
    def app_id(self) -> str:
        return f"ls-{self.unique}"

    @property
    def changed(self) -> str:
        return f"score-changed-{self.unique}"

    @property
    def changed_shadow(self) -> str:
        return f"score-changed-shadow-{self.unique}"

    @property
    def scores(self) -> str:
        return f"scores-{self.unique}"

    @property
    def dead(self) -> str:
        return f"dead-{self.unique}"

    @property
    def plans(self) -> str:
        return f"plans-{self.unique}"

    @property
    def plan_status(self) -> str:
        return f"plan-status-{self.unique}"

    @property
    def entity_events(self) -> str:
        return f"{self.app_id}-entity-events"

    def env(self, name: str, port: int) -> dict[str, str]:
        env = {
            "LEADSCORE_BOOTSTRAP_SERVERS": self.worker_bootstrap or self.bootstrap,
            "LEADSCORE_APP_ID": self.app_id,
            "LEADSCORE_PLAN_PATH": str(self.plan),
            "LEADSCORE_DATA_DIR": str(self.root / name),
            "LEADSCORE_PARTITIONS": str(self.partitions),
            "LEADSCORE_TOPIC_SCORE_CHANGED": self.changed,
            "LEADSCORE_TOPIC_SCORE_CHANGED_SHADOW": self.changed_shadow,
            "LEADSCORE_TOPIC_SCORES": self.scores,
            "LEADSCORE_TOPIC_DEAD_LETTERS": self.dead,
            "LEADSCORE_TOPIC_PLANS": self.plans,
            "LEADSCORE_TOPIC_PLAN_STATUS": self.plan_status,
            "LEADSCORE_JSON_TOPICS": ",".join(self.topic(s) for s in self.json_sources),
            "LEADSCORE_WEB_PORT": str(port),
            "LEADSCORE_TICK_INTERVAL_MS": "200",
            "LEADSCORE_COMMIT_INTERVAL_MS": "100",
            "LEADSCORE_LOG_LEVEL": os.environ.get("TEST_WORKER_LOG_LEVEL", "WARNING"),
            **self.extra,
        }
        for source, setting in SETTING_OF.items():
            env[f"LEADSCORE_{setting}"] = self.topic(source)
        return env

    def worker(self, name: str = "w1") -> Worker:
        port = free_port()
        worker = Worker(name, port, self.env(name, port), self.root / f"{name}.log")
        self.workers.append(worker)
        return worker

    async def supervise(self) -> int:
        """What systemd or Kubernetes does: a worker that exited by itself must have exited with the
        fatal code 70 (fenced, or a fatal transactional error: docs/operations.md, Exactly once) and
        is started again; the new process settles its transaction (init_transactions) and resumes.
        Any other exit fails the test. Returns how many were restarted now."""
        from streams.engine.loop import EXIT_FATAL

        restarted = 0
        for worker in self.workers:
            code = worker.exited()
            if worker.running and code is not None:
                assert code == EXIT_FATAL, f"{worker.name} exited with {code}:\n{worker.tail()}"
                worker.start()
                await worker.wait_ready(timeout_s=120)
                restarted += 1
        self.restarts += restarted
        return restarted

    async def drain_supervised(self, timeout_s: float = 180, tries: int = 5) -> None:
        """:meth:`wait_drained`, restarting workers that exit 70 on the way (:meth:`supervise`)."""
        for attempt in range(tries):
            await self.supervise()
            try:
                await self.wait_drained(timeout_s=timeout_s)
                return
            except AssertionError:
                exited = any(w.running and w.exited() is not None for w in self.workers)
                if not exited or attempt == tries - 1:
                    raise  # not a worker that exited 70 while draining: a real failure

    async def settle(self, live: Any, *, timeout_s: float = 180, tries: int = 5
                     ) -> tuple[int, list[dict[str, Any]], list[tuple[Any, str, int]]]:  # fmt: skip
        """The end of a fault run: drain (restarting fenced workers), let the concurrent reader
        (``verify.LiveReader``) catch up and check it, then read what was published and the
        order the service applied. Returns (records the reader saw, changes, applied order)."""
        from tests.integration.verify import finish_live

        await self.drain_supervised(timeout_s=timeout_s, tries=tries)
        seen = await finish_live(live, self, timeout_s=120)
        return seen, await self.changes(), await self.applied_order()

    def shut(self, live: Any | None) -> None:
        """Stop the concurrent reader (if any) and kill every worker: a fault run's ``finally``."""
        if live is not None:
            live.close()
        self.stop_all()

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.kill()

    # ----- traffic in ---------------------------------------------------------------------------

    async def produce(self, records: Iterable[tuple[Source, dict[str, Any] | bytes]]) -> int:
        async with self.sender() as send:
            n = 0
            for source, record in records:
                await send(source, record, wait=False)
                n += 1
        return n

    @contextlib.asynccontextmanager
    async def sender(self) -> AsyncIterator[Sender]:
        """One producer for many sends (paced traffic: a producer per record costs its start,
        about 0.2 s): ``await send(source, record)`` returns once the record is appended
        (``wait=False``: once it is handed over; all are flushed at the end)."""
        codec = Codec.load()
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, linger_ms=5
        )
        await producer.start()

        async def send(
            source: Source, record: dict[str, Any] | bytes, *, wait: bool = True
        ) -> None:
            if isinstance(record, bytes):
                value = record
            elif source in self.json_sources:
                value = json.dumps(record, default=str).encode()
            else:
                value = codec.encode(codec.inputs[source], record)
            sent = await producer.send(self.topic(source), value, key=b"any-key")
            if wait:
                await sent

        try:
            yield send
            await producer.flush()
        finally:
            await producer.stop()

    async def produce_raw(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                    enable_idempotence=True)  # fmt: skip
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

    # ----- traffic out --------------------------------------------------------------------------

    async def read_all(self, topic: str) -> list[Any]:
        """Every record of ``topic`` up to its current end (aiokafka ConsumerRecords)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
            isolation_level="read_committed",  # aborted transactions are not part of any result
        )
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(topic)
            if parts is None:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)  # the last stable offsets (read_committed)
            await consumer.seek_to_beginning(*tps)
            out: list[Any] = []
            pending = {tp for tp in tps if ends[tp] > 0}
            async with asyncio.timeout(60):
                while pending:
                    batch = await consumer.getmany(*pending, timeout_ms=500)
                    for recs in batch.values():
                        out.extend(recs)
                    for tp in list(pending):  # control records move the position past the data
                        if await consumer.position(tp) >= ends[tp]:
                            pending.discard(tp)
            return out
        finally:
            await consumer.stop()

    async def changes(self, topic: str | None = None) -> list[dict[str, Any]]:
        """Every published score change (of ``score-changed``, or ``topic``: a shadow plan's),
        timestamps as epoch millis."""
        codec = Codec.load()
        out = []
        for rec in await self.read_all(topic or self.changed):
            change = codec.decode(codec.score_changed, rec.value)
            for name in ("occurred_at", "emitted_at"):
                change[name] = (change[name] - EPOCH) // dt.timedelta(milliseconds=1)
            out.append(change)
        return out

    async def applied_order(self) -> list[tuple[Any, str, int]]:
        """Items in the order the entity stage saw them: (entity key, item id, its "now").

        Only committed records count (read_committed); a producer duplicate of an input appears
        twice, and its first occurrence is the applied one (the second is dropped as a duplicate).
        """
        seen: set[tuple[Any, str]] = set()
        order = []
        for rec in await self.read_all(self.entity_events):
            item = decode(rec.value)
            if not isinstance(item, ItemRecord):
                continue
            record = item.record
            ident = (entity_key_from_bytes(rec.key), record.get("event_id") or record["command_id"])
            if ident not in seen:
                seen.add(ident)
                order.append((*ident, item.now_ms))
        return order

    async def lag(self) -> int:
        """Records not yet committed by the service's consumer group, over all its topics."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
        await consumer.start()
        try:
            committed = await admin.list_consumer_group_offsets(self.app_id)
            topics = [self.topic(s) for s in SOURCES] + [self.entity_events]
            tps = [
                TopicPartition(t, p)
                for t in topics
                for p in (consumer.partitions_for_topic(t) or range(self.partitions))
            ]
            ends = await consumer.end_offsets(tps)
            behind = {}
            for tp in tps:
                meta = committed.get(tp)
                done = meta.offset if meta is not None and meta.offset >= 0 else 0
                if ends[tp] > done:
                    behind[(tp.topic, tp.partition)] = (done, ends[tp])
        finally:
            await consumer.stop()
            await admin.close()
        return await asyncio.to_thread(self._records_to_consume, behind)

    def _records_to_consume(self, behind: dict[tuple[str, int], tuple[int, int]]) -> int:
        """Records a ``read_committed`` consumer would still get between committed and end.

        The offset range alone overstates it: transaction markers and aborted records take
        offsets too, and when a partition's last batch is a marker that the service's consumer
        got in a fetch of its own (no records in it), librdkafka's position (what the service
        commits) stays on the marker, one below the end, for good. Observed in the crash test:
        entity-events partition committed at 5918, end 5919, offset 5918 a commit marker.
        """
        if not behind:
            return 0
        consumer = ConfluentConsumer({
            "bootstrap.servers": self.bootstrap, "group.id": f"lagcheck-{self.unique}",
            "isolation.level": "read_committed", "enable.partition.eof": True,
            "enable.auto.commit": False, "log_level": 3,
        })  # fmt: skip
        try:
            consumer.assign([ConfluentTP(t, p, start) for (t, p), (start, _) in behind.items()])
            pending, count = set(behind), 0
            deadline = time.monotonic() + 30
            while pending and time.monotonic() < deadline:
                for msg in consumer.consume(1000, 0.5):
                    tp = (msg.topic(), msg.partition())
                    err = msg.error()
                    if err is not None and err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(tp)
                    elif err is None and tp in pending and msg.offset() < behind[tp][1]:
                        count += 1
            return count + sum(behind[tp][1] - behind[tp][0] for tp in pending)  # unread: all
        finally:
            consumer.close()

    async def wait_drained(self, timeout_s: float = 180) -> None:
        """Until every input and entity-events record is processed and committed."""
        deadline = time.monotonic() + timeout_s
        quiet = 0
        while time.monotonic() < deadline:
            for worker in self.workers:
                if worker.running:
                    worker.assert_alive()
            # Zero twice: a commit of re-keyed items can add entity-events records in between.
            quiet = quiet + 1 if await self.lag() == 0 else 0
            if quiet >= 2:
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"the service did not drain within {timeout_s}s")


def _without_settings(env: Mapping[str, str]) -> dict[str, str]:
    """The runner's environment minus any LEADSCORE_* variable: workers get only ours."""
    return {k: v for k, v in env.items() if not k.upper().startswith("LEADSCORE_")}


@dataclass
class Worker:
    name: str
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    running: bool = False  # started and not deliberately stopped since

    def start(self) -> Worker:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"],
                cwd=REPO,
                env={**_without_settings(os.environ), **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.running = True
        return self

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return str(r.read().decode())

    async def wait_ready(self, timeout_s: float = 90) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            self.assert_alive()
            try:
                if self.get("/readyz")[0] == 200:
                    return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            await asyncio.sleep(0.25)
        raise AssertionError(f"worker {self.name} not ready within {timeout_s}s:\n{self.tail()}")

    def assert_alive(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, (
            f"worker {self.name} exited with {self.proc and self.proc.returncode}:\n{self.tail()}"
        )

    def kill(self) -> None:
        """kill -9: no shutdown, no commit, no flush."""
        self.running = False
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop_signal(self) -> None:
        """SIGSTOP: the process freezes (a zombie once its session times out)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def continue_signal(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def terminate(self, timeout_s: float = 60) -> int:
        assert self.proc is not None
        self.running = False
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
