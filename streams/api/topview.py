"""Top lists (docs/plans.md): the highest-scoring entities of a tenant, from a local view of the
compacted ``scores`` topic.

Every worker (and ``leadscore top``) reads the whole ``scores`` topic with a consumer of its own
(partitions assigned, no group, ``read_committed``) into a :class:`TopView`: per tenant, entity
kind and score, the latest value and tier of each entity, ranked by value (highest first) and
then entity id, so the same records give the same list on every worker. The topic holds the
latest value of every entity and score, so a view that has read it to its end knows the same as
the state stores, however the entities are spread over the workers.

Memory is bounded per tenant: at most ``LEADSCORE_TOP_ENTRIES_PER_TENANT`` entries (entity and
score; about 270 bytes each) are kept. Past that, each new entry pushes out the lowest-ranked
entry of its own list. An entity pushed out comes back with its next change; until then it
still has the value it was pushed out with, so an answer is exact when its last entry is above
the highest value ever pushed out of the list, and says ``complete: false`` otherwise.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from sortedcontainers import SortedList  # type: ignore[import-untyped]

from streams.engine.kafka import client_base_config
from streams.scoring import Plan
from streams.settings import Settings
from streams.wire.codec import Codec
from streams.wire.reading import consume_values

log = logging.getLogger(__name__)

ENTITY_KINDS = ("contact", "deal", "account")
ListKey = tuple[str | None, str, str]  # tenant, entity kind, score
#: Most entries one answer lists.
MAX_N = 1000


@dataclass(frozen=True, slots=True)
class Entry:
    rank: int
    entity_id: str
    value: int
    tier: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "entity_id": self.entity_id, "value": self.value,
                "tier": self.tier}  # fmt: skip


@dataclass(slots=True)
class _Ranked:
    """One list: entity id -> (value, tier), and the ids ordered by (-value, id)."""

    values: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    order: SortedList = field(default_factory=SortedList)
    #: the highest value pushed out (None: nothing was): a pushed-out entity still has it, or
    #: it changed and came back, so every entity that is out is at or below it
    ceiling: int | None = None


class TopView:
    """The latest value per (tenant, kind, score, entity), ranked; thread-safe."""

    def __init__(self, per_tenant: int) -> None:
        self.per_tenant = per_tenant
        self._lists: dict[ListKey, _Ranked] = {}
        self._sizes: dict[str | None, int] = {}
        self._lock = threading.Lock()

    def update(self, tenant: str | None, kind: str, score: str, entity_id: str, value: int,
               tier: str | None) -> None:  # fmt: skip
        with self._lock:
            ranked = self._lists.get((tenant, kind, score))
            if ranked is None:
                ranked = self._lists[(tenant, kind, score)] = _Ranked()
            old = ranked.values.get(entity_id)
            if old is not None:
                ranked.order.remove((-old[0], entity_id))
            else:
                self._sizes[tenant] = self._sizes.get(tenant, 0) + 1
            ranked.values[entity_id] = (value, tier)
            ranked.order.add((-value, entity_id))
            if self._sizes[tenant] > self.per_tenant:
                negative, lowest = ranked.order.pop()
                del ranked.values[lowest]
                if ranked.ceiling is None or -negative > ranked.ceiling:
                    ranked.ceiling = -negative
                self._sizes[tenant] -= 1

    def top(self, tenant: str | None, kind: str, score: str, n: int,
            tier: str | None = None) -> tuple[list[Entry], bool]:  # fmt: skip
        """The ``n`` highest entries (only those in ``tier`` if given), and whether they are
        exact: nothing was pushed out of the list, or the last entry shown is above every
        entry that was (``n`` entries, the last one's value above the ceiling)."""
        with self._lock:
            ranked = self._lists.get((tenant, kind, score))
            if ranked is None:
                return [], True
            out: list[Entry] = []
            for rank, (negative, entity_id) in enumerate(ranked.order, 1):
                entry_tier = ranked.values[entity_id][1]
                if tier is not None and entry_tier != tier:
                    continue
                out.append(Entry(rank, entity_id, -negative, entry_tier))
                if len(out) >= n:
                    break
            ceiling = ranked.ceiling
            return out, ceiling is None or (len(out) == n and out[-1].value > ceiling)

    def entries(self, tenant: str | None) -> int:
        with self._lock:
            return self._sizes.get(tenant, 0)


class TopFeed(threading.Thread):
    """Reads the ``scores`` topic from its beginning into a :class:`TopView`, then follows it.

    ``caught_up`` is set once every partition has been read to the end it had when first
    reached; ``until_end`` stops the thread there (``leadscore top``).
    """

    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        view: TopView,
        decode: Callable[[bytes], tuple[str | None, str, str, str, int, str | None]],
        *,
        until_end: bool = False,
    ) -> None:
        super().__init__(name="top-view", daemon=True)
        self.config = {
            **config,
            "group.id": "leadscore-top-view",  # never joined: partitions are assigned
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
        self.topic, self.view, self.decode, self.until_end = topic, view, decode, until_end
        self.caught_up = threading.Event()
        self.failed: str | None = None
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        consumer = Consumer(self.config)
        try:
            partitions = self._partitions(consumer)
            if partitions is None:
                return
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            pending = set(partitions)
            if not pending:
                self.caught_up.set()
            while not self._halt.is_set():
                if self.until_end and self.caught_up.is_set():
                    return
                values, fatal = consume_values(consumer, pending)
                for value in values:  # before caught_up: what it promises is in the view
                    self._apply(value)
                if fatal is not None:
                    self.failed = fatal
                    return
                if not pending:
                    self.caught_up.set()
        finally:
            consumer.close()

    def _partitions(self, consumer: Consumer) -> list[int] | None:
        while not self._halt.is_set():
            try:
                metadata = consumer.list_topics(self.topic, timeout=5)
            except Exception as exc:  # the brokers are not reachable yet: try again
                log.warning("top view: cannot read the topics: %s", exc)
                continue
            topic = metadata.topics.get(self.topic)
            if topic is not None and topic.error is None:
                return sorted(topic.partitions)
            log.warning("top view: topic %s is not there yet", self.topic)
            self._halt.wait(2)
        return None

    def _apply(self, value: bytes) -> None:
        try:
            tenant, kind, entity_id, score, total, tier = self.decode(value)
            self.view.update(tenant, kind, score, entity_id, total, tier)
        except Exception as exc:  # one bad record must not stop the view
            log.warning("top view: skipping a record of %s: %r", self.topic, exc)


def top_feed_of(settings: Settings, codec: Codec, *, until_end: bool = False) -> TopFeed:
    """The feed of the settings' ``scores`` topic into a new view."""
    view = TopView(settings.top_entries_per_tenant)
    return TopFeed(client_base_config(settings), settings.topic_scores, view,
                   codec.decode_top, until_end=until_end)  # fmt: skip


def top_answer(view: TopView | None, entity: str, query: dict[str, list[str]],
               tenant: str | None, plan: Plan) -> dict[str, Any]:  # fmt: skip
    """The ``/top/{entity}`` answer from ``view`` (None: a tenant asking for another tenant,
    which has nothing to show it), or ``{"error": ...}`` for a bad request."""
    if entity not in ENTITY_KINDS:
        return {"error": f"entity must be one of {ENTITY_KINDS}"}
    names = [s.name for s in plan.by_kind.get(entity, ())]
    name = (query.get("score") or [""])[0]
    if name not in names:
        return {"error": f"score must be one of the plan's {entity} scores: {', '.join(names)}"}
    raw_n = (query.get("n") or ["10"])[0]
    if not raw_n.isdigit() or not 1 <= int(raw_n) <= MAX_N:
        return {"error": f"n must be a whole number from 1 to {MAX_N} (got {raw_n!r})"}
    tier = (query.get("tier") or [""])[0] or None
    tiers = [t.name for t in plan.by_name[name].tiers]
    if tier is not None and tier not in tiers:
        known = ", ".join(tiers) or "none: the score has no tiers"
        return {"error": f"tier must be one of the score's tiers ({known})"}
    entries, complete = view.top(tenant, entity, name, int(raw_n), tier) if view else ([], True)
    return {"tenant": tenant, "entity": entity, "score": name, "tier": tier, "n": int(raw_n),
            "complete": complete, "entries": [e.to_dict() for e in entries]}  # fmt: skip


def cmd_top(args: Any) -> int:
    """``leadscore top``: read the ``scores`` topic to its end, then answer as ``GET /top``."""
    import json
    import sys

    from streams.engine.planfile import load_plan_file
    from streams.errors import LeadscoreError
    from streams.settings import load_settings
    from streams.wire.registry import registered_codec

    try:
        settings = load_settings()
        if args.plan is not None:  # a tenant's own plan (``plan publish``)
            settings = settings.model_copy(update={"plan_path": Path(args.plan)})
        plan = load_plan_file(settings)
        codec = registered_codec(settings, outputs=False)
    except LeadscoreError as exc:
        print(f"leadscore top: {exc}", file=sys.stderr)
        return 2
    query = {"score": [args.score], "n": [str(args.n)], "tier": [args.tier or ""]}
    answer = top_answer(TopView(settings.top_entries_per_tenant), args.entity, query,
                        args.tenant, plan)  # fmt: skip
    if "error" in answer:
        print(f"leadscore top: {answer['error']}", file=sys.stderr)
        return 2
    feed = top_feed_of(settings, codec, until_end=True)
    feed.start()
    feed.join(args.timeout)
    if feed.failed is not None or not feed.caught_up.is_set():
        feed.stop()
        why = feed.failed or f"the topic was not read to its end in {args.timeout:g} s"
        print(f"leadscore top: {settings.topic_scores}: {why}", file=sys.stderr)
        return 1
    answer = top_answer(feed.view, args.entity, query, args.tenant, plan)
    if args.json:
        print(json.dumps(answer))
        return 0
    tenant = args.tenant if args.tenant is not None else "default tenant"
    print(f"top {answer['n']} {args.entity}s of {tenant} by {args.score}"
          + (f" in tier {args.tier}" if args.tier else "")
          + ("" if answer["complete"] else " (incomplete: entries were pushed out)"))  # fmt: skip
    for entry in answer["entries"]:
        tier = f"  {entry['tier']}" if entry["tier"] is not None else ""
        print(f"{entry['rank']:>5}  {entry['value']:>8}  {entry['entity_id']}{tier}")
    return 0
