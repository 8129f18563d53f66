"""Fixtures for tests against the real Kafka broker the project starts (``make broker-up``).

No test here skips when the broker is missing: an unreachable broker is an error, so a run without
Kafka can never pass silently.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

BOOTSTRAP = os.environ.get("LEADSCORE_TEST_BOOTSTRAP", "127.0.0.1:9092")


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
