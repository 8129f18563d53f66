"""Restore: bring a partition's store up to the end of its changelog before it is processed.

A partition assigned to this worker is paused on the main consumer and restored here, on a
consumer of its own (assigned, never joined to a group, ``read_committed``), a batch at a time
between the loop's polls, so other partitions keep being processed. It is restored when the
restore consumer reports the end of the partition (``enable.partition.eof``): with
``read_committed`` that is the last stable offset, so nothing of an open transaction is restored.

The store keeps the next changelog offset to read; if the log no longer holds it (retention or
compaction moved the start past it), or the store claims more than the log holds (the topic was
recreated), the store is wiped and rebuilt from the start; but only when every read of the
watermarks for ``timeout_s`` says so: a cluster that had all its nodes down answered 0..0 for
a changelog that held 593 records just after it came back, and wiping the store on that one
answer lost its states (and their scores' seqs started again: changes published twice; seen in
``tests/integration/test_cluster.py``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from streams.engine.kafka import until_settled
from streams.state.store import PartitionStore

log = logging.getLogger(__name__)

#: Between two reads of watermarks that contradict the store (see the module's docstring).
CONFIRM_PAUSE_S = 0.5


@dataclass(slots=True)
class Restoring:
    store: PartitionStore
    started: float
    records: int = 0
    pending: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    next_offset: int = 0


class RestoreError(Exception):
    """A changelog partition could not be read; the worker stops (exit 70) and is restarted."""


class Restorer:
    def __init__(self, consumer: Consumer, topic: str, timeout_s: float) -> None:
        self.consumer = consumer
        self.topic = topic
        self.timeout_s = timeout_s
        self.active: dict[int, Restoring] = {}
        self.restored_records = 0

    def start(self, partition: int, store: PartitionStore) -> bool:
        """Begin restoring; True when there is nothing to read (the store is at the log's end)."""
        low, high = self._watermarks(partition)
        start = store.changelog_offset
        deadline = time.monotonic() + self.timeout_s
        while start is not None and (start < low or start > high) and time.monotonic() < deadline:
            time.sleep(CONFIRM_PAUSE_S)  # (believed only if it holds: see the module's docstring)
            low, high = self._watermarks(partition)
        if start is not None and (start < low or start > high):
            log.warning(
                "changelog %s[%d] holds offsets %d..%d but the store is at %d: rebuilding it",
                self.topic, partition, low, high, start,
            )  # fmt: skip
            store.wipe()
            start = None
        if high == low or start == high:  # an empty log, or the store already has all of it
            return True
        begin = OFFSET_BEGINNING if start is None else start
        self.active[partition] = Restoring(store, time.monotonic(), next_offset=start or 0)
        self.consumer.incremental_assign([TopicPartition(self.topic, partition, begin)])
        return False

    def _watermarks(self, partition: int) -> tuple[int, int]:
        tp = TopicPartition(self.topic, partition)
        low, high = until_settled(
            f"reading the watermarks of {self.topic}[{partition}]",
            lambda: self.consumer.get_watermark_offsets(tp, timeout=self.timeout_s),
            timeout_s=self.timeout_s,
        )
        return low, high

    def cancel(self, partitions: set[int]) -> None:
        gone = [p for p in partitions if p in self.active]
        if gone:
            self.consumer.incremental_unassign([TopicPartition(self.topic, p) for p in gone])
            for p in gone:
                del self.active[p]

    def step(self, max_records: int, timeout_s: float) -> list[tuple[int, Restoring]]:
        """Read one batch; returns the partitions that reached the end of the changelog."""
        if not self.active:
            return []
        done: list[tuple[int, Restoring]] = []
        messages: list[Any] = self.consumer.consume(max_records, timeout_s)
        ended: set[int] = set()
        for msg in messages:
            p = msg.partition()
            job = self.active.get(p)
            if job is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    ended.add(p)
                    job.next_offset = max(job.next_offset, msg.offset())
                    continue
                raise RestoreError(f"restoring {self.topic}[{p}] failed: {err}")
            job.pending.append((msg.key(), msg.value()))
            job.next_offset = msg.offset() + 1
        for p, job in self.active.items():
            if job.pending or p in ended:
                job.records += len(job.pending)
                self.restored_records += len(job.pending)
                job.store.apply_changelog(job.pending, job.next_offset)
                job.pending.clear()
        for p in ended:
            done.append((p, self.active[p]))
        self.cancel(ended)
        return done

    @property
    def partitions(self) -> set[int]:
        return set(self.active)
