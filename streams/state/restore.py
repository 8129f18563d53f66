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
``tests/integration/test_cluster.py``). While a contradiction is being confirmed the partition
stays paused and is read again every ``CONFIRM_PAUSE_S`` from ``step``, between the loop's
polls: the other partitions are processed meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from streams.engine.kafka import Fatal, until_settled
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
    #: While the watermarks contradict the store: when to read them again, and when to believe
    #: them (None once the partition is being read from the changelog).
    check_at: float | None = None
    doubt_until: float = 0.0


def _outside(offset: int | None, low: int, high: int) -> bool:
    """Whether a store's changelog offset is one the log does not hold (None: a new store)."""
    return offset is not None and (offset < low or offset > high)


class RestoreError(Exception):
    """A changelog partition could not be read; the worker stops (exit 70) and is restarted."""


class Restorer:
    def __init__(self, consumer: Consumer, topic: str, timeout_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.consumer = consumer
        self.topic = topic
        self.timeout_s = timeout_s
        self.clock = clock
        self.active: dict[int, Restoring] = {}
        self.restored_records = 0

    def start(self, partition: int, store: PartitionStore) -> bool:
        """Begin restoring; True when there is nothing to read (the store is at the log's end)."""
        now = self.clock()
        job = Restoring(store, now)
        low, high = self._watermarks(partition)
        if _outside(store.changelog_offset, low, high):
            # (believed only if it holds: see the module's docstring)
            log.info("changelog %s[%d] holds offsets %d..%d but the store is at %d: reading "
                     "them again for %.0fs before rebuilding it", self.topic, partition, low, high,
                     store.changelog_offset, self.timeout_s)  # fmt: skip
            job.check_at, job.doubt_until = now + CONFIRM_PAUSE_S, now + self.timeout_s
            self.active[partition] = job
            return False
        return self._begin(partition, job, low, high)

    def _begin(self, partition: int, job: Restoring, low: int, high: int) -> bool:
        """Read the changelog from where the store is (from the start if it is wiped or new);
        True when there is nothing to read, and the partition is not kept."""
        start = job.store.changelog_offset
        if _outside(start, low, high):
            log.warning(
                "changelog %s[%d] holds offsets %d..%d but the store is at %d: rebuilding it",
                self.topic, partition, low, high, start,
            )  # fmt: skip
            job.store.wipe()
            start = None
        job.check_at = None
        if high == low or start == high:  # an empty log, or the store already has all of it
            self.active.pop(partition, None)
            return True
        job.next_offset = start or 0
        self.active[partition] = job
        begin = OFFSET_BEGINNING if start is None else start
        self.consumer.incremental_assign([TopicPartition(self.topic, partition, begin)])
        return False

    def _recheck(self, done: list[tuple[int, Restoring]]) -> None:
        """Read the watermarks again of the partitions whose store they contradicted; begin
        those they no longer contradict, and those they contradicted for ``timeout_s``."""
        now = self.clock()
        for p, job in list(self.active.items()):
            if job.check_at is None or job.check_at > now:
                continue
            low, high = self._watermarks(p)
            if _outside(job.store.changelog_offset, low, high) and now < job.doubt_until:
                job.check_at = now + CONFIRM_PAUSE_S
                continue
            if self._begin(p, job, low, high):
                done.append((p, job))

    def _watermarks(self, partition: int) -> tuple[int, int]:
        """The changelog partition's low and high watermarks; once more after a metadata
        refresh when they cannot be read: after a broker was killed, the restore consumer
        (which never subscribes) kept answering ``_UNKNOWN_PARTITION`` for its whole call
        timeout (``make test``, test_cluster.py), and the worker exited 70."""
        tp = TopicPartition(self.topic, partition)

        def read() -> tuple[int, int]:
            return until_settled(
                f"reading the watermarks of {self.topic}[{partition}]",
                lambda: self.consumer.get_watermark_offsets(tp, timeout=self.timeout_s),
                timeout_s=self.timeout_s,
            )

        try:
            return read()
        except Fatal as exc:
            log.warning("partition %d: %s: refreshing the restore consumer's metadata and "
                        "trying again", partition, exc)  # fmt: skip
            with contextlib.suppress(Exception):
                self.consumer.list_topics(self.topic, timeout=self.timeout_s)
        return read()

    def cancel(self, partitions: set[int]) -> None:
        gone = [p for p in partitions if p in self.active]
        reading = [TopicPartition(self.topic, p) for p in gone if self.active[p].check_at is None]
        if reading:
            self.consumer.incremental_unassign(reading)
        for p in gone:
            del self.active[p]

    def step(self, max_records: int, timeout_s: float) -> list[tuple[int, Restoring]]:
        """Read one batch; returns the partitions that reached the end of the changelog."""
        if not self.active:
            return []
        done: list[tuple[int, Restoring]] = []
        self._recheck(done)
        if all(job.check_at is not None for job in self.active.values()):
            return done  # nothing assigned to read (yet)
        messages: list[Any] = self.consumer.consume(max_records, timeout_s)
        ended: set[int] = set()
        for msg in messages:
            p = msg.partition()
            job = self.active.get(p)
            if job is None or job.check_at is not None:
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

    @property
    def reading(self) -> bool:
        """Whether a partition is being read from the changelog (not only confirmed)."""
        return any(job.check_at is None for job in self.active.values())
