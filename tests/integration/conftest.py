"""Fixtures for tests against the real Kafka broker the project starts (``make broker-up``).

No test here skips when the broker is missing: an unreachable broker is an error, so a run without
Kafka can never pass silently.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

BOOTSTRAP = os.environ.get("LEADSCORE_TEST_BOOTSTRAP", "127.0.0.1:9092")
KAFKA = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"


def _reachable(bootstrap: str) -> bool:
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def bootstrap() -> str:
    if not _reachable(BOOTSTRAP):
        pytest.fail(
            f"no Kafka broker at {BOOTSTRAP}: start it with `make broker-up` "
            "(or run the whole suite with `make test`, which starts it)",
            pytrace=False,
        )
    return BOOTSTRAP


@pytest.fixture
def unique() -> str:
    """A fresh suffix for topic and consumer-group names, so tests never share state."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
async def admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def create_topics(
    admin: AIOKafkaAdminClient, *names: str, partitions: int = 1, replication: int = 1
) -> None:
    await admin.create_topics(
        [
            NewTopic(name, num_partitions=partitions, replication_factor=replication)
            for name in names
        ]
    )


@pytest.fixture
def changes_topic(bootstrap: str) -> str:
    """A fresh one-partition topic for score changes written by the test."""
    from tests.integration.score_changes import new_topic

    return new_topic(bootstrap)


def kafka_sh(*args: str) -> str:
    """``deploy/kafka/kafka.sh args``: its output; the test fails with its errors if it fails."""
    done = subprocess.run(
        ["bash", str(KAFKA), *args], capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, f"kafka.sh {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def cluster() -> Iterator[str]:
    """The three-node cluster's bootstrap servers. Starts it with ``kafka.sh cluster-up`` unless
    it is already running, and stops it after the session only if it started it."""
    was_up = all(line.endswith(")") for line in kafka_sh("cluster-status").splitlines())
    kafka_sh("cluster-up")
    try:
        yield kafka_sh("bootstrap", "cluster").strip()
    finally:
        if not was_up:
            kafka_sh("cluster-down")


async def coordinator_of(bootstrap: str, *, transactional_id: str | None = None,
                         group: str | None = None) -> int | None:  # fmt: skip
    """The node id that coordinates a transactional id or a consumer group right now (a
    FindCoordinator request), or None when the cluster cannot say (say, while nodes are down)."""
    import asyncio

    from aiokafka.client import AIOKafkaClient, CoordinationType

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        async with asyncio.timeout(15):
            await client.bootstrap()
            if transactional_id is not None:
                node = await client.coordinator_lookup(CoordinationType.TRANSACTION,
                                                       transactional_id)  # fmt: skip
            else:
                node = await client.coordinator_lookup(CoordinationType.GROUP, group)
        return int(node)
    except Exception:  # any failure to find it: the caller picks a node another way
        return None
    finally:
        await client.close()
