"""The benchmark's peer contender: our pure scoring core run by Quix Streams instead of Faust.

Run it with the interpreter of ``bench/quix_venv.sh`` (Quix Streams is not a project dependency)::

    .cache/bench/quix-venv/bin/python bench/peer_quix.py --bootstrap 127.0.0.1:9092 \
        --plan plans/reference.yaml --group G --state-dir DIR --guarantee at-least-once \
        --inputs VISITS,EMAILS,PURCHASES,DEAL_STAGES,PROFILES,ADJUSTMENTS \
        --score-changed OUT_CHANGED --scores OUT_SCORES --repartition-prefix PREFIX

How our pipeline maps onto Quix:

- **Ingest** (``streams/engine/ingest.py``): one ``StreamingDataFrame`` per input topic (raw bytes),
  ``apply(fan_out, expand=True)`` decodes the Avro value, validates it with ``parse_input`` and
  yields one record per entity that ``route`` names, stamped with the wall clock ``now_ms`` (as
  ``streams/wire/records.py`` does). Undecodable, invalid or unroutable records are counted and
  dropped (the benchmark needs no dead-letter topic). The six dataframes are ``concat``-ed.
- **Re-key** (our internal entity-events topic): ``group_by`` with the entity key (msgpack
  ``[account_id, kind, entity_id]``, the same bytes as ``records.entity_key_bytes``) writes to a
  Quix repartition topic named after ``--repartition-prefix``; each entity's state lives in
  exactly one of its partitions.
- **Entity stage** (``streams/engine/entities.py``): a stateful ``apply`` loads the entity's state
  from Quix's RocksDB store (``state.get_bytes``), re-parses the record, calls the core's
  ``apply`` with the record's ``now_ms`` and saves ``dumps(state)`` (``state.set_bytes``); Quix
  keeps the store's changelog topic.
- **Outputs** (``streams/engine/loop.py``, ``Engine._publish`` and the commit's ``scores`` records):
  every change goes to
  ``--score-changed`` and the latest values of the changed scores to ``--scores``, encoded
  exactly as ours; they are produced by Quix (``to_topic``), so ``exactly-once`` covers them.

Settings that differ from Quix's defaults: ``commit_interval`` is 1 s (Quix's default is 5 s;
ours commits every 100 ms) and ``consumer_poll_timeout`` is 0.1 s. ``concat`` makes Quix read all
topics "time-aligned" (buffered), and a buffered read waits for a full batch (10,000 messages)
or the poll timeout, so with Quix's default of 1 s every trickle of repartitioned records stalls
for up to a second and throughput drops by more than half.

Unlike ours, the peer does no time-driven work: due expiries and deferred awards are settled only
when the next item of the entity arrives, which ``apply`` does first anyway. Ours publishes
``scores`` records once per entity per commit; the peer publishes them with every change.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial, reduce
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple

import msgpack
from quixstreams import Application, State
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Row, SerializationContext, Serializer, Topic

from streams.scoring import (
    EntityKey,
    EntityState,
    Invalid,
    Plan,
    ScoreChange,
    apply,
    dumps,
    load_plan,
    loads,
    parse_input,
    route,
)
from streams.wire.codec import Codec, DecodeError, Source
from streams.wire.publish import change_key, score_records
from streams.wire.records import entity_key_bytes, entity_key_from_bytes, msgpack_default

log = logging.getLogger("peer_quix")

#: The one key of an entity's state in the Quix store (Quix prefixes it with the message key).
STATE_KEY = "s"


class Keyed(NamedTuple):
    """A record for the repartition topic: the entity key and the msgpack body."""

    key: bytes
    value: bytes


class Output(NamedTuple):
    """A record for an output topic, stamped with the instant it was built."""

    topic: Topic
    key: bytes
    value: bytes
    at_ms: int


class ValueBytes(Serializer):
    """Writes the ``value`` bytes of a :class:`Keyed` or :class:`Output` as they are.

    The key comes from the key setter of ``group_by`` and ``to_topic``.
    """

    def __call__(self, value: Keyed | Output, ctx: SerializationContext) -> bytes:
        return value.value


@dataclass(slots=True)
class Counts:
    read: int = 0
    dropped: int = 0
    routed: int = 0
    applied: int = 0
    changes: int = 0
    errors: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def on_error(self, exc: Exception, row: Row | None, logger: logging.Logger) -> bool:
        """Quix's ``on_processing_error``: never crash on a record; log the first few, go on."""
        self.errors += 1
        if self.errors <= 10:
            where = f"{row.topic}[{row.partition}]@{row.offset}" if row is not None else "?"
            logger.error("dropping a record that failed at %s: %r", where, exc)
        return True


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Scoring:
    """The work of each step, independent of how Quix wires the steps together."""

    plan: Plan
    codec: Codec
    changed_topic: Topic
    scores_topic: Topic
    counts: Counts

    def fan_out(self, source: Source, value: bytes | None) -> list[Keyed]:
        """Ingest: one record per entity the input routes to, or none if it is bad."""
        self.counts.read += 1
        try:
            record = self.codec.decode_input(source, value, fmt="avro")
        except DecodeError as exc:
            self.counts.drop(exc.error_class)
            return []
        item = parse_input(record)
        if isinstance(item, Invalid):
            self.counts.drop("InvalidRecord")
            return []
        keys = route(item)
        if not keys:
            self.counts.drop("Unroutable")
            return []
        body: bytes = msgpack.packb([record, wall_ms()], default=msgpack_default)
        self.counts.routed += len(keys)
        return [Keyed(entity_key_bytes(key), body) for key in keys]

    def score(
        self, value: bytes, key: bytes, _timestamp: int, _headers: Any, state: State
    ) -> list[Output]:
        """Entity stage: apply one routed item to its entity's state; say what to publish."""
        record, now_ms = msgpack.unpackb(value)
        item = parse_input(record)
        if isinstance(item, Invalid):  # only a plan/schema skew gets here
            self.counts.drop("InvalidRecord")
            return []
        entity = entity_key_from_bytes(key)
        blob = state.get_bytes(STATE_KEY)
        outcome = apply(loads(blob) if blob else None, entity, item, self.plan, now_ms=now_ms)
        outputs = self.outputs(entity, outcome.state, outcome.changes)
        state.set_bytes(STATE_KEY, dumps(outcome.state))
        self.counts.applied += 1
        self.counts.changes += len(outcome.changes)
        return outputs

    def outputs(
        self, entity: EntityKey, state: EntityState, changes: Sequence[ScoreChange]
    ) -> list[Output]:
        """What our worker publishes for an entity's changes, encoded the same way."""
        if not changes:
            return []
        now = wall_ms()
        codec = self.codec
        out = [
            Output(
                self.changed_topic,
                change_key(change),
                codec.encode_change(change, now),
                now,
            )
            for change in changes
        ]
        names = {change.score for change in changes}
        for out_key, rec in score_records(self.plan, entity, state, names, updated_at_ms=now):
            out.append(Output(self.scores_topic, out_key, codec.encode_score(rec), now))
        return out


def build_pipeline(app: Application, scoring: Scoring, args: argparse.Namespace) -> None:
    """inputs -> fan_out -> concat -> group_by(entity) -> stateful score -> two output topics."""
    branches = [
        input_frame(app, name).apply(partial(scoring.fan_out, source), expand=True)
        for name, source in zip(args.inputs, Source, strict=True)
    ]
    merged: StreamingDataFrame = reduce(StreamingDataFrame.concat, branches)
    entities = merged.group_by(
        attrgetter("key"),
        name=f"{args.repartition_prefix}entities",
        key_serializer="bytes",
        value_serializer=ValueBytes(),
        key_deserializer="bytes",
        value_deserializer="bytes",
    )
    outputs = entities.apply(scoring.score, stateful=True, metadata=True, expand=True)
    outputs = outputs.set_timestamp(lambda value, _key, _ts, _headers: value.at_ms)
    outputs.to_topic(lambda value, _key, _ts, _headers: value.topic, key=attrgetter("key"))


def input_frame(app: Application, name: str) -> StreamingDataFrame:
    return app.dataframe(app.topic(name, key_deserializer="bytes", value_deserializer="bytes"))


def output_topic(app: Application, name: str) -> Topic:
    return app.topic(name, key_serializer="bytes", value_serializer=ValueBytes())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--guarantee", choices=("at-least-once", "exactly-once"), required=True)
    parser.add_argument(
        "--inputs",
        required=True,
        type=lambda text: text.split(","),
        help="six input topics, in the order of streams.wire.codec.Source",
    )
    parser.add_argument("--score-changed", required=True)
    parser.add_argument("--scores", required=True)
    parser.add_argument("--repartition-prefix", required=True)
    parser.add_argument(
        "--commit-interval",
        type=float,
        default=1.0,
        help="seconds between checkpoints (default 1.0, as LEADSCORE_COMMIT_INTERVAL_S)",
    )
    parser.add_argument(
        "--poll-timeout",
        type=float,
        default=0.1,
        help="Quix's consumer_poll_timeout, seconds (default 0.1; Quix's own default is 1.0)",
    )
    args = parser.parse_args(argv)
    if len(args.inputs) != len(Source):
        parser.error(f"--inputs needs {len(Source)} topics, got {len(args.inputs)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    plan = load_plan(Path(args.plan).read_text(encoding="utf-8"), source=args.plan)
    counts = Counts()
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        processing_guarantee=args.guarantee,
        commit_interval=args.commit_interval,
        consumer_poll_timeout=args.poll_timeout,
        loglevel="INFO",
        on_processing_error=counts.on_error,
    )
    changed, scores = output_topic(app, args.score_changed), output_topic(app, args.scores)
    scoring = Scoring(plan, Codec.load(), changed, scores, counts)
    build_pipeline(app, scoring, args)
    started = time.monotonic()
    app.run()
    log.info(
        "stopped after %.1f s: read %d, dropped %d %s, routed %d, applied %d, changes %d, "
        "errors %d",
        time.monotonic() - started,
        counts.read,
        counts.dropped,
        counts.reasons,
        counts.routed,
        counts.applied,
        counts.changes,
        counts.errors,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
