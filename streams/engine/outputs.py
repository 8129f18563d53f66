"""Everything the loop writes, into the open transaction: score changes, latest scores, member
updates, re-keyed items, plan statuses and dead letters (``streams.engine.transaction``)."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streams.engine.clients import Record
from streams.engine.entities import EntityStage
from streams.engine.shadows import SHADOW
from streams.engine.transaction import Transaction
from streams.metrics import Metrics
from streams.scoring import Forward, ScoreChange
from streams.state import history
from streams.state.cache import Entry
from streams.wire import records
from streams.wire.codec import FRAME_BYTES, Codec
from streams.wire.deadletter import DeadLetter
from streams.wire.publish import change_key, score_records

log = logging.getLogger(__name__)
#: Keyed records leave the choice of partition to the producer's partitioner, ``murmur2_random``
#: (librdkafka's murmur2, in C): the Java client's choice, which ``streams.wire.routing``
#: computes too for the readers that must know where an entity lives (the HTTP API, tools, tests).
PARTITIONER = -1


@dataclass(slots=True)
class Topics:
    """The output topics, and the partition counts of those written to a chosen partition."""

    entity: str
    plans: str
    score_changed: str
    scores: str
    dead_letters: str
    plan_status: str
    #: topic -> partitions (the entity-events and dead-letters topics; read at start)
    counts: dict[str, int]
    #: the changes of shadow plans (``streams.engine.shadows``)
    score_changed_shadow: str = "score-changed-shadow"


class Outputs:
    """Writes into ``txn`` (the open transaction; replaced on a recovery)."""

    def __init__(self, txn: Transaction, topics: Topics, codec: Codec, stage: EntityStage,
                 metrics: Metrics, clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.txn, self.topics, self.codec, self.stage = txn, topics, codec, stage
        self.metrics, self.clock = metrics, clock
        #: changes kept per score in the entity's history (``LEADSCORE_HISTORY_PER_SCORE``; 0: none)
        self.history_per_score = history.DEFAULT_PER_SCORE

    def publish(self, changes: Sequence[ScoreChange], emitted_ms: int, partition: int,
                entity_key: bytes) -> None:  # fmt: skip
        """Score changes of the entity ``entity_key`` (of entity-events ``partition``): to
        ``score-changed``, and each into the entity's score history (``streams.state.history``),
        both in the open transaction."""
        if not changes:
            return
        topic, codec, bound = self.topics.score_changed, self.codec, self.history_per_score
        header = 0 if codec.framing is None else FRAME_BYTES
        for change in changes:
            value = codec.encode_change(change, emitted_ms)
            self.txn.produce(topic, change_key(change), value, PARTITIONER)
            if bound:  # the same datum, unframed
                slot = history.slot_key(entity_key, change.score, change.seq, bound)
                self.txn.put(partition, slot, history.encode_datum(value[header:]))

    def publish_shadow(self, changes: Sequence[ScoreChange], emitted_ms: int) -> None:
        """A shadow plan's changes (``streams.engine.shadows``): to ``score-changed-shadow``
        only, in the open transaction (no history, no ``scores``)."""
        topic, codec = self.topics.score_changed_shadow, self.codec
        if changes:
            self.metrics.shadow_changes.inc(len(changes))
        for change in changes:
            self.txn.produce(topic, change_key(change), codec.encode_change(change, emitted_ms),
                             PARTITIONER)  # fmt: skip

    def forward(self, forwards: Sequence[Forward], now_ms: int, shadow: str | None = None) -> None:
        """Member updates to the partitions of their deals and accounts (``rollup``); a shadow
        plan's (its version) go to their shadow states."""
        if forwards:
            self.metrics.child(self.metrics.member_updates, "sent").inc(len(forwards))
        for target, update in forwards:
            value = records.encode_member(update, now_ms=now_ms, shadow=shadow)
            self.txn.produce(self.topics.entity, records.entity_key_bytes(target), value,
                             PARTITIONER)  # fmt: skip

    def entity_record(self, key: bytes | None, value: bytes, partition: int = PARTITIONER) -> None:
        """A record to the entity-events topic (a re-keyed item, or a plan record)."""
        self.txn.produce(self.topics.entity, key, value, partition)

    def plan_status(self, key: bytes | None, value: bytes) -> None:
        self.txn.produce(self.topics.plan_status, key, value, PARTITIONER)

    def score_records(self, key: bytes, entry: Entry) -> list[tuple[str, bytes, bytes, int]]:
        """The ``scores`` records of a committed entity's changed scores (the commit's step 1)."""
        if not entry.changed or key[:1] == SHADOW:  # a shadow plan's: never to ``scores``
            return []
        topic, codec = self.topics.scores, self.codec
        updated = int(self.clock() * 1000)
        entity = self.stage.entity_key(key)
        plan = self.stage.tenants.plan_for(entry.partition, entity.tenant_id)
        return [
            (topic, out_key, codec.encode_score(rec), PARTITIONER)
            for out_key, rec in score_records(
                plan, entity, entry.state, entry.changed, updated_at_ms=updated
            )
        ]

    def dead_letter(self, letter: DeadLetter) -> None:
        self.metrics.dead_letters.labels(letter.topic, letter.error_class).inc()
        self.metrics.events.labels(letter.topic, "dead_letter").inc()
        topic = self.topics.dead_letters
        partition = letter.partition % self.topics.counts.get(topic, 1)
        key, value, headers = letter.for_kafka()
        self.txn.produce(topic, key, value, partition, headers=headers)


def letter(rec: Record, error_class: str, reason: str) -> DeadLetter:
    return DeadLetter(rec.key, rec.value, rec.topic, rec.partition, rec.offset, error_class,
                      reason)  # fmt: skip


def unexpected(rec: Record, exc: BaseException) -> DeadLetter:
    """The dead letter of a record whose processing raised (logged)."""
    log.error("unexpected error on %s[%s]@%s: %r", rec.topic, rec.partition, rec.offset, exc)
    return letter(rec, f"Unexpected:{type(exc).__name__}", summary(exc))


def summary(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc, limit=6))[-1500:]
