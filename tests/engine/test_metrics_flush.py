"""The score stage's counters are added once per label set per batch (``Metrics.add`` and
``flush``): the same totals as one ``inc`` per item, seen after the batch's flush; an item's
headline outcome is the first of the order's verdicts among its results."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from streams import metrics
from streams.metrics import Metrics
from streams.scoring.outcomes import Cause, ScoreResult, Verdict


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_pending_counts_reach_their_counters_at_the_flush_summed_per_label_set() -> None:
    metrics = Metrics.create()
    for points in (5, -3, 5):
        metrics.add(metrics.points, abs(points), "engagement", "visit",
                    "awarded" if points >= 0 else "deducted")  # fmt: skip
    metrics.add(metrics.events, 1, "page-visits", "scored")
    labels = {"score": "engagement", "rule": "visit", "direction": "awarded"}
    assert value(metrics, "leadscore_points_total", **labels) is None  # not yet
    metrics.flush()
    assert value(metrics, "leadscore_points_total", **labels) == 10
    assert value(metrics, "leadscore_points_total", **{**labels, "direction": "deducted"}) == 3
    assert value(metrics, "leadscore_events_total", topic="page-visits", outcome="scored") == 1
    assert metrics.pending == {}
    metrics.flush()  # nothing pending: nothing added twice
    assert value(metrics, "leadscore_points_total", **labels) == 10
    metrics.add(metrics.points, 2, "engagement", "visit", "awarded")
    metrics.flush()
    assert value(metrics, "leadscore_points_total", **labels) == 12


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(Verdict)), max_size=6))
def test_the_headline_is_the_first_verdict_of_the_order_present(verdicts: list[Verdict]) -> None:
    results = tuple(ScoreResult(f"s{i}", v) for i, v in enumerate(verdicts))
    present = set(verdicts)
    expected = next((v for v in metrics._HEADLINE if v in present), Verdict.NO_MATCH)
    assert metrics.headline(results) == expected


class _Change(NamedTuple):
    """What ``observe_changes`` reads of a ``ScoreChange``."""

    score: str
    cause: Cause
    thresholds: tuple[tuple[str, str], ...] = ()


_results = st.lists(
    st.builds(
        ScoreResult,
        st.sampled_from(["engagement", "fit"]),
        st.sampled_from(list(Verdict)),
        st.lists(st.tuples(st.sampled_from(["visit", "email"]), st.integers(-50, 50)),
                 max_size=3).map(tuple),
    ),
    max_size=3,
).map(tuple)  # fmt: skip
_changes = st.lists(
    st.builds(_Change, st.sampled_from(["engagement", "fit"]), st.sampled_from(list(Cause)),
              st.lists(st.tuples(st.sampled_from(["mql", "sql"]), st.sampled_from(["up", "down"])),
                       max_size=2).map(tuple)),
    max_size=3,
).map(tuple)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_changes, _results, st.sampled_from(["t1", "t2"]),
                          st.integers(0, 40_000)), max_size=30))  # fmt: skip
def test_an_items_counts_and_latency_equal_one_inc_and_observe_per_item(
    items: list[tuple[tuple[Any, ...], tuple[ScoreResult, ...], str, int]],
) -> None:
    """``observe_item`` then ``flush`` gives the counters and the latency histogram what one
    ``inc`` and one ``Histogram.observe`` per item would (the definition, on a second registry)."""
    batched = Metrics.create()
    registry = CollectorRegistry()
    events = Counter("e", "", ["topic", "outcome"], registry=registry)
    points = Counter("p", "", ["score", "rule", "direction"], registry=registry)
    changes = Counter("c", "", ["score", "cause"], registry=registry)
    crossed = Counter("x", "", ["score", "threshold", "direction"], registry=registry)
    latency = Histogram("l", "", buckets=metrics._LATENCY_BUCKETS, registry=registry)
    for item_changes, results, topic, waited in items:
        batched.observe_item(item_changes, results, topic, 1_000_000, 1_000_000 + waited)
        for change in item_changes:
            changes.labels(change.score, change.cause.value).inc()
            for name, direction in change.thresholds:
                crossed.labels(change.score, name, direction).inc()
        if item_changes:
            latency.observe(waited / 1000)
        if results:
            events.labels(topic, metrics.headline(results).value).inc()
        for result in results:
            for rule, amount in result.awards:
                direction = "awarded" if amount >= 0 else "deducted"
                points.labels(result.score, rule, direction).inc(abs(amount))
    batched.flush()
    assert batched.pending == {} and batched.latencies == {}
    names = {
        "leadscore_events": "e",
        "leadscore_points": "p",
        "leadscore_changes": "c",
        "leadscore_threshold_crossings": "x",
        "leadscore_event_to_emit_seconds": "l",
    }
    ours = samples(batched.registry, names)
    theirs = samples(registry, {v: v for v in names.values()})
    # the sum of latencies: value times count against one addition per item, equal to rounding
    assert ours.pop(("l_sum", ()), 0) == pytest.approx(theirs.pop(("l_sum", ()), 0), rel=1e-12)
    assert ours == theirs


def samples(registry: CollectorRegistry, names: dict[str, str]) -> dict[tuple[Any, ...], float]:
    """Every sample of the metrics ``names`` (renamed to their values), ``_created`` left out."""
    out: dict[tuple[Any, ...], float] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            for name, short in names.items():
                if sample.name.startswith(name) and not sample.name.endswith("_created"):
                    suffix = sample.name[len(name) :]
                    out[(short + suffix, tuple(sorted(sample.labels.items())))] = sample.value
    return {k: v for k, v in out.items() if v}  # a labelled child seen at 0 is no difference


def test_the_batch_histogram_is_scraped_as_a_histogram() -> None:
    """The same exposition lines as ``prometheus_client``'s ``Histogram`` with the same
    observations, bounds included (a value on a bound counts in that bucket)."""
    values = [0.0, 0.001, 0.0011, 0.05, 0.3, 1.0, 29.9, 30.0, 31.0, 1_000.0]
    ours_registry, their_registry = CollectorRegistry(), CollectorRegistry()
    ours = metrics.BatchHistogram("h_seconds", "doc", metrics._LATENCY_BUCKETS, ours_registry)
    theirs = Histogram("h_seconds", "doc", buckets=metrics._LATENCY_BUCKETS,
                       registry=their_registry)  # fmt: skip
    counted: dict[float, int] = {}
    for value_ in values:
        theirs.observe(value_)
        counted[value_] = counted.get(value_, 0) + 1
    ours.add(counted)
    ours.add({0.3: 2})
    theirs.observe(0.3)
    theirs.observe(0.3)

    for exposition in (generate_latest, openmetrics_latest):  # Prometheus text, OpenMetrics

        def lines(registry: CollectorRegistry, exposition: Any = exposition) -> list[str]:
            text = exposition(registry).decode()
            return [line for line in text.splitlines()
                    if not line.startswith(("h_seconds_created ", "h_seconds_sum "))]  # fmt: skip

        assert lines(ours_registry) == lines(their_registry)
        created = [line for line in exposition(ours_registry).decode().splitlines()
                   if line.startswith("h_seconds_created ")]  # fmt: skip
        assert len(created) == 1
    total = ours_registry.get_sample_value("h_seconds_sum")
    assert total == pytest.approx(their_registry.get_sample_value("h_seconds_sum"), rel=1e-12)
