"""Score changes written straight to a topic of the test's own (tests of the client and of
``leadscore watch``), each batch in a transaction that is committed or aborted."""

from __future__ import annotations

import uuid
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.wire.codec import Codec
from tests.commands.test_client import record


def produce(bootstrap: str, topic: str, batches: list[tuple[list[dict[str, Any]], bool]]) -> None:
    """Each batch in a transaction of its own, committed (True) or aborted (False)."""
    codec = Codec.load()
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"t-{topic}",
                         "log_level": 3})  # fmt: skip
    producer.init_transactions(30)
    for records, commit in batches:
        producer.begin_transaction()
        for rec in records:
            producer.produce(topic, codec.encode(codec.score_changed, rec), key=rec["entity_id"])
        producer.flush(30)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)


def changes(n: int, first: int = 1, **fields: Any) -> list[dict[str, Any]]:
    return [
        record(change_id=f"ch-{i}", seq=i, entity_id="c-1", **fields)
        for i in range(first, first + n)
    ]


def new_topic(bootstrap: str) -> str:
    """A one-partition topic of the test's own."""
    name = f"score-changed-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
    return name
