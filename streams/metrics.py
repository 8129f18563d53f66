"""Prometheus metrics (docs/operations.md), all prefixed ``leadscore_``, in one registry per app.

A registry per app (not the process-global one) keeps two apps in one process, as in tests, apart.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from streams import __version__, native
from streams.scoring import ScoreChange, ScoreResult, Verdict

#: For ``leadscore_events_total``: one outcome per record and entity, the most telling of its
#: scores' verdicts (a page visit scored by one score and unmatched by two counts as scored).
_HEADLINE = (
    Verdict.SCORED, Verdict.ADJUSTED, Verdict.DEFERRED, Verdict.DUPLICATE, Verdict.CAPPED,
    Verdict.STATIC, Verdict.QUIET, Verdict.EXPIRED, Verdict.TOO_LATE, Verdict.BEFORE_RESET,
    Verdict.SUPERSEDED, Verdict.NO_VALUE, Verdict.UNKNOWN_SCORE, Verdict.NO_MATCH,
)  # fmt: skip


#: Rank of each verdict in ``_HEADLINE``, keyed by the member's identity: an enum member's own
#: hash is a Python call (``Enum.__hash__``), ``id`` is not, and the core's verdicts are members.
_RANK = {id(verdict): rank for rank, verdict in enumerate(_HEADLINE)}
_HEADLINE_VALUES = tuple(verdict.value for verdict in _HEADLINE)


def headline(results: tuple[ScoreResult, ...]) -> Verdict:
    """The first verdict of ``_HEADLINE`` among the results' (``NO_MATCH`` if none is)."""
    best = _rank(results)
    return _HEADLINE[best] if best < len(_HEADLINE) else Verdict.NO_MATCH


def _rank(results: tuple[ScoreResult, ...]) -> int:
    best = len(_HEADLINE)
    for result in results:
        rank = _RANK.get(id(result.verdict), best)
        if rank < best:
            best = rank
    return best


_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class BatchHistogram(Collector):
    """A label-less histogram filled a batch at a time: the loop counts its observations in a
    plain dict (value -> how many) and :meth:`add` puts them in the buckets once per batch, under
    one lock. A ``Histogram.observe`` per item takes a lock and walks the buckets; for the
    per-item latency that was about 0.7 µs of the worker's CPU per changed item. Scraped as a
    ``Histogram`` is, in the Prometheus text and the OpenMetrics formats: the same ``_bucket``
    (``le`` as ``floatToGoString``), ``_count``, ``_sum`` and ``_created`` samples."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...],
                 registry: CollectorRegistry) -> None:  # fmt: skip
        self.name, self.documentation = name, documentation
        self.bounds = (*(float(b) for b in buckets), float("inf"))
        go_string = cast(Callable[[float], str], floatToGoString)  # untyped in prometheus_client
        self.les = [go_string(bound) for bound in self.bounds]  # the buckets' ``le`` labels
        self.counts = [0] * len(self.bounds)  # per bucket, not cumulative
        self.sum = 0.0
        self.created = time.time()
        self.lock = threading.Lock()
        registry.register(self)

    def add(self, observed: dict[float, int]) -> None:
        """``observed``: how many times each value was observed (counted as ``observe`` would)."""
        bounds, counts = self.bounds, self.counts
        with self.lock:
            for value, times in observed.items():
                self.sum += value * times
                counts[bisect_left(bounds, value)] += times

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            counts, total = list(self.counts), self.sum
        cumulative = zip(self.les, accumulate(counts), strict=True)
        buckets = [(le, float(count)) for le, count in cumulative]
        family = HistogramMetricFamily(self.name, self.documentation, buckets=buckets,
                                       sum_value=total)  # fmt: skip
        family.samples.append(Sample(f"{self.name}_created", {}, self.created))  # as Histogram's
        yield family

    def describe(self) -> Iterator[Metric]:
        return self.collect()


@dataclass(frozen=True, slots=True)
class Metrics:
    registry: CollectorRegistry
    events: Counter
    points: Counter
    changes: Counter
    thresholds: Counter
    dead_letters: Counter
    member_updates: Counter
    plan: Info
    tenant_plans: Gauge
    shadow_plans: Gauge
    shadow_changes: Counter
    plan_updates: Counter
    processing_seconds: Histogram
    event_to_emit_seconds: BatchHistogram
    consumer_lag: Gauge
    entities: Gauge
    expiry_backlog: Gauge
    rebalances: Counter
    recovery_seconds: Gauge
    ready: Gauge
    transactions: Counter
    producer_recoveries: Counter
    commit_seconds: Histogram
    batch_size: Histogram
    states_written: Counter
    cache_lookups: Counter
    cache_evictions: Counter
    cache_entries: Gauge
    cache_bytes: Gauge
    rocksdb_memory_bytes: Gauge
    restored_records: Counter
    partitions_restoring: Gauge
    #: labelled children already looked up (``labels()`` validates and locks on every call)
    children: dict[tuple[int, tuple[str, ...]], Any] = field(default_factory=dict)
    #: counts of the batch being processed, by counter and labels: :meth:`flush` adds each once
    #: (an ``inc`` takes a lock; a batch of 500 items touches a few dozen label sets)
    pending: dict[tuple[Any, ...], float] = field(default_factory=dict)
    #: event-to-emit latencies of the batch in seconds: how many items had each (:meth:`flush`)
    latencies: dict[float, int] = field(default_factory=dict)

    def child(self, metric: Any, *values: str) -> Any:
        found = self.children.get((id(metric), values))
        if found is None:
            found = self.children[(id(metric), values)] = metric.labels(*values)
        return found

    @classmethod
    def create(cls) -> Metrics:
        r = CollectorRegistry(auto_describe=True)
        ProcessCollector(
            registry=r
        )  # process_resident_memory_bytes, process_cpu_seconds_total, ...
        Info(
            "leadscore_build", "Version and scoring-core build (compiled or pure)", registry=r
        ).info({"version": __version__, "core": native.loaded()})
        return cls(
            registry=r,
            events=Counter(
                "leadscore_events",
                "Input records by topic and outcome (scored, duplicate, quiet, capped, static, "
                "no_match, too_late, expired, deferred, dead_letter, ...)",
                ["topic", "outcome"],
                registry=r,
            ),
            points=Counter(
                "leadscore_points",
                "Points by score and rule; direction is awarded (positive) or deducted (negative)",
                ["score", "rule", "direction"],
                registry=r,
            ),
            changes=Counter(
                "leadscore_changes",
                "Score changes published, by cause",
                ["score", "cause"],
                registry=r,
            ),
            thresholds=Counter(
                "leadscore_threshold_crossings",
                "Threshold crossings by score, threshold and direction",
                ["score", "threshold", "direction"],
                registry=r,
            ),
            dead_letters=Counter(
                "leadscore_dead_letters",
                "Records sent to the dead-letter topic, by source topic and error class",
                ["topic", "reason"],
                registry=r,
            ),
            plan=Info(
                "leadscore_plan",
                "The default scoring plan (the settings' file): tenants without a plan of their "
                "own run it",
                registry=r,
            ),
            tenant_plans=Gauge(
                "leadscore_tenant_plan",
                "Partitions of this worker on which a tenant runs a plan version of its own "
                "(published on the plans topic)",
                ["tenant", "version"],
                registry=r,
            ),
            shadow_plans=Gauge(
                "leadscore_shadow_plan",
                "Partitions of this worker on which a tenant runs a shadow plan of that version "
                "(leadscore plan publish --shadow)",
                ["tenant", "version"],
                registry=r,
            ),
            shadow_changes=Counter(
                "leadscore_shadow_changes",
                "Changes of shadow plans published (to score-changed-shadow)",
                registry=r,
            ),
            plan_updates=Counter(
                "leadscore_plan_updates",
                "Records of the plans topic checked by this worker, by status (accepted, "
                "rejected, removed)",
                ["status"],
                registry=r,
            ),
            member_updates=Counter(
                "leadscore_member_updates",
                "Roll-up member updates: sent by contacts, received by deals and accounts",
                ["direction"],
                registry=r,
            ),
            processing_seconds=Histogram(
                "leadscore_processing_seconds",
                "Time to process one record in a stage",
                ["stage"],
                buckets=_LATENCY_BUCKETS,
                registry=r,
            ),
            event_to_emit_seconds=BatchHistogram(
                "leadscore_event_to_emit_seconds",
                "From the input record's append time to its score change being handed to Kafka",
                _LATENCY_BUCKETS,
                r,
            ),
            consumer_lag=Gauge(
                "leadscore_consumer_lag",
                "Records behind the log end, per assigned partition",
                ["topic", "partition"],
                registry=r,
            ),
            entities=Gauge(
                "leadscore_entities_in_state", "Entities held in this worker's state", registry=r
            ),
            expiry_backlog=Gauge(
                "leadscore_expiry_backlog",
                "Entities found due (expiries, deferred awards) at the last due check of the loop; "
                "each check applies up to 2,000 per partition",
                registry=r,
            ),
            rebalances=Counter(
                "leadscore_rebalances", "Consumer-group rebalances seen by this worker", registry=r
            ),
            recovery_seconds=Gauge(
                "leadscore_recovery_seconds",
                "Duration of the last state recovery from the changelog",
                registry=r,
            ),
            ready=Gauge("leadscore_ready", "1 once state recovery is complete, else 0", registry=r),
            transactions=Counter(
                "leadscore_transactions",
                "Kafka transactions of the processing loop, by result (committed, aborted)",
                ["result"],
                registry=r,
            ),
            producer_recoveries=Counter(
                "leadscore_producer_recoveries",
                "Transactional producers replaced in the process after a fatal producer error "
                "(docs/operations.md, Recovery in the process)",
                registry=r,
            ),
            commit_seconds=Histogram(
                "leadscore_commit_seconds",
                "Time of one commit: changelog records, offsets, commit_transaction, store write",
                buckets=_LATENCY_BUCKETS,
                registry=r,
            ),
            batch_size=Histogram(
                "leadscore_batch_records",
                "Records returned by one consume call of the processing loop",
                buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
                registry=r,
            ),
            states_written=Counter(
                "leadscore_states_written",
                "Entity states encoded and written (changelog and store) at commits",
                registry=r,
            ),
            cache_lookups=Counter(
                "leadscore_cache_lookups",
                "Entity-state cache lookups, by result (hit, miss)",
                ["result"],
                registry=r,
            ),
            cache_evictions=Counter(
                "leadscore_cache_evictions",
                "Clean entity states evicted from the cache (least recently used)",
                registry=r,
            ),
            cache_bytes=Gauge(
                "leadscore_cache_bytes",
                "Encoded size of the entity states held in the cache",
                registry=r,
            ),
            cache_entries=Gauge(
                "leadscore_cache_entries", "Decoded entity states held in the cache", registry=r
            ),
            rocksdb_memory_bytes=Gauge(
                "leadscore_rocksdb_memory_bytes",
                "RocksDB memory in the worker's shared block cache (blocks, index and filter "
                "blocks, memtables)",
                registry=r,
            ),
            restored_records=Counter(
                "leadscore_restored_records",
                "Changelog records applied to the local stores while restoring partitions",
                registry=r,
            ),
            partitions_restoring=Gauge(
                "leadscore_partitions_restoring",
                "Assigned entity partitions still restoring from the changelog",
                registry=r,
            ),
        )

    def add(self, metric: Counter, amount: float, *values: str) -> None:
        """``amount`` more for the child ``values`` of ``metric``, at the next :meth:`flush`."""
        key = (metric, *values)
        pending = self.pending
        pending[key] = pending.get(key, 0) + amount

    def flush(self) -> None:
        """Add the pending counts to their counters and the latencies to their histogram (the
        end of each stage's batch)."""
        if self.pending:
            child = self.child
            for (metric, *values), amount in self.pending.items():
                child(metric, *values).inc(amount)
            self.pending.clear()
        if self.latencies:
            self.event_to_emit_seconds.add(self.latencies)
            self.latencies.clear()

    def observe_changes(self, changes: tuple[ScoreChange, ...] | list[ScoreChange]) -> None:
        """Count changes by score and cause, and their threshold crossings (pending until
        :meth:`flush`)."""
        pending, counter = self.pending, self.changes
        for change in changes:
            key = (counter, change.score, change.cause.value)
            pending[key] = pending.get(key, 0) + 1
            if change.thresholds:
                for name, direction in change.thresholds:
                    self.add(self.thresholds, 1, change.score, name, direction)

    def observe_item(
        self,
        changes: tuple[ScoreChange, ...],
        results: tuple[ScoreResult, ...],
        source_topic: str,
        appended_ms: int,
        now_ms: int,
    ) -> None:
        """Count what one item did to one entity (the counts pending until :meth:`flush`)."""
        if changes:
            self.observe_changes(changes)
            latency = max(0, now_ms - appended_ms) / 1000
            latencies = self.latencies
            latencies[latency] = latencies.get(latency, 0) + 1
        if not results:
            return
        pending = self.pending
        best = _rank(results)
        outcome = _HEADLINE_VALUES[best] if best < len(_HEADLINE) else Verdict.NO_MATCH.value
        key = (self.events, source_topic, outcome)
        pending[key] = pending.get(key, 0) + 1
        counter = self.points
        for result in results:
            if result.awards:
                score = result.score
                for rule, points in result.awards:
                    if points >= 0:
                        slot = (counter, score, rule, "awarded")
                    else:
                        slot, points = (counter, score, rule, "deducted"), -points
                    pending[slot] = pending.get(slot, 0) + points
