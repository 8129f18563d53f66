"""Reading ``score-changed`` from another Python service: typed records, filters, safe offsets.

Public API (``__all__``)::

    from streams.client import ChangeFilter, ScoreChanged, ScoreChanges

    with ScoreChanges("kafka:9092", group_id="sales-handoff",
                      where=ChangeFilter(scores={"engagement"}, thresholds={"mql"})) as changes:
        for change in changes:            # blocks; Ctrl-C or changes.close() ends it
            if change.crossed("mql", "up"):
                hand_to_sales(change.tenant_id, change.entity_id, key=change.change_id)

- It reads with ``isolation.level=read_committed``: only changes of committed transactions, each
  exactly once in the topic, in ``seq`` order per entity and score.
- **Offsets**: the offset of a change is committed only once the caller has finished with it:
  when it asks for the next change or calls :meth:`ScoreChanges.ack`; with
  :meth:`ScoreChanges.run`, when the handler returns. Leaving the loop with ``break`` (or an
  exception) leaves the change in hand unfinished, so the group gets it again. Commits are
  batched (every ``commit_every`` changes or ``commit_interval_s``). A crash of the caller
  re-delivers the changes it had not finished (at least once); ``change_id`` is the idempotency
  key to drop those it had acted on.
- **Resuming**: a consumer group resumes from its committed offsets; a new group starts from the
  beginning of the topic (``start="earliest"``) or from its end (``start="latest"``).
- **Filters** (:class:`ChangeFilter`) run in this process; changes they drop are committed like
  handled ones.
- Values are plain Avro (``schemas/score_changed.avsc``) or, with ``registry_url``, the registry
  wire format (magic byte, schema id, datum): the writer schema is fetched by id (cached) and
  resolved against ours; while the registry is unreachable the iteration waits and retries.
- **Tenant**: ``ScoreChanged.tenant_id`` (the Avro field ``tenant_id``, formerly ``account_id``:
  records written before the rename decode the same; ``account_id`` stays as a deprecated
  property, and ``ChangeFilter(accounts=...)`` as a deprecated name of ``tenants``; see
  docs/migration.md).

No framework: one confluent-kafka consumer, one thread (the caller's).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streams.wire.codec import Codec, DecodeError, RegistryError

__all__ = ["ChangeFilter", "ClientError", "ScoreChanged", "ScoreChanges", "ThresholdCrossing"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
Direction = Literal["up", "down"]


class ClientError(Exception):
    """Kafka refused the client (unknown topic, authentication, a fatal error): the reason."""


@dataclass(frozen=True, slots=True)
class ThresholdCrossing:
    name: str
    direction: Direction


@dataclass(frozen=True, slots=True)
class ScoreChanged:
    """One change of one score of one entity, as published on ``score-changed``
    (docs/consumers.md)."""

    change_id: str
    #: the tenant (None: the default tenant); formerly ``account_id``
    tenant_id: str | None
    entity: str
    entity_id: str
    score: str
    seq: int
    old_value: int
    new_value: int
    delta: int
    cause: str
    rule_ids: tuple[str, ...]
    source_event_id: str | None
    occurred_at: dt.datetime
    emitted_at: dt.datetime
    thresholds: tuple[ThresholdCrossing, ...]
    plan_version: str
    #: the score's tier before and after (None when the score has no tiers)
    tier_before: str | None = None
    tier_after: str | None = None
    #: where it was read: (partition, offset) of the ``score-changed`` topic
    partition: int = -1
    offset: int = -1

    @classmethod
    def from_record(
        cls, record: Mapping[str, Any], *, partition: int = -1, offset: int = -1
    ) -> ScoreChanged:
        """From a decoded Avro record (timestamps as datetimes or epoch milliseconds). The tenant
        is ``tenant_id``, or ``account_id`` (its old name) in a record decoded without our schema.
        """
        return cls(
            change_id=record["change_id"],
            tenant_id=record["tenant_id"] if "tenant_id" in record else record["account_id"],
            entity=record["entity"],
            entity_id=record["entity_id"],
            score=record["score"],
            seq=record["seq"],
            old_value=record["old_value"],
            new_value=record["new_value"],
            delta=record["delta"],
            cause=record["cause"],
            rule_ids=tuple(record["rule_ids"]),
            source_event_id=record["source_event_id"],
            occurred_at=_instant(record["occurred_at"]),
            emitted_at=_instant(record["emitted_at"]),
            thresholds=tuple(
                ThresholdCrossing(t["name"], t["direction"]) for t in record["thresholds"]
            ),
            plan_version=record["plan_version"],
            tier_before=record.get("tier_before"),
            tier_after=record.get("tier_after"),
            partition=partition,
            offset=offset,
        )

    @property
    def account_id(self) -> str | None:
        """Deprecated: the old name of :attr:`tenant_id` (docs/migration.md)."""
        warnings.warn("ScoreChanged.account_id is deprecated: use tenant_id", DeprecationWarning,
                      stacklevel=2)  # fmt: skip
        return self.tenant_id

    def crossed(self, name: str | None = None, direction: Direction | None = None) -> bool:
        """Did this change cross threshold ``name`` (any if None) in ``direction`` (either)?"""
        return any(
            (name is None or t.name == name) and (direction is None or t.direction == direction)
            for t in self.thresholds
        )


def _instant(value: dt.datetime | int) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return _EPOCH + dt.timedelta(milliseconds=value)


@dataclass(frozen=True, slots=True)
class ChangeFilter:
    """Which changes to deliver; an empty set means any. All given conditions must hold.

    ``tenants`` holds tenant ids, with ``None`` for the default tenant (``accounts``, its old
    name, is deprecated and still accepted, not with a different ``tenants``). ``tiers`` keeps
    changes whose score is in one of those tiers after the change (``causes={"tier"}`` keeps only
    the records of tier changes). ``thresholds`` keeps changes that crossed one of the named
    thresholds (in ``directions`` if given); ``crossings_only`` keeps only changes that crossed
    any threshold.
    """

    tenants: frozenset[str | None] = frozenset()
    entities: frozenset[str] = frozenset()
    entity_ids: frozenset[str] = frozenset()
    scores: frozenset[str] = frozenset()
    causes: frozenset[str] = frozenset()
    thresholds: frozenset[str] = frozenset()
    directions: frozenset[str] = frozenset()
    tiers: frozenset[str] = frozenset()
    crossings_only: bool = False
    #: deprecated: the old name of ``tenants``
    accounts: frozenset[str | None] = frozenset()

    def __post_init__(self) -> None:
        for name in ("tenants", "entities", "entity_ids", "scores", "causes", "thresholds",
                     "directions", "tiers", "accounts"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (set, frozenset, list, tuple)):
                raise TypeError(f"ChangeFilter.{name} must be a set of strings, got {value!r}")
            object.__setattr__(self, name, frozenset(value))
        if self.accounts:
            warnings.warn("ChangeFilter(accounts=...) is deprecated: use tenants=...",
                          DeprecationWarning, stacklevel=3)  # fmt: skip
            if self.tenants and self.tenants != self.accounts:
                raise ValueError("ChangeFilter: tenants and accounts (its deprecated old name) "
                                 "differ: give tenants only")  # fmt: skip
            object.__setattr__(self, "tenants", self.accounts)
        unknown = set(self.directions) - {"up", "down"}
        if unknown:
            raise ValueError(f"ChangeFilter.directions: {sorted(unknown)} (use 'up', 'down')")

    def matches(self, change: ScoreChanged) -> bool:
        if self.tenants and change.tenant_id not in self.tenants:
            return False
        if self.entities and change.entity not in self.entities:
            return False
        if self.entity_ids and change.entity_id not in self.entity_ids:
            return False
        if self.scores and change.score not in self.scores:
            return False
        if self.causes and change.cause not in self.causes:
            return False
        if self.tiers and change.tier_after not in self.tiers:
            return False
        crossings = [
            t
            for t in change.thresholds
            if (not self.thresholds or t.name in self.thresholds)
            and (not self.directions or t.direction in self.directions)
        ]
        wants_crossing = self.crossings_only or self.thresholds or self.directions
        return bool(crossings) or not wants_crossing


@dataclass
class ScoreChanges:
    """An iterator over ``score-changed`` for one consumer group (see the module docstring).

    ``config`` adds or overrides librdkafka settings (security, client id, ...);
    ``idle_timeout_s`` ends the iteration after that long without a record (None: never).
    """

    bootstrap_servers: str
    group_id: str
    topic: str = "score-changed"
    where: ChangeFilter = field(default_factory=ChangeFilter)
    start: Literal["earliest", "latest"] = "earliest"
    registry_url: str | None = None
    registry_auth: tuple[str, str] | None = None  #: (user, password) for HTTP basic auth
    registry_timeout_s: float = 5.0
    config: Mapping[str, Any] = field(default_factory=dict)
    idle_timeout_s: float | None = None
    commit_every: int = 500
    #: False: never commit (a viewer such as ``leadscore watch``); the group keeps no offsets
    commit_offsets: bool = True
    commit_interval_s: float = 1.0
    skipped: int = 0  #: records dropped by the filter
    undecodable: int = 0  #: records that are not a score change (counted, committed, skipped)
    _consumer: Consumer | None = field(default=None, init=False, repr=False)
    _codec: Codec | None = field(default=None, init=False, repr=False)
    _done: dict[int, int] = field(default_factory=dict, init=False, repr=False)
    _pending: int = field(default=0, init=False, repr=False)
    _last_commit: float = field(default=0.0, init=False, repr=False)
    _current: tuple[int, int] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', got {self.start!r}")
        if self.commit_every < 1 or self.commit_interval_s <= 0:
            raise ValueError("commit_every must be >= 1 and commit_interval_s > 0")

    # ----- life cycle ---------------------------------------------------------------------------

    def open(self) -> ScoreChanges:
        if self._consumer is not None:
            return self
        self._codec = Codec.load()
        if self.registry_url is not None:  # the wire format: writer schemas fetched by id
            from streams.wire.registry import HttpRegistry

            user, password = self.registry_auth or (None, None)
            registry = HttpRegistry(self.registry_url, timeout_s=self.registry_timeout_s,
                                    username=user, password=password)  # fmt: skip
            self._codec = self._codec.registered(registry, {})
        self._consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "group.id": self.group_id,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": self.start,
                "partition.assignment.strategy": "cooperative-sticky",
                "log_level": 3,
                **self.config,
            }
        )
        self._consumer.subscribe([self.topic], on_revoke=self._on_revoke)
        self._last_commit = time.monotonic()
        return self

    def close(self) -> None:
        """Commit what the caller finished, leave the group."""
        if self._consumer is None:
            return
        try:
            self.commit()
        finally:
            self._consumer.close()
            self._consumer = None

    def __enter__(self) -> ScoreChanges:
        return self.open()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----- offsets ------------------------------------------------------------------------------

    def commit(self) -> None:
        """Commit the offsets of every change the caller has finished with (synchronously)."""
        if self._consumer is None or not self._done or not self.commit_offsets:
            self._done.clear()
            self._pending = 0
            return
        offsets = [TopicPartition(self.topic, p, o + 1) for p, o in sorted(self._done.items())]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            error = exc.args[0]
            # a partition revoked meanwhile: its new owner re-delivers from the last commit
            if not (isinstance(error, KafkaError) and error.code() in _REBALANCING):
                raise ClientError(f"commit failed: {error}") from None
        self._done.clear()
        self._pending = 0
        self._last_commit = time.monotonic()

    def ack(self) -> None:
        """The change in hand is finished: its offset may be committed. Asking for the next change
        does this; call it before leaving the loop with ``break``, or the change is delivered
        again (to this group, after a restart or rebalance)."""
        if self._current is not None:
            self._finished(*self._current)
            self._current = None

    def run(
        self, handler: Callable[[ScoreChanged], object], *, max_changes: int | None = None
    ) -> int:
        """Call ``handler`` for each change; its offset is committed only after it returns.

        An exception from the handler propagates and leaves that change uncommitted. Returns the
        number handled when ``max_changes`` is reached or the iteration ends (``idle_timeout_s``).
        """
        handled = 0
        for change in self:
            handler(change)
            self.ack()
            handled += 1
            if max_changes is not None and handled >= max_changes:
                break
        self.commit()
        return handled

    def _finished(self, partition: int, offset: int) -> None:
        self._done[partition] = offset
        self._pending += 1
        if (
            self._pending >= self.commit_every
            or time.monotonic() - self._last_commit >= self.commit_interval_s
        ):
            self.commit()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Before partitions move away, commit what was finished in them."""
        revoked = {tp.partition for tp in partitions}
        if not self.commit_offsets:
            return
        finished = [TopicPartition(self.topic, p, o + 1) for p, o in self._done.items()
                    if p in revoked]  # fmt: skip
        if finished:
            # if the group moved on already, the new owner re-delivers from the last commit
            with contextlib.suppress(KafkaException):
                consumer.commit(offsets=finished, asynchronous=False)
        for p in revoked:
            self._done.pop(p, None)

    def _decode(self, codec: Codec, value: bytes) -> dict[str, Any]:
        """Decode one value; while the registry cannot be asked for a writer schema, wait and
        ask again (the record is fine: skipping it would lose it)."""
        while True:
            try:
                return codec.decode(codec.score_changed, value)
            except RegistryError:
                if self._consumer is None:
                    raise
                time.sleep(1.0)

    # ----- iteration ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[ScoreChanged]:
        self.open()
        consumer, codec = self._consumer, self._codec
        if consumer is None or codec is None:  # closed by a handler before the first record
            return
        idle_since = time.monotonic()
        while self._consumer is not None:
            msg = consumer.poll(0.2)
            if msg is None:
                if self._pending and time.monotonic() - self._last_commit >= self.commit_interval_s:
                    self.commit()
                if (
                    self.idle_timeout_s is not None
                    and time.monotonic() - idle_since >= self.idle_timeout_s
                ):
                    return
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal() or error.code() in _FATAL_FOR_CLIENT:
                    raise ClientError(f"reading {self.topic}: {error}")
                continue  # transient; librdkafka retries
            idle_since = time.monotonic()
            partition, offset = msg.partition() or 0, msg.offset() or 0
            try:
                record = self._decode(codec, msg.value() or b"")
                change = ScoreChanged.from_record(record, partition=partition, offset=offset)
            except (DecodeError, KeyError, TypeError, ValueError):
                self.undecodable += 1
                self._finished(partition, offset)
                continue
            if not self.where.matches(change):
                self.skipped += 1
                self._finished(partition, offset)
                continue
            self._current = (partition, offset)
            yield change  # the caller handles it; we resume when it asks for the next one
            self.ack()


_REBALANCING = frozenset(
    {
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError._NO_OFFSET,
    }
)
_FATAL_FOR_CLIENT = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError._AUTHENTICATION,
    }
)
