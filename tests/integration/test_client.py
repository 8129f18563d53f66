"""``streams.client.ScoreChanges`` against the real broker: committed changes only, in order,
offsets committed only for finished changes, resumable by group, filters committed too."""

from __future__ import annotations

from typing import Any

import pytest

from streams.client import ChangeFilter, ScoreChanged, ScoreChanges
from tests.integration.score_changes import changes, produce


def reader(bootstrap: str, topic: str, group: str, **kwargs: Any) -> ScoreChanges:
    return ScoreChanges(bootstrap, group, topic=topic, idle_timeout_s=3, commit_every=1, **kwargs)


def test_only_committed_changes_in_order(bootstrap: str, changes_topic: str) -> None:
    produce(
        bootstrap,
        changes_topic,
        [(changes(10), True), (changes(3, 100), False), (changes(5, 11), True)],
    )
    with reader(bootstrap, changes_topic, f"g-{changes_topic}") as stream:
        got = list(stream)
    assert [c.seq for c in got] == list(range(1, 16))  # the aborted 100..102 never appear
    assert all(isinstance(c, ScoreChanged) and c.offset >= 0 for c in got)


def test_a_failing_handler_leaves_its_change_uncommitted(
    bootstrap: str, changes_topic: str
) -> None:
    produce(bootstrap, changes_topic, [(changes(10), True)])
    group = f"g-{changes_topic}"
    handled: list[int] = []

    def handler(change: ScoreChanged) -> None:
        if change.seq == 7:
            raise RuntimeError("downstream is down")
        handled.append(change.seq)

    with (
        pytest.raises(RuntimeError, match="downstream is down"),
        reader(bootstrap, changes_topic, group) as stream,
    ):
        stream.run(handler)
    assert handled == [1, 2, 3, 4, 5, 6]
    with reader(
        bootstrap, changes_topic, group
    ) as stream:  # the same group resumes at the failed one
        assert stream.run(lambda c: handled.append(c.seq)) == 4
    assert handled == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


def test_break_redelivers_the_change_in_hand_unless_acked(
    bootstrap: str, changes_topic: str
) -> None:
    produce(bootstrap, changes_topic, [(changes(6), True)])
    group = f"g-{changes_topic}"
    with reader(bootstrap, changes_topic, group) as stream:
        for change in stream:
            if change.seq == 2:
                break  # not acknowledged: 2 comes again
    with reader(bootstrap, changes_topic, group) as stream:
        for change in stream:
            assert change.seq == 2
            if change.seq == 2:
                stream.ack()
                break
    with reader(bootstrap, changes_topic, group) as stream:
        assert [c.seq for c in stream] == [3, 4, 5, 6]


def test_filtered_out_changes_are_committed_too(bootstrap: str, changes_topic: str) -> None:
    produce(bootstrap, changes_topic, [(changes(4, score="fit"), True), (changes(4, 5), True)])
    group = f"g-{changes_topic}"
    where = ChangeFilter(scores=frozenset({"engagement"}))
    with reader(bootstrap, changes_topic, group, where=where) as stream:
        assert [c.seq for c in stream] == [5, 6, 7, 8]
        assert stream.skipped == 4
    with reader(bootstrap, changes_topic, group) as stream:
        assert list(stream) == []


def test_a_new_group_may_start_at_the_end(bootstrap: str, changes_topic: str) -> None:
    produce(bootstrap, changes_topic, [(changes(3), True)])
    with reader(bootstrap, changes_topic, f"g-{changes_topic}", start="latest") as stream:
        assert list(stream) == []
