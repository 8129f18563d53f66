"""One Kafka transaction of the loop: what it holds, and the steps of its commit, in order.

A transaction holds everything one stretch of processing produced: re-keyed items, score changes,
latest scores, dead letters, the changelog records of every state it changed, and the consumed
offsets. Its commit, written once here (as quix-streams' ``Checkpoint.commit`` and Kafka Streams'
``StreamsProducer``):

1. encode each dirty state once and produce it to the changelog (after the sealed segments of
   its growing parts that go with it, ``streams.scoring.segments``; with the ``scores`` records of
   the scores it changed), then the other values put (history slots); only each partition's
   last changelog record asks for its delivery report, whose offset the store keeps;
2. ``send_offsets_to_transaction`` with the offsets (last processed + 1, or the consumer's
   position past it, which also skips transaction markers) and a fresh
   ``consumer_group_metadata()``: a zombie's stale generation is refused here (KIP-447);
3. ``commit_transaction``;
4. write the dirty states and the changelog position to the stores, one WriteBatch each;
5. mark the cache clean.

Lifecycle (``Phase``):

=========  ========================  =========
from       event                     to
=========  ========================  =========
idle       first record or offset    open
open       commit steps 1-2          committing
committing commit_transaction ok     idle (committed; the next one opens on demand)
open/committing abortable error      idle (aborted: the loop rewinds and drops dirty states)
any        producer lost             idle (discarded: the loop recovers with a new producer)
=========  ========================  =========
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from streams.engine.kafka import ProducerLost, call, commit_call
from streams.scoring import EntityState
from streams.state.cache import Entry, StateCache
from streams.state.store import Write, pack_value


class Phase(StrEnum):
    IDLE = "idle"
    OPEN = "open"
    COMMITTING = "committing"


class TransactionalProducer(Protocol):
    """The part of ``confluent_kafka.Producer`` a transaction uses."""

    def begin_transaction(self) -> None: ...
    def produce(
        self,
        topic: str,
        value: bytes | None = ...,
        key: bytes | None = ...,
        partition: int = ...,
        *,
        on_delivery: Any = ...,
        headers: Any = ...,
    ) -> None: ...
    def send_offsets_to_transaction(
        self, positions: Any, group_metadata: Any, timeout: float
    ) -> None: ...
    def commit_transaction(self, timeout: float) -> None: ...
    def abort_transaction(self, timeout: float) -> None: ...
    def poll(self, timeout: float) -> int: ...


class StoreWriter(Protocol):
    def write(self, writes: Iterable[Write], changelog_offset: int | None) -> None: ...


#: Makes the consumed-offsets argument of ``send_offsets_to_transaction`` (TopicPartitions).
OffsetsFactory = Callable[[Mapping[tuple[str, int], int]], Any]


@dataclass(slots=True)
class Transaction:
    producer: TransactionalProducer
    changelog_topic: str
    timeout_s: float
    #: extra records for a committed entity: (topic, key, value, partition) per changed score
    score_records: Callable[[bytes, Entry], list[tuple[str, bytes, bytes, int]]]
    #: a dirty state's blob, and the records that go with it (its sealed segments:
    #: store key, value or None), ``streams.state.store.encode_entity``
    encode_state: Callable[[bytes, EntityState], tuple[bytes, list[tuple[bytes, bytes | None]]]]
    make_offsets: OffsetsFactory
    #: the producer's ``transaction.timeout.ms``, s: a timed-out commit is resumed until then
    transaction_timeout_s: float = 10.0
    phase: Phase = Phase.IDLE
    opened_at: float = 0.0
    records: int = 0
    #: (topic, partition) -> next offset to consume (last processed + 1)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    #: (topic, partition) -> first offset processed in this transaction (where an abort rewinds)
    firsts: dict[tuple[str, int], int] = field(default_factory=dict)
    #: changelog partition -> highest offset acknowledged in this transaction
    changelog_offsets: dict[int, int] = field(default_factory=dict)
    #: (partition, key) -> value of records that are not entity states (a partition's tenant
    #: plans): to the changelog and the store with the states
    extras: dict[tuple[int, bytes], bytes] = field(default_factory=dict)

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        """A value that is not an entity state, committed like one (the last put wins)."""
        self.ensure_open()
        self.extras[(partition, key)] = value

    def ensure_open(self) -> None:
        if self.phase is Phase.IDLE:
            call("begin_transaction", self.producer.begin_transaction)
            self.phase = Phase.OPEN
            self.opened_at = time.monotonic()
            self.records = 0

    def produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int,
                headers: list[tuple[str, bytes]] | None = None) -> None:  # fmt: skip
        if self.phase is Phase.IDLE:
            self.ensure_open()
        if headers is None:  # the common case, without building keyword arguments
            try:
                self.producer.produce(topic, value, key, partition)
                self.records += 1
                return
            except (BufferError, KafkaException):
                pass  # nothing was queued: ``_send`` tries again and sorts the error out
        self._send(topic, key, value, partition, headers=headers)
        self.records += 1

    def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int,
        *,
        headers: list[tuple[str, bytes]] | None = None,
        on_delivery: Any = None,
    ) -> None:
        extra: dict[str, Any] = {}
        if headers is not None:
            extra["headers"] = headers
        if on_delivery is not None:
            extra["on_delivery"] = on_delivery
        while True:
            try:
                self.producer.produce(topic, value, key, partition, **extra)
                return
            except BufferError:  # the client's queue is full: let it deliver, then go on
                try:
                    self.producer.poll(0.05)
                except (KafkaException, SystemError) as exc:  # a fatal error, served by poll
                    raise ProducerLost("poll", _error_of(exc)) from exc
            except KafkaException as exc:
                err = exc.args[0]
                if err.fatal() or err.code() == KafkaError._FATAL:  # the producer is dead
                    raise ProducerLost("produce", err) from exc
                # After a failed delivery librdkafka refuses further records of the transaction
                # with a plain _STATE error: the transaction must abort (then rewind, retry).
                if err.code() != KafkaError._STATE:
                    raise
                raise KafkaException(KafkaError(KafkaError._STATE, f"produce refused: "
                                                f"{exc.args[0].str()}", txn_requires_abort=True)) from exc  # noqa: E501  # fmt: skip

    def consumed(self, topic: str, partition: int, offset: int) -> None:
        """A record was processed: its offset goes with this transaction."""
        self.ensure_open()
        tp = (topic, partition)
        if tp not in self.firsts:
            self.firsts[tp] = offset
        self.offsets[tp] = offset + 1

    def due(self, now: float, interval_s: float, max_records: int) -> bool:
        return self.phase is Phase.OPEN and (
            now - self.opened_at >= interval_s or self.records >= max_records
        )

    def _on_changelog_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            p, off = msg.partition(), msg.offset()
            if off > self.changelog_offsets.get(p, -1):
                self.changelog_offsets[p] = off

    def commit(
        self,
        cache: StateCache,
        stores: Mapping[int, StoreWriter],
        group_metadata: Callable[[], Any],
        positions: Mapping[tuple[str, int], int] | None = None,
        *,
        drill_abort: bool = False,
    ) -> int:
        """The five steps of the module docstring; returns the number of states written.

        Raises ``KafkaException`` (abortable: the caller aborts), ``ProducerLost`` (the caller
        recovers) or ``streams.engine.kafka.Fatal``.
        """
        if self.phase is Phase.IDLE:
            if not cache.dirty:
                return 0
            self.ensure_open()  # time-driven work changed states without publishing anything
        dirty = list(cache.dirty.items())
        writes: dict[int, list[Write]] = {}
        changelog: list[tuple[bytes, bytes | None, int]] = []
        for key, entry in dirty:  # 1. latest scores, then the changelog
            state = entry.state
            due = state.next_due_ms
            blob, segments = self.encode_state(key, state)
            cache.resize(entry, len(blob) + state.seg_bytes)
            value = pack_value(due, blob)
            rows = writes.setdefault(entry.partition, [])
            for segment_key, segment in segments:  # (a busy entity's sealed segments)
                changelog.append((segment_key, segment, entry.partition))
                rows.append(Write(segment_key, segment, None, None, True))
            changelog.append((key, value, entry.partition))
            for topic, out_key, out_value, partition in self.score_records(key, entry):
                self._send(topic, out_key, out_value, partition)
            rows.append(Write(key, value, entry.stored_due_ms, due, entry.existed))
        for (partition, key), value in self.extras.items():
            changelog.append((key, value, partition))
            writes.setdefault(partition, []).append(Write(key, value, None, None, True))
        # Only each partition's last changelog record reports its delivery (a Python call per
        # report): a partition's records are appended in order, so its offset is the largest.
        last = {partition: i for i, (_, _, partition) in enumerate(changelog)}
        report = self._on_changelog_delivery
        for i, (key, record, partition) in enumerate(changelog):
            self._send(self.changelog_topic, key, record, partition,
                       on_delivery=report if last[partition] == i else None)  # fmt: skip
        self.phase = Phase.COMMITTING
        offsets = {**self.offsets, **(positions or {})}
        if offsets:  # 2. offsets, with the group's current generation (the same on a retry)
            metadata = group_metadata()
            call("send_offsets_to_transaction", lambda: self.producer.send_offsets_to_transaction(
                self.make_offsets(offsets), metadata, self.timeout_s))  # fmt: skip
        if drill_abort:  # a fault drill: fail between the produce calls and the commit
            raise KafkaException(KafkaError(KafkaError._STATE, "fault drill: abort before the "
                                            "commit", txn_requires_abort=True))  # fmt: skip
        # 3. a timed-out commit is resumed until the transaction's own deadline
        deadline = self.opened_at + self.transaction_timeout_s + self.timeout_s
        commit_call(lambda: self.producer.commit_transaction(self.timeout_s), deadline_s=deadline)
        lost = None
        try:
            self.producer.poll(0)  # serve the remaining delivery reports (changelog offsets)
        except (KafkaException, SystemError) as exc:  # committed, but the producer died since
            lost = ProducerLost("poll after a commit", _error_of(exc))  # recovered after step 5
        for partition, rows in writes.items():  # 4. committed: now the stores
            off = self.changelog_offsets.get(partition)
            store = stores.get(partition)
            if store is not None:
                store.write(rows, None if off is None else off + 1)
        cache.committed()  # 5.
        self._reset()
        if lost is not None:
            raise lost
        return len(dirty)

    def abort(self, cache: StateCache) -> dict[tuple[str, int], int]:
        """Abort; returns where each partition must be rewound to (first uncommitted offset).

        A failed ``abort_transaction`` raises before anything is dropped (``ProducerLost``):
        the caller recovers, and :meth:`discard` drops the transaction's work."""
        if self.phase is not Phase.IDLE:
            call("abort_transaction", lambda: self.producer.abort_transaction(self.timeout_s))
        return self.discard(cache)

    def discard(self, cache: StateCache) -> dict[tuple[str, int], int]:
        """Drop the transaction's work without a Kafka call (its producer is lost: the broker,
        or the next producer's ``init_transactions``, aborts it); returns where each partition
        must be rewound to."""
        rewind = dict(self.firsts)
        cache.abort()
        self._reset()
        return rewind

    def _reset(self) -> None:
        self.phase = Phase.IDLE
        self.records = 0
        self.offsets.clear()
        self.firsts.clear()
        self.changelog_offsets.clear()
        self.extras.clear()


def _error_of(exc: BaseException) -> KafkaError | None:
    """The ``KafkaError`` of a ``poll`` that failed; a ``SystemError`` (the binding served a
    delivery report while its fatal error was pending) carries it as its cause, if at all."""
    for candidate in (exc, exc.__cause__, exc.__context__):
        if isinstance(candidate, KafkaException) and candidate.args:
            err = candidate.args[0]
            if isinstance(err, KafkaError):
                return err
    return None
