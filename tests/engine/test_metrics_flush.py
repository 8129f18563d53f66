"""The score stage's counters are added once per label set per batch (``Metrics.add`` and
``flush``): the same totals as one ``inc`` per item, seen after the batch's flush; an item's
headline outcome is the first of the order's verdicts among its results."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams import metrics
from streams.metrics import Metrics
from streams.scoring.outcomes import ScoreResult, Verdict


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
