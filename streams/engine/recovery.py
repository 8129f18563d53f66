"""Recovery in the process from a lost transactional producer (docs/operations.md, Recovery in
the process).

A producer is lost when librdkafka raises a fatal error (fenced, an invalid transaction state),
a commit's outcome stays unknown past its deadline, or an abort fails. ``_FENCED`` is usually our
own transaction outliving ``transaction.timeout.ms`` (the coordinator aborts it and bumps the
epoch), seldom a newer instance. The loop then (``Loop.recover``):

1. decides whether to go on (:meth:`Recovery.admit`): not when a fresh producer, before its first
   commit, is fenced within its transaction's timeout (a live twin with the same
   ``transactional.id``), nor past ``LEADSCORE_PRODUCER_RECOVERIES_MAX`` failed recoveries in a
   row within :data:`WINDOW_S` (recoveries and attempts at a new producer with no commit between
   them: a producer that committed proves the last recovery worked, and the run starts again):
   those exit 70 (``Fatal``);
2. drops the transaction's work without a Kafka call (dirty states, tenant plans switched, the
   histories read for recomputes);
3. disposes of the old producer (:meth:`Recovery.dispose`) and makes a new one with the same
   ``transactional.id`` (:meth:`Recovery.renew`), whose ``init_transactions`` fences the old
   epoch and settles its open transaction (a commit that reached the coordinator stays
   committed);
4. after a commit of unknown outcome, restores every held store from the changelog again;
5. rewinds every assigned partition to its committed offset, read afresh (:meth:`Recovery.rewind`).

The consumer keeps its group membership throughout.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections import deque
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from streams.engine.clients import ConsumerLike, ProducerLike
from streams.engine.kafka import (
    CALLS,
    EXIT_CODES,
    FENCED_CODES,
    Fatal,
    Hung,
    ProducerLost,
    until_settled,
)

log = logging.getLogger(__name__)
#: The window of ``LEADSCORE_PRODUCER_RECOVERIES_MAX``, s.
WINDOW_S = 600.0
#: A fenced transaction younger than this share of ``transaction.timeout.ms`` was not timed out
#: by the coordinator: someone else bumped the epoch.
YOUNG = 0.8
#: Longest pause between two attempts at a new producer, s.
MAX_BACKOFF_S = 8.0


class Recovery:
    def __init__(
        self,
        make_producer: Callable[[], ProducerLike],
        *,
        max_recoveries: int,
        call_timeout_s: float,
        transaction_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.make_producer, self.max_recoveries = make_producer, max_recoveries
        self.call_timeout_s, self.transaction_timeout_s = call_timeout_s, transaction_timeout_s
        self.clock, self.sleep = clock, sleep
        #: when each recovery (or failed attempt at a new producer) of the current run began,
        #: within the window; a commit by the producer ends the run
        self.times: deque[float] = deque()
        #: commits by the current producer (0: fresh)
        self.commits = 0
        self.recoveries = 0
        #: producers a call of which never returned: kept referenced, never closed
        #: (``streams.engine.kafka.Calls``)
        self.abandoned: list[ProducerLike] = []

    def admit(self, lost: ProducerLost, transaction_age_s: float | None) -> None:
        """Raise ``Fatal`` unless a recovery may go on (see the module docstring)."""
        code = lost.error.code() if lost.error is not None else None
        if code in EXIT_CODES:
            raise Fatal(f"{lost}: no new producer can help")
        young = transaction_age_s is not None and (
            transaction_age_s < YOUNG * self.transaction_timeout_s
        )
        if code in FENCED_CODES and self.commits == 0 and young:
            raise Fatal(
                f"{lost}: fenced before the first commit of a fresh producer, within the "
                "transaction timeout: another live instance has this transactional.id "
                "(LEADSCORE_INSTANCE_ID or a copied data directory)"
            )
        if self.commits:  # the lost producer had committed: the last recovery worked
            self.times.clear()
        self._count(str(lost))

    def _count(self, why: str) -> None:
        now = self.clock()
        self.times.append(now)
        while self.times and self.times[0] < now - WINDOW_S:
            self.times.popleft()
        if len(self.times) > self.max_recoveries:
            raise Fatal(f"{why}: {len(self.times)} producer recoveries within {WINDOW_S:.0f} s "
                        f"(LEADSCORE_PRODUCER_RECOVERIES_MAX={self.max_recoveries})")  # fmt: skip

    def first(self, producer: ProducerLike) -> None:
        """Initialise the first producer (``init_transactions``)."""
        try:
            self._init(producer)
        except Hung as hung:
            raise Fatal(str(hung)) from hung
        self.commits = 0

    def renew(self, old: ProducerLike, *, abort: bool, abandon: bool = False) -> ProducerLike:
        """Dispose of ``old`` (or abandon it: a call of it never returned), then a new producer
        with the same ``transactional.id``; failed attempts count as recoveries and back off
        (1, 2, 4, 8 s)."""
        self.recoveries += 1
        self.commits = 0  # failed attempts below add to this run of recoveries
        if abandon:
            self.abandoned.append(old)
        else:
            self.dispose(old, abort=abort)
        pause = 1.0
        while True:
            producer = None
            try:
                producer = self.make_producer()
                self._init(producer)
                self.commits = 0
                return producer
            except (KafkaException, Hung) as exc:
                err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
                if isinstance(err, KafkaError) and err.code() in EXIT_CODES:
                    raise Fatal(f"init_transactions failed: {err}") from exc
                log.warning("a new producer failed (%s): trying again in %.0f s", err, pause)
                if isinstance(exc, Hung):
                    self.abandoned.append(producer)  # type: ignore[arg-type]
                elif producer is not None:
                    self.dispose(producer, abort=False)
                self._count(f"init_transactions failed: {err}")
                self.sleep(pause)
                pause = min(pause * 2, MAX_BACKOFF_S)

    def _init(self, producer: ProducerLike) -> None:
        """``init_transactions``, resumed on retriable errors for up to 2 x the transaction
        timeout + the call timeout (the old epoch's transaction completes or aborts first)."""
        deadline = self.clock() + 2 * self.transaction_timeout_s + self.call_timeout_s
        while True:
            try:
                CALLS.run("init_transactions",
                          lambda: producer.init_transactions(self.call_timeout_s))  # fmt: skip
                return
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                retriable = isinstance(err, KafkaError) and err.retriable() and not err.fatal()
                if not retriable or self.clock() > deadline:
                    raise
                self.sleep(0.1)

    def dispose(self, producer: ProducerLike, *, abort: bool) -> None:
        """Best effort, every error ignored: abort its transaction (when it may still answer),
        drop what it queued, wait briefly for requests in flight, close it (its background
        retries stop before the new producer starts)."""
        brief = min(5.0, self.call_timeout_s)
        steps: list[Callable[[], object]] = [
            lambda: producer.purge(in_queue=True, in_flight=True, blocking=False),
            lambda: producer.flush(brief),
            producer.close,  # confluent-kafka warns when its own abort fails: expected here
        ]
        if abort:
            steps.insert(0, lambda: producer.abort_transaction(brief))

        def run() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for step in steps:
                    # anything: a dead producer's flush can even raise SystemError (a delivery
                    # callback served while its fatal error is pending in the binding)
                    with contextlib.suppress(Exception):
                        step()

        try:
            CALLS.run("disposing of the old producer", run)
        except Hung:  # left blocked on its thread; the new producer fences it all the same
            self.abandoned.append(producer)

    def rewind(self, consumer: ConsumerLike) -> dict[tuple[str, int], int]:
        """Seek every assigned partition to its committed offset (read afresh, each partition's
        error retried); the beginning where none is committed (``auto.offset.reset``). Returns
        the committed offsets."""
        assigned = consumer.assignment()
        if not assigned:
            return {}
        found = until_settled("reading the committed offsets after a recovery",
                              lambda: _committed(consumer, assigned, self.call_timeout_s),
                              timeout_s=self.call_timeout_s)  # fmt: skip
        positions: dict[tuple[str, int], int] = {}
        for tp in found:
            if tp.offset >= 0:
                positions[(tp.topic, tp.partition)] = tp.offset
            target = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            try:
                consumer.seek(TopicPartition(tp.topic, tp.partition, target))
            except KafkaException as exc:  # going on from the old position would lose records
                raise Fatal(f"rewinding {tp.topic}[{tp.partition}] after a recovery failed: "
                            f"{exc.args[0] if exc.args else exc}") from exc  # fmt: skip
        return positions


def _committed(consumer: ConsumerLike, assigned: list[TopicPartition],
               timeout_s: float) -> list[TopicPartition]:  # fmt: skip
    """``committed``, raising the first per-partition error (a partition's offset -1001 with an
    error is unknown, not "none committed")."""
    found = consumer.committed(assigned, timeout=timeout_s)
    for tp in found:
        if tp.error is not None:
            raise KafkaException(tp.error)
    return found
