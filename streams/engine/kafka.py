"""Kafka clients of the worker (confluent-kafka, librdkafka): their configs and error classes.

Checked against confluent-kafka 2.16.1 / librdkafka 2.16.0. librdkafka speaks the transaction
protocol from before KIP-890. Error classes of a transactional call (:func:`classify`):

- retriable: the same call again, a few times with a short backoff; a timed-out
  ``commit_transaction`` is resumed (called again) until the transaction's own deadline, since
  librdkafka refuses any other transactional call until it completes;
- abortable: abort the transaction, rewind, go on;
- lost (:class:`ProducerLost`): the producer is unusable (fatal, fenced, a commit whose outcome
  stays unknown): the loop recovers in the process with a new producer of the same
  ``transactional.id`` (``streams.engine.recovery``), whose ``init_transactions`` settles what
  the old one left open;
- exit (:class:`Fatal`): no new producer can help (authorisation, configuration): exit 70.

A call that never returns (confluentinc/librdkafka#5456) is abandoned on its thread
(:class:`Calls`) and its producer counts as lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException

from streams.settings import Settings

T = TypeVar("T")
log = logging.getLogger(__name__)


class ErrorKind(StrEnum):
    RETRIABLE = "retriable"  # try the same call again (a commit: resume it)
    ABORTABLE = "abortable"  # abort the transaction, rewind, go on
    FATAL = "fatal"  # the producer is lost (recover with a new one) or the process exits


class Fatal(Exception):
    """The worker cannot go on safely; the message says why. The process exits non-zero."""


class ProducerLost(Exception):
    """The transactional producer is unusable; ``error`` says why. The loop recovers with a new
    producer of the same ``transactional.id`` (``streams.engine.recovery``)."""

    def __init__(self, what: str, error: KafkaError | None, *, unknown_outcome: bool = False,
                 abandoned: bool = False) -> None:  # fmt: skip
        super().__init__(f"{what}: {error}" if error is not None else what)
        self.error = error
        #: a commit was under way: it may have committed (the stores may be behind the log)
        self.unknown_outcome = unknown_outcome
        #: a call of the producer never returned (:class:`Calls`): it must not be touched again
        self.abandoned = abandoned


#: Errors no new producer can help with: the process exits (``Fatal``).
EXIT_CODES = frozenset({
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.INVALID_TRANSACTION_TIMEOUT, KafkaError._UNSUPPORTED_FEATURE,
    KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT, KafkaError._NOT_CONFIGURED,
})  # fmt: skip
#: The producer's epoch was bumped: by a newer instance, or (usually) by the coordinator after
#: our own transaction outlived ``transaction.timeout.ms``.
FENCED_CODES = frozenset({
    KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
})  # fmt: skip


def lost_or_fatal(what: str, exc: KafkaException, *, unknown_outcome: bool = False) -> Exception:
    """The exception for a transactional error that is neither retriable nor abortable."""
    err = exc.args[0] if exc.args else None
    if not isinstance(err, KafkaError):
        return Fatal(f"{what} failed: {exc}")
    if err.code() in EXIT_CODES:
        return Fatal(f"{what} failed: {err}")
    return ProducerLost(f"{what} failed", err, unknown_outcome=unknown_outcome)


def classify(exc: BaseException) -> ErrorKind:
    """What to do about an exception raised by a transactional call."""
    if not isinstance(exc, KafkaException) or not exc.args:
        return ErrorKind.FATAL
    err = exc.args[0]
    if not isinstance(err, KafkaError):
        return ErrorKind.FATAL
    if err.fatal():
        return ErrorKind.FATAL
    if err.txn_requires_abort():
        # librdkafka failed the transaction before committing it (e.g. its records timed out
        # while a partition had no leader): the outcome is known, abort and redo
        return ErrorKind.ABORTABLE
    if err.retriable():
        return ErrorKind.RETRIABLE
    return ErrorKind.FATAL


class Hung(Exception):
    """A transactional call did not return within its limit; it is left running on its thread."""

    def __init__(self, what: str, limit_s: float) -> None:
        super().__init__(f"{what} did not return within {limit_s:.0f} s (a librdkafka call "
                         "that ignores its timeout, librdkafka#5456): abandoned")  # fmt: skip
        self.what = what


class Calls:
    """Runs each transactional call on a thread of its own, and waits for it at most
    ``limit_s``.

    librdkafka does not always honour the timeout of a transactional call:
    ``send_offsets_to_transaction`` can block for good when its coordinator request never times
    out (confluentinc/librdkafka#5456, open; seen here after a network black hole longer than
    the transaction timeout, and under ``make soak-cluster``, with librdkafka 2.16.0). A call
    still running ``2 x timeout + 5 s`` after it began raises :class:`Hung` on the loop's thread,
    which recovers like from any lost producer (``streams.engine.recovery``): the blocked thread
    and its producer are **abandoned**, never closed or freed (destroying a client a thread is
    inside of would block or crash), and the new producer's ``init_transactions`` fences them.
    Each abandoned call keeps a producer's threads and sockets; more than ``max_stuck`` of them
    blocked at once raise ``Fatal`` instead (exit 70: a restart frees them), as does a process
    that stops with any of them still blocked (``streams.bootstrap.run`` ends it with
    ``os._exit``, since the interpreter's exit could block on them).

    The calls run one at a time on one long-lived thread (a hand-over costs tens of
    microseconds, a new thread per call several times that); an abandoned thread ends when its
    call returns, and the next call starts a new one. Until :meth:`configure` is called, calls
    run on the caller's thread, unbounded.
    """

    def __init__(self) -> None:
        self.limit_s: float | None = None
        self.max_stuck = 3
        #: abandoned calls, (what, thread); the thread's frame holds the producer
        self.abandoned: list[tuple[str, threading.Thread]] = []
        self._jobs: queue.SimpleQueue[_Job | None] | None = None
        self._thread: threading.Thread | None = None

    def configure(self, timeout_s: float, *, limit_s: float | None = None,
                  max_stuck: int = 3) -> None:  # fmt: skip
        self.limit_s = limit_s if limit_s is not None else 2 * timeout_s + 5
        self.max_stuck = max_stuck

    def stuck(self) -> list[str]:
        """The abandoned calls still blocked."""
        self.abandoned = [(what, t) for what, t in self.abandoned if t.is_alive()]
        return [what for what, _ in self.abandoned]

    def run(self, what: str, fn: Callable[[], T]) -> T:
        limit = self.limit_s
        if limit is None:
            return fn()
        if self._jobs is None or self._thread is None:
            self._jobs = queue.SimpleQueue()
            self._thread = threading.Thread(target=_serve, args=(self._jobs,),
                                            name="kafka calls", daemon=True)  # fmt: skip
            self._thread.start()
        job = _Job(fn)
        self._jobs.put(job)
        if not job.done.wait(limit):
            self._jobs.put(None)  # its thread ends once the call returns, if ever
            self.abandoned.append((what, self._thread))
            self._jobs = self._thread = None
            stuck = self.stuck()
            hung = Hung(what, limit)
            log.error("%s; blocked calls abandoned so far and still blocked: %d", hung, len(stuck))
            if len(stuck) > self.max_stuck:
                raise Fatal(f"{hung}, and {len(stuck)} abandoned calls are still blocked "
                            f"(more than {self.max_stuck}): a restart frees them")  # fmt: skip
            raise hung
        if job.error is not None:
            raise job.error
        return job.value  # type: ignore[no-any-return]


class _Job:
    __slots__ = ("done", "error", "fn", "value")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn, self.done = fn, threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


def _serve(jobs: queue.SimpleQueue[_Job | None]) -> None:
    while (job := jobs.get()) is not None:
        try:
            job.value = job.fn()
        except BaseException as exc:  # re-raised on the caller's thread
            job.error = exc
        finally:
            job.done.set()
            del job  # the producer the call held is not kept alive by a waiting thread


#: The worker's transactional calls, each bounded (configured by ``streams.engine.loop``).
CALLS = Calls()


def call(what: str, fn: Callable[[], T], *, attempts: int = 5) -> T:
    """Run a transactional call; retry retriable errors, re-raise abortable ones; else
    ``ProducerLost`` (or ``Fatal`` for :data:`EXIT_CODES`).

    Each attempt runs bounded by :data:`CALLS`; one that does not return is abandoned:
    ``ProducerLost``."""
    for attempt in range(1, attempts + 1):
        try:
            return CALLS.run(what, fn)
        except Hung as hung:
            raise ProducerLost(str(hung), None, abandoned=True) from hung
        except KafkaException as exc:
            kind = classify(exc)
            if kind is ErrorKind.RETRIABLE and attempt < attempts:
                time.sleep(0.1 * attempt)
                continue
            if kind is ErrorKind.ABORTABLE:
                raise
            raise lost_or_fatal(what, exc) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def commit_call(fn: Callable[[], None], *, deadline_s: float,
                clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
    """``commit_transaction``: an abortable error is re-raised; a retriable one (a timeout: the
    commit goes on in the background) resumes the commit until ``deadline_s`` (monotonic), past
    which its outcome is unknown: ``ProducerLost``, as for any other error."""
    pause = 0.1
    while True:
        try:
            CALLS.run("commit_transaction", fn)
            return
        except Hung as hung:
            raise ProducerLost(str(hung), None, unknown_outcome=True, abandoned=True) from hung
        except KafkaException as exc:
            kind = classify(exc)
            if kind is ErrorKind.ABORTABLE:
                raise
            if kind is ErrorKind.RETRIABLE and clock() + pause < deadline_s:
                log.warning("commit_transaction: %s: resuming it", exc.args[0])
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
                continue
            raise lost_or_fatal("commit_transaction", exc, unknown_outcome=True) from exc


#: Errors of metadata-like calls (watermarks, committed offsets) that pass on their own: a
#: partition's leader moving or just elected (seen on a broker just started, with topics just
#: created), a coordinator loading. librdkafka does not flag these as retriable on such calls.
TRANSIENT = frozenset({
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.NOT_COORDINATOR,
    KafkaError.REQUEST_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._TRANSPORT,
    # A node killed while the call was in flight (its handle destroyed), or a client whose
    # metadata does not know the partition yet after nodes came back: seen in make soak-cluster
    # on a worker restoring right after a restart, which exited 70 again without these.
    KafkaError._DESTROY_BROKER, KafkaError._UNKNOWN_PARTITION,
})  # fmt: skip


def until_settled(what: str, fn: Callable[[], T], *, timeout_s: float) -> T:
    """Run a metadata-like call, retrying transient errors with backoff for up to ``timeout_s``;
    then, or on any other error, raise ``Fatal`` naming the call."""
    deadline = time.monotonic() + timeout_s
    pause = 0.05
    while True:
        try:
            return fn()
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            transient = isinstance(err, KafkaError) and (err.code() in TRANSIENT or err.retriable())
            if not transient or time.monotonic() + pause > deadline:
                raise Fatal(f"{what} failed: {err if err is not None else exc}") from exc
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def client_base_config(settings: Settings) -> dict[str, Any]:
    """What every Kafka client of the service shares: the brokers and how to authenticate."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.kafka_security_protocol,
        "log_level": 3,
    }
    if settings.kafka_sasl_mechanism is not None:
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username
        password = settings.kafka_sasl_password
        config["sasl.password"] = password.get_secret_value() if password is not None else None
    if settings.kafka_ssl_ca_location is not None:
        config["ssl.ca.location"] = str(settings.kafka_ssl_ca_location)
    return config


def consumer_config(settings: Settings, *, client_id: str) -> dict[str, Any]:
    return {
        **client_base_config(settings),
        "group.id": settings.app_id,
        # The HTTP API finds the owner of a partition from the group description: each member's
        # client id carries its advertised URL (see ``streams.api.http``).
        "client.id": client_id,
        "partition.assignment.strategy": "cooperative-sticky",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        **session_config(settings),
        "topic.metadata.refresh.interval.ms": 10_000,
        # A fetch waits at the broker for fetch.min.bytes (LEADSCORE_FETCH_MIN_BYTES), at most
        # 10 ms: records of a just-committed transaction are fetched soon. Above 1 byte, a
        # steady input no longer makes the consumer send a fetch per handful of records, each
        # read_committed over every input and entity-events partition (docs/performance.md).
        "fetch.wait.max.ms": 10,
        "fetch.min.bytes": settings.fetch_min_bytes,
        "enable.partition.eof": False,
        # prefetched records held while the loop is behind (librdkafka's default: 64 MiB)
        "queued.max.messages.kbytes": 16384,
    }


def session_config(settings: Settings) -> dict[str, Any]:
    """A group member's session timeout (``LEADSCORE_SESSION_TIMEOUT_S``) and heartbeat: the
    worker's consumer and the automation bridge's (librdkafka's default session is 45 s, the
    wait for a crashed member's partitions)."""
    session_ms = int(settings.session_timeout_s * 1000)
    return {"session.timeout.ms": session_ms, "heartbeat.interval.ms": max(1000, session_ms // 3)}


def producer_config(settings: Settings, *, transactional_id: str) -> dict[str, Any]:
    return {
        **client_base_config(settings),
        "transactional.id": transactional_id,
        "transaction.timeout.ms": settings.transaction_timeout_ms,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        # murmur2 as the Java client: an entity's items, state and changes stay in the partition
        # that ``streams.wire.routing.partition_for`` names (librdkafka's default is CRC32).
        "partitioner": "murmur2_random",
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 1_048_576,
    }


def restore_consumer_config(settings: Settings) -> dict[str, Any]:
    return {
        **client_base_config(settings),
        "group.id": f"{settings.app_id}-restore",  # never joined: partitions are assigned
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "fetch.max.bytes": 64 * 1024 * 1024,
        "fetch.wait.max.ms": 20,  # the end of a partition is reported sooner
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
    }
