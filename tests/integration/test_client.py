"""``streams.client.ScoreChanges`` against the real broker: committed changes only, in order,
offsets committed only for finished changes, resumable by group, filters committed too."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.client import ChangeFilter, ScoreChanged, ScoreChanges
from streams.codec import Codec
from tests.shell.test_client import record


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


@pytest.fixture
def topic(bootstrap: str) -> str:
    name = f"score-changed-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
    return name


def reader(bootstrap: str, topic: str, group: str, **kwargs: Any) -> ScoreChanges:
    return ScoreChanges(bootstrap, group, topic=topic, idle_timeout_s=3, commit_every=1, **kwargs)


def test_only_committed_changes_in_order(bootstrap: str, topic: str) -> None:
    produce(
        bootstrap, topic, [(changes(10), True), (changes(3, 100), False), (changes(5, 11), True)]
    )
    with reader(bootstrap, topic, f"g-{topic}") as stream:
        got = list(stream)
    assert [c.seq for c in got] == list(range(1, 16))  # the aborted 100..102 never appear
    assert all(isinstance(c, ScoreChanged) and c.offset >= 0 for c in got)


def test_a_failing_handler_leaves_its_change_uncommitted(bootstrap: str, topic: str) -> None:
    produce(bootstrap, topic, [(changes(10), True)])
    group = f"g-{topic}"
    handled: list[int] = []

    def handler(change: ScoreChanged) -> None:
        if change.seq == 7:
            raise RuntimeError("downstream is down")
        handled.append(change.seq)

    with (
        pytest.raises(RuntimeError, match="downstream is down"),
        reader(bootstrap, topic, group) as stream,
    ):
        stream.run(handler)
    assert handled == [1, 2, 3, 4, 5, 6]
    with reader(bootstrap, topic, group) as stream:  # the same group resumes at the failed one
        assert stream.run(lambda c: handled.append(c.seq)) == 4
    assert handled == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


def test_break_redelivers_the_change_in_hand_unless_acked(bootstrap: str, topic: str) -> None:
    produce(bootstrap, topic, [(changes(6), True)])
    group = f"g-{topic}"
    with reader(bootstrap, topic, group) as stream:
        for change in stream:
            if change.seq == 2:
                break  # not acknowledged: 2 comes again
    with reader(bootstrap, topic, group) as stream:
        for change in stream:
            assert change.seq == 2
            if change.seq == 2:
                stream.ack()
                break
    with reader(bootstrap, topic, group) as stream:
        assert [c.seq for c in stream] == [3, 4, 5, 6]


def test_filtered_out_changes_are_committed_too(bootstrap: str, topic: str) -> None:
    produce(bootstrap, topic, [(changes(4, score="fit"), True), (changes(4, 5), True)])
    group = f"g-{topic}"
    where = ChangeFilter(scores=frozenset({"engagement"}))
    with reader(bootstrap, topic, group, where=where) as stream:
        assert [c.seq for c in stream] == [5, 6, 7, 8]
        assert stream.skipped == 4
    with reader(bootstrap, topic, group) as stream:
        assert list(stream) == []


def test_a_new_group_may_start_at_the_end(bootstrap: str, topic: str) -> None:
    produce(bootstrap, topic, [(changes(3), True)])
    with reader(bootstrap, topic, f"g-{topic}", start="latest") as stream:
        assert list(stream) == []
