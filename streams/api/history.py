"""Score history answers (``GET /scores/{entity}/{id}/history``, ``leadscore history``).

The last changes of each score come from the entity's store (``streams.state.history``: a ring
of ``LEADSCORE_HISTORY_PER_SCORE`` per score, committed with the state); older ones, on request,
from the ``score-changed`` topic: the one partition its records of that entity and score go to
(murmur2 of their key), read to its end with ``read_committed``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.engine.kafka import client_base_config
from streams.scoring import EntityKey, EntityState, Plan
from streams.settings import Settings
from streams.state import history
from streams.wire.codec import Codec
from streams.wire.publish import output_key
from streams.wire.reading import poll_message
from streams.wire.routing import partition_for

#: Most changes one answer lists.
MAX_N = 1000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def score_names(plan: Plan, kind: str) -> list[str]:
    """The names of an entity kind's scores and matrices (matrices have changes of their own)."""
    names = [s.name for s in plan.by_kind.get(kind, ())]
    return names + [m.name for m in plan.matrices_by_kind.get(kind, ())]


def current_seq(state: EntityState, name: str, kept: list[dict[str, Any]]) -> int:
    """The seq of a score's last change: its ledger's, else the highest the ring holds."""
    ledger = state.scores.get(name)
    if ledger is not None:
        return int(ledger.seq)
    return max((int(c["seq"]) for c in kept), default=0)


def answer(key: EntityKey, plan: Plan, state: EntityState, rows: Iterable[tuple[bytes, bytes]],
           entity_key: bytes, names: list[str], n: int, bound: int) -> dict[str, Any]:  # fmt: skip
    """The history answer: per score its last ``n`` changes, newest first, and ``older``: the
    seq below which ``score-changed`` holds the earlier ones (0: none are earlier)."""
    kept = history.by_score(rows, entity_key)
    scores = {}
    for name in names:
        seq = current_seq(state, name, kept.get(name, []))
        changes = history.latest(kept.get(name, []), seq, n)
        oldest = changes[-1]["seq"] if changes else seq + 1
        scores[name] = {"seq": seq, "changes": changes, "older": max(oldest - 1, 0)}
    return {"tenant_id": key.tenant_id, "entity": key.kind, "entity_id": key.entity_id,
            "plan_version": plan.version, "history_per_score": bound,
            "scores": scores}  # fmt: skip


def from_avro(record: dict[str, Any]) -> dict[str, Any]:
    """A decoded ``score-changed`` record in the history's shape (times as epoch millis)."""
    out = dict(record)
    for name in ("occurred_at", "emitted_at"):
        value = out.get(name)
        if isinstance(value, dt.datetime):
            out[name] = (value - _EPOCH) // dt.timedelta(milliseconds=1)
    return out


def read_older(settings: Settings, codec: Codec, key: EntityKey, score: str, *,
               before: int | None, n: int, timeout_s: float,
               topic: str | None = None) -> tuple[list[dict[str, Any]], str | None]:  # fmt: skip
    """The last ``n`` changes of one score with a seq below ``before`` (None: all), newest
    first, from ``score-changed`` (or ``topic``); and why the read is incomplete (None: it is
    complete)."""
    topic = topic or settings.topic_score_changed
    wanted = output_key(key.tenant_id, key.kind, key.entity_id, score)
    consumer = Consumer({**client_base_config(settings), "group.id": "leadscore-history",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_committed",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    found: deque[dict[str, Any]] = deque(maxlen=max(n, 0))
    try:
        metadata = consumer.list_topics(topic, timeout=max(1.0, min(10.0, timeout_s)))
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            return [], f"topic {topic} is not there"
        partition = partition_for(wanted, len(described.partitions))
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        pending, deadline = {partition}, time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                return list(reversed(found)), f"{topic}[{partition}] not read in {timeout_s:g} s"
            msg, fatal = poll_message(consumer, pending)
            if fatal is not None:
                return list(reversed(found)), fatal
            if msg is None or msg.key() != wanted:
                continue
            change = from_avro(codec.decode(codec.score_changed, msg.value() or b""))
            if before is None or change["seq"] < before:
                found.append(change)
        return list(reversed(found)), None
    finally:
        consumer.close()
