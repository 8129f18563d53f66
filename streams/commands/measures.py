"""How well a score ranks conversions: AUC, the Brier score, deciles with lift, the ROC curve
and the best F1 cut-off (``leadscore learn`` and ``leadscore calibrate --compare``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DECILES = 10


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """The probability that a random converter scores above a random other (ties count a
    half): the area under the ROC curve. None without both kinds."""
    pos = sum(labels)
    neg = len(labels) - pos
    if not pos or not neg:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum, i = 0.0, 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        mid = (i + j) / 2 + 1  # the tied values' average rank
        rank_sum += mid * sum(labels[order[k]] for k in range(i, j + 1))
        i = j + 1
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def brier(probabilities: Sequence[float], labels: Sequence[bool]) -> float | None:
    if not labels:
        return None
    return sum((p - y) ** 2 for p, y in zip(probabilities, labels, strict=True)) / len(labels)


def deciles(scores: Sequence[float], labels: Sequence[bool],
            probabilities: Sequence[float] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Ten slices of equal size from the highest score down. Entities of one value are shared
    among the slices their run of ties spans, in proportion (the average over every order of
    the ties), so counts may be fractional. Per slice: entities, converters, rate, lift over
    the base rate and (given probabilities) the mean predicted probability."""
    n = len(scores)
    if not n:
        return []
    base = sum(labels) / n
    groups: dict[float, list[float]] = {}
    for i, s in enumerate(scores):
        g = groups.setdefault(s, [0.0, 0.0, 0.0])
        g[0] += 1
        g[1] += labels[i]
        g[2] += probabilities[i] if probabilities is not None else 0.0
    out: list[dict[str, Any]] = [
        {"decile": d + 1, "entities": 0.0, "converters": 0.0, "predicted": 0.0}
           for d in range(DECILES)]  # fmt: skip
    start = 0.0
    for value in sorted(groups, reverse=True):
        count, won, predicted = groups[value]
        stop = start + count
        for d in range(DECILES):
            low, high = n * d / DECILES, n * (d + 1) / DECILES
            overlap = min(stop, high) - max(start, low)
            if overlap > 0:
                share = overlap / count
                out[d]["entities"] += count * share
                out[d]["converters"] += won * share
                out[d]["predicted"] += predicted * share
        start = stop
    for row in out:
        size = row["entities"]
        rate = row["converters"] / size if size else None
        row["rate"] = rate
        row["lift"] = rate / base if rate is not None and base else None
        mean = row.pop("predicted") / size if size else None
        if probabilities is not None:
            row["mean_predicted"] = mean
    return out


def roc_points(scores: Sequence[float], labels: Sequence[bool]) -> list[tuple[float, float]]:
    """(false positive rate, true positive rate) at each distinct score, highest first."""
    pos = sum(labels)
    neg = len(labels) - pos
    points = [(0.0, 0.0)]
    tp = fp = 0
    ordered = sorted(zip(scores, labels, strict=True), key=lambda p: -p[0])
    for i, (s, y) in enumerate(ordered):
        tp += y
        fp += not y
        if i + 1 == len(ordered) or ordered[i + 1][0] != s:
            points.append((fp / neg if neg else 0.0, tp / pos if pos else 0.0))
    return points


def best_f1_threshold(values: Sequence[int], labels: Sequence[bool]) -> int | None:
    """The value at or above which entities are called, with the highest F1 (the lowest such
    value on a tie); None without converters."""
    pos = sum(labels)
    if not pos:
        return None
    ordered = sorted(zip(values, labels, strict=True), key=lambda p: -p[0])
    best: tuple[float, int] | None = None
    tp = taken = 0
    for i, (v, y) in enumerate(ordered):
        tp += y
        taken += 1
        if i + 1 < len(ordered) and ordered[i + 1][0] == v:
            continue
        f1 = 2 * tp / (taken + pos)
        if best is None or f1 >= best[0]:
            best = (f1, v)
    return None if best is None else best[1]


def summary(scores: Sequence[float], probabilities: Sequence[float],
            labels: Sequence[bool]) -> dict[str, Any]:  # fmt: skip
    rows = deciles(scores, labels, probabilities)
    return {
        "auc": auc(scores, labels),
        "brier": brier(probabilities, labels),
        "top_decile_lift": rows[0]["lift"] if rows else None,
        "deciles": rows,
        "roc": roc_points(scores, labels),
    }
