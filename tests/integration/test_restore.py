"""Restore of the entity stores from the state changelog, on the real broker and RocksDB.

100,000 entity states are written to the changelog topic (real states from the core, in the
layout the loop writes), a worker with an empty data directory rebuilds its stores from it, and
sampled entities answer over HTTP with exactly the scores written. The data directory is then
deleted and the worker rebuilds again; a warm restart (state kept) reads only the tail.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from streams.scoring import EntityKey, apply, dumps, load_plan, parse_input
from streams.settings import Settings
from streams.state.store import pack_value
from streams.wire import records
from streams.wire.routing import partition_for
from streams.wire.topics import ensure_topics, state_changelog_topic
from tests.integration.service import PLAN, Service

ENTITIES = 100_000
PARTITIONS = 4
T0 = 1_795_000_000_000


def templates() -> list[tuple[bytes, int]]:
    """Distinct real states: a contact that visited pricing k times (engagement 30 * k capped)."""
    plan = load_plan(PLAN.read_text(), source=str(PLAN))
    out = []
    for visits in range(1, 8):
        state = None
        key = EntityKey(None, "contact", "template")
        for i in range(visits):
            item = parse_input({"type": "page_visit", "event_id": f"v{i}", "tenant_id": None,
                                "occurred_at": T0 + i * 25 * 3_600_000, "contact_id": "template",
                                "deal_id": None, "url": "https://x.io/pricing"})  # fmt: skip
            state = apply(state, key, item, plan, now_ms=T0 + i * 25 * 3_600_000).state  # type: ignore[arg-type]
        assert state is not None
        out.append((pack_value(state.next_due_ms, dumps(state)), state.scores["engagement"].total))
    return out


def write_changelog(bootstrap: str, topic: str, states: list[tuple[bytes, int]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "log_level": 3})
    for i in range(ENTITIES):
        key = records.entity_key_bytes(EntityKey(None, "contact", f"r-{i}"))
        while True:
            try:
                producer.produce(topic, states[i % len(states)][0], key,
                                 partition_for(key, PARTITIONS))  # fmt: skip
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


def check_sample(worker: Any, states: list[tuple[bytes, int]]) -> None:
    for i in range(0, ENTITIES, ENTITIES // 40):
        status, body = worker.get(f"/scores/contact/r-{i}")
        assert status == 200, body
        assert body["scores"]["engagement"]["value"] == states[i % len(states)][1], i


def entities_gauge(worker: Any) -> float:
    found = re.search(r"^leadscore_entities_in_state (\S+)$", worker.get_text("/metrics"), re.M)
    assert found is not None
    return float(found.group(1))


async def test_rebuild_100k_entities_from_the_changelog(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    service = Service(bootstrap, unique, tmp_path, partitions=PARTITIONS)
    worker = service.worker("w1")
    settings = Settings(bootstrap_servers=bootstrap, app_id=service.app_id,
                        partitions=PARTITIONS, **_topic_settings(service))  # fmt: skip
    ensure_topics(settings)
    states = templates()
    assert len({total for _, total in states}) > 3  # the sample can tell states apart
    write_changelog(bootstrap, state_changelog_topic(settings), states)
    try:
        for phase in ("empty", "deleted", "warm"):
            if phase == "deleted":
                shutil.rmtree(tmp_path / "w1")  # every local byte of state is gone
            started = time.monotonic()
            worker.start()
            await worker.wait_ready(timeout_s=180)
            ready_s = time.monotonic() - started
            check_sample(worker, states)
            time.sleep(GAUGE_WAIT_S)
            assert entities_gauge(worker) == ENTITIES, phase
            assert worker.terminate() == 0
            print(f"{phase}: ready in {ready_s:.1f}s")
    finally:
        service.stop_all()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    assert state_changelog_topic(settings) in admin.list_topics(timeout=10).topics


GAUGE_WAIT_S = 5.5  # the loop refreshes its gauges every 5 s


def _topic_settings(service: Service) -> dict[str, str]:
    env = service.env("w1", 0)
    return {name[len("LEADSCORE_"):].lower(): value for name, value in env.items()
            if name.startswith("LEADSCORE_TOPIC_")}  # fmt: skip
