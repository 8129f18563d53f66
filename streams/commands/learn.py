"""``leadscore learn``: learn a conversion probability from history, as a candidate plan.

From the retained inputs (a JSON-lines archive, or the service's input topics) it builds a
training set: at a series of cutoff instants (``--every``, from ``--since`` to ``--until``
minus ``--horizon``), each entity of the score's kind that had activity before the cutoff and
had not converted yet is one row: its **features** at the cutoff, computed by the scoring core
exactly as the live ``predicted`` score computes them (see :func:`feature_source`), and its
**label**, whether it converted within ``--horizon`` after the cutoff (conversions as
``calibrate`` counts them, see ``streams.commands.calibrate.Conversions``).

The features are proposed from the current plan (:func:`propose`): the score's own value,
every event rule of the score as hits over each window (``--window``, each at most the plan's
lateness), and the profile attributes named with ``--attribute``.

The last cutoffs (``--holdout``, 30% by default) are the hold-out; the model is fitted on the
earlier cutoffs whose label window ends by the first hold-out cutoff (so no training label
looks past it). The fit is an L2-regularised logistic regression (scikit-learn's
``LogisticRegression``, lbfgs) on standardised features, its weights converted back to raw
units so that the plan's weights apply to the raw feature values. The report
(:func:`write_report`: ``learning.json`` and ``learning.html``) sets the learned model and the
hand-written score side by side on the same hold-out rows: AUC, Brier score, calibration and
lift per decile. The candidate plan (:func:`candidate_text`) is the current plan with a new
version and the ``predicted`` score added.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from streams.commands.calibrate import (
    Conversions,
    html_head,
    images_of,
    plan_with_score,
    png_of,
    table,
)
from streams.commands.measures import DECILES, best_f1_threshold, summary
from streams.scoring import EntityState, Event, Item, Plan, Score
from streams.scoring.aggregate import total
from streams.scoring.durations import format_instant

DAY_MS = 86_400_000
#: The most features a ``predicted`` score may hold.
MAX_FEATURES = 64
#: Significant digits of the weights written to the plan, and the most decimal places.
DIGITS = 6
PLACES = 20
#: The inverse regularisation strength on standardised features (``--C``).
DEFAULT_C = 1.0
#: Hold-out rows of the last cutoff listed in the report (to check by hand, or against a
#: scorer run under the candidate).
SAMPLE = 50


# ----- features ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Feature:
    """One feature of a ``predicted`` score, as the plan spells it (without its weight)."""

    name: str
    score: str | None = None  # a score's value, or (with rule) the score whose rule counts
    rule: str | None = None
    within_ms: int | None = None
    attribute: str | None = None
    equals: str | int | Decimal | bool | None = None
    max: int | None = None  # a numeric attribute's clamp (None: an ``equals`` or a score)

    @property
    def kind(self) -> str:
        if self.attribute is not None:
            return "equals" if self.max is None else "numeric"
        return "score" if self.rule is None else "hits"

    def plan_entry(self, weight: Decimal) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name}
        if self.attribute is not None:
            entry["attribute"] = self.attribute
            if self.max is None:
                entry["equals"] = self.equals
        else:
            entry["score"] = self.score
            if self.rule is not None:
                entry["rule"] = self.rule
                entry["within"] = window_text(self.within_ms or 0)
        entry["weight"] = weight
        if self.max is not None:
            entry["max"] = self.max
        return entry


def window_text(ms: int) -> str:
    """A window as the plan writes it: whole days in days (``14d``, not ``2w``)."""
    from streams.scoring.durations import format_duration

    return f"{ms // DAY_MS}d" if ms % DAY_MS == 0 else format_duration(ms)


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() or c in "_.:-" else "-" for c in text)
    return out[:64] or "x"


def parse_attribute(text: str) -> tuple[str, str | None] | str:
    """``NAME`` (numeric) or ``NAME=VALUE`` (equals); returns (name, value) or why not."""
    name, sep, value = text.partition("=")
    if not name or (sep and not value):
        return f"--attribute: expected NAME or NAME=VALUE (got '{text}')"
    return name, (value if sep else None)


def propose(plan: Plan, score: Score, *, windows_ms: Sequence[int],
            attributes: Sequence[tuple[str, str | None]],
            numeric_max: dict[str, int]) -> tuple[list[Feature], list[str]]:  # fmt: skip
    """The candidate features of ``score`` (its value, each event rule's hits per window, the
    attributes) and notes on what was left out. ``numeric_max``: the clamp of each numeric
    attribute (a placeholder while its values are being looked at)."""
    notes: list[str] = []
    usable = [w for w in windows_ms if w <= plan.lateness_ms]
    for w in windows_ms:
        if w > plan.lateness_ms:
            notes.append(
                f"window {window_text(w)} left out: longer than the plan's lateness "
                f"({window_text(plan.lateness_ms)}): older contributions are folded"
            )
    features = [Feature(name=_slug(score.name), score=score.name)]
    for rule in score.rules:
        if rule.is_state_rule:
            notes.append(f"rule {rule.id} left out: a state rule has no hits")
            continue
        for w in usable:
            features.append(Feature(name=_slug(f"{rule.id}-{window_text(w)}"), score=score.name,
                                    rule=rule.id, within_ms=w))  # fmt: skip
    for name, value in attributes:
        if value is None:
            features.append(Feature(name=_slug(name), attribute=name,
                                    max=numeric_max.get(name, 10**12)))  # fmt: skip
        else:
            features.append(Feature(name=_slug(f"{name}-{value}"), attribute=name,
                                    equals=_typed(value)))  # fmt: skip
    seen: set[str] = set()
    unique = []
    for f in features:
        if f.name in seen:
            notes.append(f"feature {f.name} left out: a feature of that name comes first")
            continue
        seen.add(f.name)
        unique.append(f)
    if len(unique) > MAX_FEATURES:
        notes.append(f"{len(unique) - MAX_FEATURES} feature(s) left out: at most {MAX_FEATURES}")
        unique = unique[:MAX_FEATURES]
    return unique, notes


def _typed(value: str) -> str | int | bool:
    """An ``--attribute NAME=VALUE`` value as the profile would hold it: true/false, an integer,
    else text."""
    if value in ("true", "false"):
        return value == "true"
    if value.lstrip("-").isdigit() and len(value) < 19:
        return int(value)
    return value


#: Values of one entity's features at an instant, in the features' order.
FeatureValues = Callable[[EntityState], tuple[Decimal, ...]]


def feature_source(plan: Plan, name: str, kind: str) -> FeatureValues:
    """The scoring core's own feature values of the ``predicted`` score ``name`` of ``plan``:
    what the live score computes its probability from."""
    from streams.scoring.predict import feature_values

    spec = plan.by_name[name].predicted
    if spec is None:  # pragma: no cover - the learner writes the score itself
        raise ValueError(f"score {name} is not predicted")

    def values(state: EntityState) -> tuple[Decimal, ...]:
        return feature_values(state, kind, spec, plan)

    return values


def predicted_value(plan: Plan, name: str, values: Sequence[Decimal]) -> int:
    """The predicted score ``name``'s value (basis points) for features ``values``, as the
    scoring core computes it."""
    from streams.scoring.predict import basis_points, logit, probability

    spec = plan.by_name[name].predicted
    if spec is None:  # pragma: no cover - the learner writes the score itself
        raise ValueError(f"score {name} is not predicted")
    return basis_points(probability(logit(spec, tuple(values))))


# ----- the candidate plan ----------------------------------------------------------------------


def _decimal(value: float) -> Decimal:
    """``value`` to ``DIGITS`` significant digits (at most 20 decimal places, what a plan's
    weight may have), exactly as written."""
    if value == 0 or not math.isfinite(value):
        return Decimal(0)
    exact = Decimal(repr(value))
    places = min(PLACES, max(0, DIGITS - 1 - exact.adjusted()))
    text = format(exact.quantize(Decimal(1).scaleb(-places)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return Decimal(text)


def plain(number: Decimal) -> str:
    """A decimal without an exponent."""
    return format(number, "f")


def predicted_entry(name: str, entity: str, model: str, intercept: Decimal,
                    weighted: Sequence[tuple[Feature, Decimal]],
                    thresholds: Sequence[tuple[str, int]] = ()) -> dict[str, Any]:  # fmt: skip
    entry: dict[str, Any] = {
        "name": name,
        "entity": entity,
        "predicted": {
            "model": model,
            "intercept": intercept,
            "features": [f.plan_entry(w) for f, w in weighted],
        },
    }
    if thresholds:
        entry["thresholds"] = [{"name": n, "at": at} for n, at in thresholds]
    return entry


def candidate_text(current_text: str, version: str, entry: dict[str, Any], header: str) -> str:
    """The current plan's data with ``version`` and the score ``entry`` added, as YAML that the
    plan reader reads back to exactly that data (checked)."""
    import yaml

    from streams.scoring.plan.reader import read_yaml

    data, problems = read_yaml(current_text)
    if problems or not isinstance(data, dict):
        raise ValueError("; ".join(problems) or "the plan is not a mapping")
    data = {"version": version, **{k: v for k, v in data.items() if k != "version"}}
    data["scores"] = [*data["scores"], entry]

    class Dumper(yaml.SafeDumper):
        pass

    def decimal(dumper: yaml.SafeDumper, value: Decimal) -> Any:
        text = format(value, "f")
        if "." not in text:
            text += ".0"
        return dumper.represent_scalar("tag:yaml.org,2002:float", text)

    Dumper.add_representer(Decimal, decimal)
    body = yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=None,
                     allow_unicode=True, width=100)  # fmt: skip
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    text = comment + body
    again, problems = read_yaml(text)
    if problems or again != data:  # pragma: no cover - the dumper writes what the reader reads
        raise ValueError("the candidate plan does not read back as written")
    return text


# ----- the training set ------------------------------------------------------------------------


def cutoffs(since_ms: int, until_ms: int, every_ms: int, horizon_ms: int) -> list[int]:
    """``since``, ``since + every``, ... while the label window after the cutoff ends by
    ``until``."""
    out, at = [], since_ms
    while at + horizon_ms <= until_ms:
        out.append(at)
        at += every_ms
    return out


def split(cuts: Sequence[int], holdout: float, horizon_ms: int) -> tuple[list[int], list[int]]:
    """(train cutoffs, hold-out cutoffs): the last ``holdout`` share of the cutoffs (at least
    one) are the hold-out; the training cutoffs are the earlier ones whose label window ends
    by the first hold-out cutoff."""
    if not cuts:
        return [], []
    n = min(len(cuts), max(1, round(len(cuts) * holdout)))
    held = list(cuts[-n:])
    return [c for c in cuts[:-n] if c + horizon_ms <= held[0]], held


@dataclass(frozen=True, slots=True)
class Row:
    cutoff: int
    entity_id: str
    features: tuple[Decimal, ...]  # as the scoring core computes them
    hand: int  # the hand-written score's value at the cutoff
    label: bool


def conversion_times(items: Iterable[Item], kind: str,
                     conversions: Conversions) -> dict[str, list[int]]:  # fmt: skip
    """Entity id -> the instants it converted, ascending."""
    out: dict[str, list[int]] = {}
    for item in items:
        if type(item) is Event:
            for entity in conversions.of(item, kind):
                out.setdefault(entity, []).append(item.occurred_at_ms)
    for times in out.values():
        times.sort()
    return out


def label_of(times: Sequence[int], cutoff: int, horizon_ms: int) -> bool | None:
    """Whether an entity with conversions at ``times`` converts in ``(cutoff, cutoff +
    horizon]``; None if it had converted at or before the cutoff (no longer a lead)."""
    if times and times[0] <= cutoff:
        return None
    return any(cutoff < t <= cutoff + horizon_ms for t in times)


def rows_of(items: Sequence[Item], plan: Plan, score_name: str, values: FeatureValues, *,
            cuts: Sequence[int], horizon_ms: int, converted: dict[str, list[int]],
            tenant: str | None, active_ms: int | None = None) -> list[Row]:  # fmt: skip
    """Score ``items`` (sorted by event time) with the offline scorer and take a row per
    entity of the score's kind at each cutoff (with ``active_ms``: only entities whose latest
    event lies within it before the cutoff)."""
    from streams.commands.offline import OfflineScorer

    score = plan.by_name[score_name]
    scorer = OfflineScorer(plan)
    rows: list[Row] = []
    i = 0
    for cut in cuts:
        while i < len(items) and items[i].occurred_at_ms <= cut:
            scorer.feed(items[i])
            i += 1
        scorer.advance_to(cut)
        for key, state in sorted(scorer.states.items(), key=lambda kv: kv[0].entity_id):
            if key.kind != score.entity or key.tenant_id != tenant:
                continue
            if active_ms is not None and (state.watermark_ms or 0) <= cut - active_ms:
                continue
            label = label_of(converted.get(key.entity_id, ()), cut, horizon_ms)
            if label is None:
                continue
            ledger = state.scores.get(score_name)
            hand = ledger.total if ledger is not None else total(score, {})
            rows.append(Row(cut, key.entity_id, values(state), hand, label))
    return rows


# ----- fitting -----------------------------------------------------------------------------


@dataclass
class Model:
    """A fitted model in raw units: ``p = sigmoid(intercept + sum(weights * x))``."""

    intercept: float
    weights: list[float]  # raw units (0 for a feature left out)
    standardised: list[float]  # per standard deviation of the training rows
    mean: list[float]
    std: list[float]
    #: False: left out, constant on the training rows or equal to an earlier feature there
    used: list[bool] = field(default_factory=list)


def fit(x: Sequence[Sequence[float]], y: Sequence[bool], c: float) -> Model:
    """L2-regularised logistic regression on standardised features (scikit-learn, lbfgs),
    weights converted back to raw units. A feature constant on the training rows, or equal
    there to an earlier one, is left out (weight 0): it adds nothing but a share of a weight."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=int)
    mean, std = xs.mean(axis=0), xs.std(axis=0)
    used = std > 0
    for j in range(xs.shape[1]):
        if used[j] and any(used[k] and np.array_equal(xs[:, k], xs[:, j]) for k in range(j)):
            used[j] = False
    z = (xs[:, used] - mean[used]) / std[used]
    model = LogisticRegression(C=c, solver="lbfgs", max_iter=1000)
    model.fit(z, ys)
    beta = np.zeros(xs.shape[1])
    beta[used] = model.coef_[0]
    raw = np.where(used, beta / np.where(used, std, 1.0), 0.0)
    intercept = float(model.intercept_[0] - float(np.sum(raw * mean)))
    return Model(intercept, [float(w) for w in raw], [float(b) for b in beta],
                 [float(m) for m in mean], [float(s) for s in std],
                 [bool(u) for u in used])  # fmt: skip


def sigmoid(t: float) -> float:
    if t >= 0:
        return 1 / (1 + math.exp(-t))
    e = math.exp(t)
    return e / (1 + e)


def probability(intercept: float, weights: Sequence[float], x: Sequence[float]) -> float:
    return sigmoid(intercept + sum(w * v for w, v in zip(weights, x, strict=True)))


# ----- the report --------------------------------------------------------------------------


def plots(report: dict[str, Any]) -> dict[str, str]:
    """ROC curves, calibration, lift per decile and the standardised weights, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learned, hand = report["learned"], report["hand"]
    names = ("learned", f"hand-written ({report['score']})")
    colours = ("#d9480f", "#1c7ed6")
    out: dict[str, str] = {}
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    for side, name, colour in zip((learned, hand), names, colours, strict=True):
        fpr, tpr = zip(*side["roc"], strict=True)
        ax.plot(fpr, tpr, label=f"{name}: AUC {_f(side['auc'])}", color=colour)
    ax.plot([0, 1], [0, 1], color="#adb5bd", linestyle="--", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right")
    out["roc"] = png_of(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    top = 0.0
    for side, name, colour in zip((learned, hand), names, colours, strict=True):
        xs = [d["mean_predicted"] or 0 for d in side["deciles"]]
        ys = [d["rate"] or 0 for d in side["deciles"]]
        top = max(top, *xs, *ys)
        ax.plot(xs, ys, marker="o", label=name, color=colour)
    ax.plot([0, top], [0, top], color="#adb5bd", linestyle="--", linewidth=1)
    ax.set_xlabel("mean predicted probability (per decile)")
    ax.set_ylabel("observed conversion rate")
    ax.legend(loc="upper left")
    out["calibration"] = png_of(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.4))
    slices = list(range(1, DECILES + 1))
    for offset, side, name, colour in zip((-0.2, 0.2), (learned, hand), names, colours,
                                          strict=True):  # fmt: skip
        ax.bar([x + offset for x in slices], [d["lift"] or 0 for d in side["deciles"]],
               width=0.4, label=name, color=colour)  # fmt: skip
    ax.axhline(1.0, color="#495057", linewidth=1, linestyle="--")
    ax.set_xticks(slices)
    ax.set_xlabel("decile (1: the highest scores)")
    ax.set_ylabel("lift (decile rate / base rate)")
    ax.legend()
    out["lift"] = png_of(fig)
    plt.close(fig)

    feats = sorted((f for f in report["features"] if f["used"]),
                   key=lambda f: abs(f["standardised_weight"]))  # fmt: skip
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.32 * len(feats)))
    signs = ["#2f9e44" if f["standardised_weight"] >= 0 else "#c92a2a" for f in feats]
    ax.barh([f["name"] for f in feats], [f["standardised_weight"] for f in feats], color=signs)
    ax.axvline(0, color="#495057", linewidth=1)
    ax.set_xlabel("weight per standard deviation of the feature")
    out["weights"] = png_of(fig)
    plt.close(fig)
    return out


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_html(report: dict[str, Any], images: dict[str, str]) -> str:
    learned, hand = report["learned"], report["hand"]
    counts = report["counts"]
    title = html.escape(f"Learned conversion probability for {report['score']} "
                        f"({report['entity']}s of {report['tenant']})")  # fmt: skip
    figures = table(
        ["on the hold-out", "learned", f"hand-written ({report['score']})"],
        [["AUC", _f(learned["auc"]), _f(hand["auc"])],
         ["Brier score (lower is better)", _f(learned["brier"], 4), _f(hand["brier"], 4)],
         ["lift of the top decile", _f(learned["top_decile_lift"], 2),
          _f(hand["top_decile_lift"], 2)]],
    )  # fmt: skip
    sides = table(
        ["decile", "learned: rate", "lift", "mean predicted", "hand: rate", "lift",
         "mean predicted"],
        [[a["decile"], _f(a["rate"]), _f(a["lift"], 2), _f(a["mean_predicted"]), _f(b["rate"]),
          _f(b["lift"], 2), _f(b["mean_predicted"])]
         for a, b in zip(learned["deciles"], hand["deciles"], strict=True)],
    )  # fmt: skip
    weights = table(
        ["feature", "definition", "weight (raw units)", "per standard deviation",
         "training mean", "training std"],
        [[f["name"], f["definition"], f["weight"], _f(f["standardised_weight"]),
          _f(f["mean"]), _f(f["std"])] for f in report["features"]],
    )  # fmt: skip
    parts = table(
        ["part", "cutoffs", "rows", "entities", "converted (rows)", "rate"],
        [[name, len(counts[name]["cutoffs"]), counts[name]["rows"], counts[name]["entities"],
          counts[name]["converted"], _f(counts[name]["rate"])]
         for name in ("train", "holdout")],
    )  # fmt: skip
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report["notes"])

    img = images_of(images)
    version = html.escape(str(report["plan_version"]))
    return (
        html_head(title)
        + f"""<p>Plan version {version}; candidate
{html.escape(report["candidate_version"])} with the score
<b>{html.escape(report["name"])}</b> (model {html.escape(report["model"])}). Cutoffs every
{html.escape(report["every"])} from {html.escape(report["since"])}; label: converted within
{html.escape(report["horizon"])} after the cutoff ({html.escape(report["conversions"])}).</p>
<h2>Hold-out: learned and hand-written side by side</h2>
{figures}
<p class="note">The same hold-out rows for both. AUC and lift come from the hand-written score's
values as they are; its Brier score and calibration need a probability: the hand-written score
mapped by a one-feature logistic fit on the training rows.</p>
{img("roc", "ROC curves")} {img("calibration", "calibration curves")}
<h2>Lift per decile</h2>
{img("lift", "lift per decile")}
{sides}
<h2>Weights</h2>
<p class="note">L2-regularised logistic regression (scikit-learn {html.escape(report["library"])},
C = {report["C"]:g}) on standardised features; the plan holds the weights in raw units.</p>
{img("weights", "standardised weights")}
{weights}
<h2>Rows</h2>
{parts}
<ul class="note">{notes}</ul>
</body></html>
"""
    )


def write_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    images = plots(report)
    json_path, html_path = out_dir / "learning.json", out_dir / "learning.html"
    json_path.write_text(json.dumps(report, indent=1, default=str) + "\n")
    html_path.write_text(render_html(report, images))
    return [json_path, html_path]


# ----- the command -------------------------------------------------------------------------


@dataclass
class Options:
    score: str
    since_ms: int | None = None
    until_ms: int | None = None
    every_ms: int = 7 * DAY_MS
    horizon_ms: int = 30 * DAY_MS
    windows_ms: tuple[int, ...] = (7 * DAY_MS, 14 * DAY_MS)
    attributes: tuple[tuple[str, str | None], ...] = ()
    conversions: Conversions = field(default_factory=Conversions)
    holdout: float = 0.3
    c: float = DEFAULT_C
    name: str | None = None
    version: str | None = None
    tenant: str | None = None
    threshold: str = "likely"
    active_ms: int | None = None


class LearnError(Exception):
    """Why nothing could be learned (a message for the user)."""


def definition(f: Feature) -> str:
    if f.kind == "score":
        return f"the value of {f.score}"
    if f.kind == "hits":
        return f"hits of {f.score}.{f.rule} within {window_text(f.within_ms or 0)}"
    if f.kind == "equals":
        return f"1 if {f.attribute} is {f.equals}, else 0"
    return f"{f.attribute}, clamped to [0, {f.max}]"


def _unusable(score: Score) -> str:
    if score.entity == "account":
        return "an account score (predicted scores are kept for contacts and deals)"
    if score.predicted is not None:
        return "predicted itself"
    return "a roll-up (its members' part is not the entity's own)"


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def learn(items: Sequence[Item], current_text: str, plan: Plan, options: Options,
          *, source: str) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """The candidate plan's text and the report, from ``items`` sorted by event time."""
    import sklearn

    from streams.scoring import load_plan

    score = plan.by_name[options.score]
    kind = score.entity
    if score.entity == "account" or score.predicted is not None or score.rollup is not None:
        raise LearnError(f"--score: {options.score} is {_unusable(score)}; name a hand-written "
                         "contact or deal score")  # fmt: skip
    name = options.name or f"{options.score}-predicted"
    if name in plan.by_name:
        raise LearnError(f"--name: the plan already has a score '{name}'")
    if not items:
        raise LearnError("no inputs to learn from")
    since = options.since_ms
    if since is None:
        since = items[0].occurred_at_ms + max(options.windows_ms, default=0)
    until = options.until_ms if options.until_ms is not None else items[-1].occurred_at_ms
    cuts = cutoffs(since, until, options.every_ms, options.horizon_ms)
    train_cuts, held_cuts = split(cuts, options.holdout, options.horizon_ms)
    if not train_cuts:
        raise LearnError(
            f"{len(cuts)} cutoff(s) from {format_instant(since)} to {format_instant(until)} "
            f"minus the horizon: too few for a hold-out and training cutoffs whose label window "
            "ends before it; give a longer period (--since, --until) or a shorter --every"
        )
    features, notes = propose(plan, score, windows_ms=options.windows_ms,
                              attributes=options.attributes, numeric_max={})  # fmt: skip
    # the candidate with weights 0: the scoring core computes the features from it
    placeholder = predicted_entry(name, kind, "placeholder", Decimal(0),
                                  [(f, Decimal(0)) for f in features])  # fmt: skip
    version = options.version or f"{plan.version[:40]}+learned"
    draft = load_plan(candidate_text(current_text, version, placeholder, "draft"),
                      source="the candidate plan")  # fmt: skip
    values = feature_source(draft, name, kind)
    converted = conversion_times(items, kind, options.conversions)
    rows = rows_of(items, draft, options.score, values, cuts=[*train_cuts, *held_cuts],
                   horizon_ms=options.horizon_ms, converted=converted,
                   tenant=options.tenant, active_ms=options.active_ms)  # fmt: skip
    train = [r for r in rows if r.cutoff in set(train_cuts)]
    held = [r for r in rows if r.cutoff in set(held_cuts)]
    for part, rows_ in (("training", train), ("hold-out", held)):
        if not any(r.label for r in rows_) or all(r.label for r in rows_):
            raise LearnError(f"the {len(rows_)} {part} rows need both converters and others: "
                             "give a longer period, or check --conversion")  # fmt: skip
    # numeric attributes: clamped at the 99th percentile of the training rows (at least 1);
    # their values came unclamped (the draft's bound is 10^12), so clamping them here gives
    # what the candidate computes
    for j, f in enumerate(features):
        if f.kind == "numeric":
            cap = max(1, math.ceil(_quantile([float(r.features[j]) for r in train], 0.99)))
            features[j] = Feature(f.name, attribute=f.attribute, max=cap)
    clamps = [(j, Decimal(f.max or 0)) for j, f in enumerate(features) if f.kind == "numeric"]

    def x_of(r: Row) -> list[Decimal]:
        x = list(r.features)
        for j, cap in clamps:
            x[j] = min(x[j], cap)
        return x

    x_train = [x_of(r) for r in train]
    model = fit([[float(v) for v in x] for x in x_train], [r.label for r in train], options.c)
    for f, used in zip(features, model.used, strict=True):
        if not used:
            notes.append(f"feature {f.name} left out: constant on the training rows, or equal "
                         "there to a feature before it")  # fmt: skip
    weights = [_decimal(w) for w in model.weights]
    intercept = _decimal(model.intercept)
    kept = [(j, f, w) for j, (f, w, u) in enumerate(zip(features, weights, model.used,
                                                          strict=True)) if u]  # fmt: skip
    if not kept:
        raise LearnError("every feature is the same on every training row: nothing to learn")
    fitted = [plain(intercept), [(f.name, plain(w)) for _, f, w in kept]]
    digest = hashlib.sha256(json.dumps(fitted).encode()).hexdigest()[:6]
    day = format_instant(until)[:10].replace("-", "")
    model_version = f"{_slug(name)[:60]}-{day}-{digest}"
    weighted = [(f, w) for _, f, w in kept]

    def bp_of(plan_: Plan, part: list[Row]) -> list[int]:
        """The candidate's value for each row, as the scoring core computes it."""
        return [predicted_value(plan_, name, [x_of(r)[j] for j, _, _ in kept]) for r in part]

    bare_entry = predicted_entry(name, kind, model_version, intercept, weighted)
    bare = load_plan(candidate_text(current_text, version, bare_entry, "draft"),
                     source="the candidate plan")  # fmt: skip
    likely = best_f1_threshold(bp_of(bare, train), [r.label for r in train])
    thresholds = [(options.threshold, likely)] if likely is not None and likely > 0 else []
    entry = predicted_entry(name, kind, model_version, intercept, weighted, thresholds)
    learned_bp = bp_of(bare, held)
    learned_p = [bp / 10_000 for bp in learned_bp]
    # the hand-written score as a probability: a one-feature logistic fit on the training rows
    hand_model = fit([[r.hand] for r in train], [r.label for r in train], options.c)
    hand_p = [probability(hand_model.intercept, hand_model.weights, [r.hand]) for r in held]
    labels = [r.label for r in held]
    learned = summary(learned_p, learned_p, labels)
    hand = summary([float(r.hand) for r in held], hand_p, labels)
    last = held_cuts[-1]
    sample = [{"entity_id": r.entity_id, "cutoff": format_instant(r.cutoff),
               "features": {f.name: plain(v) for f, v in zip(features, x_of(r), strict=True)},
               "hand": r.hand, "learned_bp": bp, "converted": r.label}
              for r, bp in zip(held, learned_bp, strict=True)
              if r.cutoff == last][:SAMPLE]  # fmt: skip
    margin = (None if learned["auc"] is None or hand["auc"] is None
              else learned["auc"] - hand["auc"])  # fmt: skip

    def counted(part: list[Row], cuts_: list[int]) -> dict[str, Any]:
        won = sum(r.label for r in part)
        return {"cutoffs": [format_instant(c) for c in cuts_], "rows": len(part),
                "entities": len({r.entity_id for r in part}), "converted": won,
                "rate": won / len(part) if part else None}  # fmt: skip

    report: dict[str, Any] = {
        "score": options.score, "entity": kind, "name": name, "model": model_version,
        "plan_version": plan.version, "candidate_version": version,
        "tenant": options.tenant if options.tenant is not None else "the default tenant",
        "source": source, "since": format_instant(since), "until": format_instant(until),
        "every": window_text(options.every_ms), "horizon": window_text(options.horizon_ms),
        "holdout_share": options.holdout, "conversions": options.conversions.describe(),
        "library": sklearn.__version__, "C": options.c,
        "intercept": plain(intercept),
        "features": [
            {"name": f.name, "definition": definition(f), "plan": f.plan_entry(w),
             "weight": plain(w), "standardised_weight": s, "mean": m, "std": sd, "used": u}
            for f, w, s, m, sd, u in zip(features, weights, model.standardised, model.mean,
                                         model.std, model.used, strict=True)
        ],
        "threshold": None if not thresholds else {"name": options.threshold, "at": likely},
        "counts": {"train": counted(train, train_cuts), "holdout": counted(held, held_cuts)},
        "learned": learned, "hand": hand,
        "hand_mapping": {"intercept": hand_model.intercept, "weight": hand_model.weights[0]},
        "auc_margin": margin,
        "sample": sample,
        "notes": notes,
    }  # fmt: skip
    header = textwrap.fill(
        f"Candidate plan written by leadscore learn: the plan {plan.version} plus the predicted "
        f"score '{name}' (model {model_version}, {len(kept)} features), learned from {source}: "
        f"cutoffs every {report['every']} from {report['since']}, label: converted within "
        f"{report['horizon']}. Hold-out AUC {_f(learned['auc'])}; the hand-written "
        f"{options.score} {_f(hand['auc'])}. Try it with leadscore replay (a dry run) and "
        "leadscore calibrate --compare before publishing it.",
        width=96,
        break_on_hyphens=False,
    )
    text = candidate_text(current_text, version, entry, header)
    load_plan(text, source="the candidate plan")  # (a PlanError here is a bug: it is reported)
    return text, report


def _items_of_archive(path: str, tenant: str | None) -> tuple[list[Item], int]:
    from streams.commands.offline import parse_line, read_lines
    from streams.scoring import Invalid

    items: list[Item] = []
    bad = 0
    with open(path, "rb") as raw:
        for _, line in read_lines(raw):
            if isinstance(line, str) and not line.strip():
                continue
            item = parse_line(line) if isinstance(line, str) else line
            if isinstance(item, Invalid):
                bad += 1
            elif item.tenant_id == tenant:
                items.append(item)
    return items, bad


def _items_of_topics(tenant: str | None, timeout_s: float) -> tuple[list[Item], int] | int:
    from streams.wire.codec import Source
    from streams.wire.reading import read_inputs, service_codec

    loaded = service_codec("learn")
    if isinstance(loaded, int):
        return loaded
    settings, codec = loaded
    items: list[Item] = []

    def take(item: Item) -> None:
        if item.tenant_id == tenant:
            items.append(item)

    why, bad = read_inputs(settings, codec, Source, take, timeout_s)
    if why is not None:
        print(f"leadscore learn: {why}", file=sys.stderr)
        return 1
    return items, bad


def _options(args: Any) -> Options | str:
    from streams.scoring.durations import parse_duration, parse_instant

    instants: dict[str, int | None] = {}
    for option, given in (("--since", args.since), ("--until", args.until)):
        instants[option] = None if given is None else parse_instant(given)
        if given is not None and instants[option] is None:
            return f"{option} must be epoch millis or ISO-8601 with an offset (got '{given}')"
    durations: dict[str, int] = {}
    for option, given in (("--every", args.every), ("--horizon", args.horizon)):
        parsed = parse_duration(given)
        if parsed is None:
            return f"{option} must be a duration such as 7d or 30d (got '{given}')"
        durations[option] = parsed
    active: int | None = durations["--horizon"]
    if args.active_within is not None and args.active_within != "all":
        active = parse_duration(args.active_within)
        if active is None:
            return (f"--active-within must be a duration such as 30d, or all (got "
                    f"'{args.active_within}')")  # fmt: skip
    elif args.active_within == "all":
        active = None
    windows = []
    for given in args.window or ["7d", "14d"]:
        parsed = parse_duration(given)
        if parsed is None:
            return f"--window must be a duration such as 7d or 14d (got '{given}')"
        windows.append(parsed)
    attributes = []
    for given in args.attribute or []:
        attribute = parse_attribute(given)
        if isinstance(attribute, str):
            return attribute
        attributes.append(attribute)
    conversions = Conversions.parse(args.conversion)
    if isinstance(conversions, str):
        return conversions
    if not 0 < args.holdout < 1:
        return f"--holdout must lie between 0 and 1 (got {args.holdout:g})"
    if not args.C > 0:
        return f"--C must be positive (got {args.C:g})"
    since, until = instants["--since"], instants["--until"]
    if since is not None and until is not None and until <= since:
        return "--until must be after --since"
    return Options(score=args.score, since_ms=since, until_ms=until,
                   every_ms=durations["--every"], horizon_ms=durations["--horizon"],
                   windows_ms=tuple(dict.fromkeys(windows)), attributes=tuple(attributes),
                   conversions=conversions, holdout=args.holdout, c=args.C, name=args.name,
                   version=args.version, tenant=args.tenant, active_ms=active)  # fmt: skip


def cmd_learn(args: Any) -> int:
    """``leadscore learn --score S [--archive FILE] [--plan P] --out candidate.yaml``."""
    try:
        import sklearn  # noqa: F401 - only whether it is there
    except ImportError:
        print("leadscore learn: needs scikit-learn, which is not installed: install the "
              "'learn' extra (pip install -c constraints.txt -e '.[learn]')",
              file=sys.stderr)  # fmt: skip
        return 2
    found = plan_with_score("learn", args.plan, args.score)
    if isinstance(found, int):
        return found
    plan, plan_path = found
    options = _options(args)
    if isinstance(options, str):
        print(f"leadscore learn: {options}", file=sys.stderr)
        return 2
    if args.archive is not None:
        try:
            items, bad = _items_of_archive(args.archive, args.tenant)
        except OSError as error:
            print(f"leadscore learn: cannot read {args.archive}: {error}", file=sys.stderr)
            return 1
        source = Path(args.archive).name
    else:
        read = _items_of_topics(args.tenant, args.timeout)
        if isinstance(read, int):
            return read
        items, bad = read
        source = "the input topics"
    items.sort(key=lambda item: item.occurred_at_ms)  # (stable: the input's order among equals)
    try:
        text, report = learn(items, Path(plan_path).read_text(encoding="utf-8"), plan, options,
                             source=source)  # fmt: skip
    except LearnError as error:
        print(f"leadscore learn: {error}", file=sys.stderr)
        return 1
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as error:
        print(f"leadscore learn: cannot write {out}: {error.strerror}", file=sys.stderr)
        return 1
    written = write_report(report, Path(args.report))
    if bad:
        print(f"leadscore learn: {bad} bad line(s) skipped", file=sys.stderr)
    learned, hand, counts = report["learned"], report["hand"], report["counts"]
    top = sorted(report["features"], key=lambda f: -abs(f["standardised_weight"]))[:3]
    print(f"{counts['train']['rows']} training rows ({len(counts['train']['cutoffs'])} cutoffs), "
          f"{counts['holdout']['rows']} hold-out rows ({len(counts['holdout']['cutoffs'])} "
          f"cutoffs); hold-out AUC {_f(learned['auc'])} learned vs {_f(hand['auc'])} "
          f"{options.score}, Brier {_f(learned['brier'], 4)} vs {_f(hand['brier'], 4)}, "
          f"top-decile lift {_f(learned['top_decile_lift'], 2)} vs "
          f"{_f(hand['top_decile_lift'], 2)}; largest weights: "
          f"{', '.join(f['name'] for f in top)}")  # fmt: skip
    print(f"wrote {out} (version {report['candidate_version']}, score {report['name']}), "
          f"{', '.join(str(p) for p in written)}")  # fmt: skip
    return 0
