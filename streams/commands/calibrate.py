"""``leadscore calibrate``: do scores predict conversions? (the guide's step 7)

Each entity's score at an instant ``since`` is set against whether it converted after it, up to
``until``: a contact converts with a purchase of its own or a won deal that names it, a deal
when it is won. From those pairs (:class:`Observation`) :func:`analyse` computes, with nothing
but counting:

- the base conversion rate, and the score distributions of converted and not converted;
- per score band (the score's tiers, else ten bands of equal count): entities, converters,
  conversion rate and lift (the band's rate over the base rate);
- per threshold of the plan, and at every distinct score as a candidate threshold: entities at
  or above it, precision (their conversion rate), recall (the share of all converters they
  hold), lift and F1; the suggested threshold is the candidate with the highest F1 (the lowest
  such score on a tie);
- per rule: the share of converters, and of the others, whose score held points of the rule at
  ``since``, and the ratio of the two.

:func:`write_report` writes ``calibration.json`` (for machines) and ``calibration.html``: one
self-contained page, its PNG plots (matplotlib) inlined.

What converts is :class:`Conversions` (``--conversion``). With ``--compare CANDIDATE`` both
plans are scored offline from the same inputs and :func:`write_comparison` sets their figures
side by side (``comparison.json``, ``comparison.html``), with each side's AUC and deciles.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.scoring import Event, Invalid, Item, Plan
from streams.scoring.aggregate import total
from streams.scoring.state import C_RULE
from streams.settings import Settings
from streams.wire.codec import Codec, Source

#: Bands of equal count when the score has no tiers.
BANDS = 10


@dataclass(frozen=True, slots=True)
class Observation:
    entity_id: str
    score: int  # the value at ``since``
    converted: bool  # converted after ``since``, up to ``until``
    rules: frozenset[str] = field(default_factory=frozenset)  # rules with points at ``since``


@dataclass(frozen=True, slots=True)
class Conversions:
    """What converts an entity (``--conversion``; by default a purchase and a won deal): a
    purchase its contact (``purchase``); a won deal the deal, and the contact it names:
    ``deal-won`` a deal whose status becomes won, ``deal-won:STAGE`` one that moves to the
    stage named (a pipeline whose won stage has a name of its own)."""

    purchase: bool = True
    won: bool = True
    stages: tuple[str, ...] = ()

    @classmethod
    def parse(cls, given: Sequence[str] | None) -> Conversions | str:
        """From the ``--conversion`` options (none: the default), or why not."""
        if not given:
            return cls()
        purchase, won, stages = False, False, []
        for value in given:
            if value == "purchase":
                purchase = True
            elif value == "deal-won":
                won = True
            elif value.startswith("deal-won:") and len(value) > len("deal-won:"):
                stages.append(value[len("deal-won:") :])
            else:
                return (f"--conversion: expected purchase, deal-won or deal-won:STAGE (got "
                        f"'{value}')")  # fmt: skip
        return cls(purchase, won, tuple(dict.fromkeys(stages)))

    def describe(self) -> str:
        parts = ["a purchase"] if self.purchase else []
        if self.won:
            parts.append("a deal won")
        parts.extend(f"a deal moved to stage {stage}" for stage in self.stages)
        return " or ".join(parts)

    def of(self, event: Event, kind: str) -> list[str]:
        """The entities of ``kind`` that ``event`` converts."""
        if event.event_type == "purchase":
            ok = self.purchase
        elif event.event_type == "deal.stage_changed":
            ok = (self.won and event.fields.get("status") == "won") or (
                bool(self.stages) and event.fields.get("to_stage") in self.stages
            )
            if ok and kind == "deal":
                return [event.deal_id] if event.deal_id else []
        else:
            ok = False
        return [event.contact_id] if ok and kind == "contact" and event.contact_id else []


#: A purchase, or a deal whose status becomes won.
DEFAULT_CONVERSIONS = Conversions()


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _cut(n: int, k: int) -> list[tuple[int, int]]:
    """``k`` slices of ``range(n)`` of (almost) equal size, as (start, stop)."""
    return [(n * i // k, n * (i + 1) // k) for i in range(k) if n * i // k < n * (i + 1) // k]


def analyse(
    observations: Sequence[Observation],
    *,
    thresholds: Sequence[tuple[str, int]] = (),
    tiers: Sequence[tuple[str, int | None]] = (),
) -> dict[str, Any]:
    """The calibration figures (see the module's docstring). ``tiers`` as (name, below)."""
    n = len(observations)
    converters = sum(o.converted for o in observations)
    base = _ratio(converters, n)
    ordered = sorted(observations, key=lambda o: o.score)

    def band(name: str, members: Sequence[Observation], low: int | None,
             high: int | None) -> dict[str, Any]:  # fmt: skip
        won = sum(o.converted for o in members)
        rate = _ratio(won, len(members))
        return {"band": name, "from": low, "below": high, "entities": len(members),
                "converters": won, "rate": rate,
                "lift": None if rate is None or not base else rate / base}  # fmt: skip

    bands: list[dict[str, Any]] = []
    if tiers:
        low: int | None = None
        for name, below in tiers:
            members = [o for o in ordered if (low is None or o.score >= low)
                       and (below is None or o.score < below)]  # fmt: skip
            bands.append(band(name, members, low, below))
            low = below
    else:
        for i, (start, stop) in enumerate(_cut(n, BANDS), 1):
            members = ordered[start:stop]
            bands.append(band(f"{i}/{min(BANDS, n)}", members, members[0].score,
                              None if stop == n else ordered[stop].score))  # fmt: skip

    def at(score: int) -> dict[str, Any]:
        above = [o for o in observations if o.score >= score]
        won = sum(o.converted for o in above)
        precision = _ratio(won, len(above))
        recall = _ratio(won, converters)
        f1 = (2 * precision * recall / (precision + recall)
              if precision and recall else 0.0)  # fmt: skip
        return {"at": score, "entities": len(above), "converters": won, "precision": precision,
                "recall": recall, "f1": f1,
                "lift": None if precision is None or not base else precision / base}  # fmt: skip

    candidates = [at(score) for score in sorted({o.score for o in observations})]
    suggested = max(candidates, key=lambda c: (c["f1"], -c["at"]), default=None)
    rules = sorted({rule for o in observations for rule in o.rules})
    others = n - converters
    rule_rows: list[dict[str, Any]] = []
    for rule in rules:
        with_won = sum(1 for o in observations if o.converted and rule in o.rules)
        with_other = sum(1 for o in observations if not o.converted and rule in o.rules)
        share_won, share_other = _ratio(with_won, converters), _ratio(with_other, others)
        ratio = share_won / share_other if share_won is not None and share_other else None
        rule_rows.append({"rule": rule, "converters_with": with_won,
                          "share_of_converters": share_won, "others_with": with_other,
                          "share_of_others": share_other, "ratio": ratio})  # fmt: skip
    rule_rows.sort(key=lambda r: (-(r["share_of_converters"] or 0.0), r["rule"]))
    return {
        "entities": n,
        "converters": converters,
        "base_rate": base,
        "bands": bands,
        "thresholds": [{"name": name, **at(value)} for name, value in thresholds],
        "candidates": candidates,
        "suggested_threshold": suggested,
        "rules": rule_rows,
        "scores": {
            "converted": [o.score for o in ordered if o.converted],
            "not_converted": [o.score for o in ordered if not o.converted],
        },
    }


# ----- the report ------------------------------------------------------------------------------


def png_of(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def plots(figures: dict[str, Any], title: str) -> dict[str, str]:
    """The report's plots as base64 PNGs: distributions, lift per band, precision and recall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    scores = figures["scores"]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    everything = scores["converted"] + scores["not_converted"]
    bins = min(30, max(1, len(set(everything))))
    ax.hist([scores["not_converted"], scores["converted"]], bins=bins, density=True,
            label=["not converted", "converted"], color=["#9aa5b1", "#d9480f"])  # fmt: skip
    ax.set_xlabel(f"{title} at the start of the period")
    ax.set_ylabel("share of entities (density)")
    ax.legend()
    out["distribution"] = png_of(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.4))
    names = [b["band"] for b in figures["bands"]]
    lifts = [b["lift"] or 0 for b in figures["bands"]]
    ax.bar(names, lifts, color="#1c7ed6")
    ax.axhline(1.0, color="#495057", linewidth=1, linestyle="--")
    ax.set_xlabel("score band (low to high)")
    ax.set_ylabel("lift (band rate / base rate)")
    out["lift"] = png_of(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.4))
    xs = [c["at"] for c in figures["candidates"]]
    ax.plot(xs, [c["precision"] or 0 for c in figures["candidates"]], label="precision")
    ax.plot(xs, [c["recall"] or 0 for c in figures["candidates"]], label="recall")
    ax.plot(xs, [c["f1"] for c in figures["candidates"]], label="F1", linestyle=":")
    suggested = figures["suggested_threshold"]
    if suggested is not None:
        ax.axvline(suggested["at"], color="#212529", linewidth=1, linestyle="--",
                   label=f"suggested: {suggested['at']}")  # fmt: skip
    ax.set_xlabel("threshold (score at or above)")
    ax.set_ylim(0, 1.02)
    ax.legend()
    out["thresholds"] = png_of(fig)
    plt.close(fig)
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def html_head(title: str) -> str:
    """An HTML report's head, its style and its heading; ``title`` is escaped already."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #212529;
       padding: 0 1em; }}
h1 {{ font-size: 1.5em; }} h2 {{ font-size: 1.15em; margin-top: 2em; }}
table {{ border-collapse: collapse; margin: .5em 0; }}
th, td {{ border-bottom: 1px solid #dee2e6; padding: .3em .8em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
img {{ max-width: 100%; }} .note {{ color: #495057; }}
</style></head><body>
<h1>{title}</h1>
"""


def images_of(images: dict[str, str]) -> Callable[[str, str], str]:
    """An ``img(name, alt)`` that embeds ``images[name]`` (base64 PNG)."""

    def img(name: str, alt: str) -> str:
        return f'<img alt="{alt}" src="data:image/png;base64,{images[name]}">'

    return img


def table(head: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def render_html(figures: dict[str, Any], meta: dict[str, Any], images: dict[str, str]) -> str:
    suggested = figures["suggested_threshold"]
    summary = (
        f"{figures['entities']:,} {meta['entity']}s, {figures['converters']:,} converted "
        f"({_pct(figures['base_rate'])}) between {meta['since']} and {meta['until']}."
    )
    advice = (
        f"Suggested threshold: <b>{suggested['at']}</b> (precision {_pct(suggested['precision'])},"
        f" recall {_pct(suggested['recall'])}, lift {_x(suggested['lift'])}): the score with the "
        "best balance of the two (highest F1)."
        if suggested is not None and figures["converters"]
        else "No conversions in the period: nothing to calibrate against."
    )
    bands = table(
        ["band", "from", "below", "entities", "converted", "rate", "lift"],
        [[b["band"], "-" if b["from"] is None else b["from"],
          "-" if b["below"] is None else b["below"], b["entities"],
          b["converters"], _pct(b["rate"]), _x(b["lift"])] for b in figures["bands"]],
    )  # fmt: skip
    thresholds = table(
        ["threshold", "at", "entities at or above", "converted", "precision", "recall", "lift"],
        [[t.get("name", ""), t["at"], t["entities"], t["converters"], _pct(t["precision"]),
          _pct(t["recall"]), _x(t["lift"])]
         for t in [*figures["thresholds"], *([{"name": "suggested", **suggested}]
                                             if suggested else [])]],
    )  # fmt: skip
    rules = table(
        ["rule", "converters with points from it", "others with points from it", "ratio"],
        [[r["rule"], f"{r['converters_with']} ({_pct(r['share_of_converters'])})",
          f"{r['others_with']} ({_pct(r['share_of_others'])})", _x(r["ratio"])]
         for r in figures["rules"]],
    )  # fmt: skip
    title = html.escape(f"Calibration of {meta['score']} ({meta['entity']}s of {meta['tenant']})")

    img = images_of(images)
    return (
        html_head(title)
        + f"""<p>{html.escape(summary)}</p>
<p>{advice}</p>
<p class="note">Plan version {html.escape(str(meta["plan_version"]))}. {_converts(meta)} Each
entity's score is taken at the start of the period, its conversion after it.</p>
<h2>Scores of converted and not converted</h2>
{img("distribution", "score distributions")}
<h2>Conversion by score band</h2>
{img("lift", "lift per band")}
{bands}
<h2>Thresholds</h2>
<p class="note">For a threshold: <b>precision</b> is the conversion rate of the entities at or
above it, <b>recall</b> the share of all converters among them, <b>lift</b> precision over the
base rate ({_pct(figures["base_rate"])}). A higher threshold is more precise and misses more.</p>
{img("thresholds", "precision and recall per threshold")}
{thresholds}
<h2>Rules among converters</h2>
<p class="note">Entities whose score held points of the rule at the start of the period.</p>
{rules}
</body></html>
"""
    )


def _converts(meta: dict[str, Any]) -> str:
    what = meta.get("conversions", DEFAULT_CONVERSIONS.describe())
    return html.escape(f"Conversions: {what} (a won deal converts the deal, and the contact it "
                       "names).")  # fmt: skip


def write_report(figures: dict[str, Any], meta: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    images = plots(figures, meta["score"])
    json_path, html_path = out_dir / "calibration.json", out_dir / "calibration.html"
    json_path.write_text(json.dumps({**meta, **figures}, indent=1) + "\n")
    html_path.write_text(render_html(figures, meta, images))
    return [json_path, html_path]


# ----- observations from a JSON-lines archive, scored offline --------------------------------


def observations_from_archive(
    plan: Plan, score_name: str, lines: Iterable[str | Invalid | Item], *, since_ms: int,
    until_ms: int, tenant: str | None, conversions: Conversions = DEFAULT_CONVERSIONS,
) -> tuple[list[Observation], int]:  # fmt: skip
    """Score the archive's items up to ``since_ms`` with the offline scorer, then look for
    conversions up to ``until_ms``. Returns the observations and the number of bad lines (a
    line may already be ``Invalid``: not UTF-8, too long; see ``offline.read_lines``; or an
    item already parsed)."""
    from streams.commands.offline import OfflineScorer, parse_line

    score = plan.by_name[score_name]
    scorer = OfflineScorer(plan)
    converted: set[str] = set()
    bad = 0
    for line in lines:
        if isinstance(line, str) and not line.strip():
            continue
        item = parse_line(line) if isinstance(line, str) else line
        if isinstance(item, Invalid):
            bad += 1
            continue
        if item.tenant_id != tenant:
            continue
        at = item.occurred_at_ms
        if at <= since_ms:
            scorer.feed(item)
        elif at <= until_ms and type(item) is Event:
            converted.update(conversions.of(item, score.entity))
    scorer.advance_to(since_ms)
    out = []
    for key, state in scorer.states.items():
        if key.kind != score.entity or key.tenant_id != tenant:
            continue
        ledger = state.scores.get(score_name)
        value = ledger.total if ledger is not None else total(score, {})
        rules: set[str] = set()
        if ledger is not None:
            rules.update(c[C_RULE] for c in ledger.contribs)
            rules.update(rule for rule, _ in ledger.folded)
            rules.update(rule for rule, held in ledger.holds.items() if held is not None)
        rules = {r for r in rules if not r.startswith("adjustment:")}
        out.append(Observation(key.entity_id, value, key.entity_id in converted, frozenset(rules)))
    out.sort(key=lambda o: o.entity_id)
    return out, bad


def observations_from_topics(
    settings: Settings, codec: Codec, plan: Plan, score_name: str, *, since_ms: int,
    until_ms: int, tenant: str | None, timeout_s: float,
    conversions: Conversions = DEFAULT_CONVERSIONS, topic: str | None = None,
) -> tuple[list[Observation], str | None]:  # fmt: skip
    """The service's own record: each entity's last change of the score at or before
    ``since_ms`` on ``score-changed`` (or ``topic``: a shadow plan's; its value then; the rules
    of the changes that added points up to then), and conversions on the purchases and
    deal-stage-changes topics. Returns the observations and, if a topic could not be read,
    why."""
    from streams.engine.kafka import client_base_config
    from streams.wire.reading import read_inputs, read_to_end

    kind = plan.by_name[score_name].entity
    latest: dict[str, tuple[int, int]] = {}  # entity id -> (seq, value) at since
    rules: dict[str, set[str]] = {}
    converted: set[str] = set()

    def change(value: bytes) -> None:
        c = codec.decode(codec.score_changed, value)
        if c["score"] != score_name or c["entity"] != kind or c["tenant_id"] != tenant:
            return
        at = c["occurred_at"]
        at_ms = at if isinstance(at, int) else int(at.timestamp() * 1000)
        if at_ms > since_ms:
            return
        entity = c["entity_id"]
        if entity not in latest or c["seq"] > latest[entity][0]:
            latest[entity] = (c["seq"], c["new_value"])
        if c["new_value"] > c["old_value"] and c["cause"] in ("rule", "state", "deferred"):
            rules.setdefault(entity, set()).update(c["rule_ids"])

    why = read_to_end(client_base_config(settings), topic or settings.topic_score_changed, change,
                      timeout_s)  # fmt: skip

    def conversion(item: Item) -> None:
        if (type(item) is Event and item.tenant_id == tenant
                and since_ms < item.occurred_at_ms <= until_ms):  # fmt: skip
            converted.update(conversions.of(item, kind))

    if why is None:
        sources = (Source.PURCHASES, Source.DEAL_STAGE_CHANGES)
        why, _ = read_inputs(settings, codec, sources, conversion, timeout_s)
    out = [Observation(entity, value, entity in converted, frozenset(rules.get(entity, ())))
           for entity, (_, value) in sorted(latest.items())]  # fmt: skip
    return out, why


def _from_kafka(args: Any, plan: Plan, since: int, until: int) -> list[Observation] | int:
    import sys

    from streams.wire.reading import service_codec

    loaded = service_codec("calibrate")
    if isinstance(loaded, int):
        return loaded
    settings, codec = loaded
    observations, why = observations_from_topics(
        settings, codec, plan, args.score, since_ms=since, until_ms=until, tenant=args.tenant,
        timeout_s=args.timeout, conversions=args.conversions,
    )  # fmt: skip
    if why is not None:
        print(f"leadscore calibrate: {why}", file=sys.stderr)
        return 1
    return observations


def plan_with_score(command: str, plan_path: str | None, score: str) -> tuple[Plan, str] | int:
    """The plan and its file (``--plan``, else the worker's from the settings) if it has
    ``score``; else the exit code, the reason printed as ``leadscore COMMAND: ...``."""
    import sys

    from streams.commands.offline import load_plan_or_exit

    if plan_path is None:  # the worker's plan, from the settings
        from streams.errors import LeadscoreError
        from streams.settings import load_settings

        try:
            plan_path = str(load_settings().plan_path)
        except LeadscoreError as exc:
            print(f"leadscore {command}: {exc}", file=sys.stderr)
            return 2
    plan = load_plan_or_exit(plan_path)
    if isinstance(plan, int):
        return plan
    if score not in plan.by_name:
        print(f"leadscore {command}: --score: the plan has no score '{score}' (it has: "
              f"{', '.join(plan.by_name)})", file=sys.stderr)  # fmt: skip
        return 2
    return plan, plan_path


def cmd_calibrate(args: Any) -> int:
    """``leadscore calibrate --score S --since T --until U [--archive FILE] [--plan P]``."""
    import sys

    from streams.scoring.durations import parse_instant

    found = plan_with_score("calibrate", args.plan, args.score)
    if isinstance(found, int):
        return found
    plan = found[0]
    since, until = parse_instant(args.since), parse_instant(args.until)
    for name, value, raw in (("--since", since, args.since), ("--until", until, args.until)):
        if value is None:
            print(f"leadscore calibrate: {name} must be epoch millis or ISO-8601 with an offset "
                  f"(got '{raw}')", file=sys.stderr)  # fmt: skip
            return 2
    assert since is not None and until is not None  # noqa: S101 - checked just above
    if until <= since:
        print("leadscore calibrate: --until must be after --since", file=sys.stderr)
        return 2
    conversions = Conversions.parse(args.conversion)
    if isinstance(conversions, str):
        print(f"leadscore calibrate: {conversions}", file=sys.stderr)
        return 2
    args.conversions = conversions
    if args.compare is not None:
        return _compare(args, plan, since, until)
    bad = 0
    if args.archive is None:
        observations_or_code = _from_kafka(args, plan, since, until)
        if isinstance(observations_or_code, int):
            return observations_or_code
        observations = observations_or_code
    else:
        try:
            from streams.commands.offline import read_lines

            with open(args.archive, "rb") as raw:
                lines = (line for _, line in read_lines(raw))
                observations, bad = observations_from_archive(
                    plan,
                    args.score,
                    lines,
                    since_ms=since,
                    until_ms=until,
                    tenant=args.tenant,
                    conversions=conversions,
                )
        except OSError as error:
            print(f"leadscore calibrate: cannot read {args.archive}: {error}", file=sys.stderr)
            return 1
    score = plan.by_name[args.score]
    figures = analyse(observations, thresholds=[(t.name, t.at) for t in score.thresholds],
                      tiers=[(t.name, t.below) for t in score.tiers])  # fmt: skip
    meta = {"score": args.score, "entity": score.entity, "plan_version": plan.version,
            "tenant": args.tenant if args.tenant is not None else "the default tenant",
            "since": args.since, "until": args.until,
            "conversions": conversions.describe()}  # fmt: skip
    written = write_report(figures, meta, Path(args.out))
    if bad:
        print(f"leadscore calibrate: {bad} bad line(s) skipped", file=sys.stderr)
    suggested = figures["suggested_threshold"]
    print(f"{figures['entities']} {score.entity}s, {figures['converters']} converted; suggested "
          f"threshold {suggested['at'] if suggested else '-'}; wrote "
          f"{', '.join(str(p) for p in written)}")  # fmt: skip
    return 0


# ----- two plans side by side (``--compare CANDIDATE``) ----------------------------------------

#: ``--compare shadow``: the tenant's shadow plan, from its own topic (``compare_shadow``).
SHADOW = "shadow"


def _side(observations: Sequence[Observation], plan: Plan, score_name: str) -> dict[str, Any]:
    """One plan's figures for the comparison: :func:`analyse`, with the tiers and thresholds
    of its score, plus deciles (ten slices of equal size, ties shared) and the AUC."""
    from streams.commands.measures import auc, deciles

    score = plan.by_name[score_name]
    figures = analyse(observations, thresholds=[(t.name, t.at) for t in score.thresholds],
                      tiers=[(t.name, t.below) for t in score.tiers])  # fmt: skip
    values = [float(o.score) for o in observations]
    labels = [o.converted for o in observations]
    return {"score": score_name, "plan_version": plan.version,
            "predicted": getattr(score, "predicted", None) is not None,
            "auc": auc(values, labels), "deciles": deciles(values, labels), **figures}  # fmt: skip


def _compare_items(args: Any) -> tuple[list[str | Invalid | Item], int] | int:
    """What both plans are scored from: the archive's lines, or the input topics' items
    sorted by event time (the candidate has no record on ``score-changed`` yet, so both sides
    are scored offline)."""
    import sys

    if args.archive is not None:
        from streams.commands.offline import read_lines

        try:
            with open(args.archive, "rb") as raw:
                return [line for _, line in read_lines(raw)], 0
        except OSError as error:
            print(f"leadscore calibrate: cannot read {args.archive}: {error}", file=sys.stderr)
            return 1
    from streams.wire.reading import read_inputs, service_codec

    loaded = service_codec("calibrate")
    if isinstance(loaded, int):
        return loaded
    settings, codec = loaded
    items: list[Item] = []
    why, bad = read_inputs(settings, codec, Source, items.append, args.timeout)
    if why is not None:
        print(f"leadscore calibrate: {why}", file=sys.stderr)
        return 1
    items.sort(key=lambda item: item.occurred_at_ms)
    return [*items], bad


def _compare(args: Any, plan: Plan, since: int, until: int) -> int:
    """``calibrate --compare CANDIDATE [--compare-score NAME]``: both plans over the same
    period, from the same inputs, side by side (comparison.json and comparison.html)."""
    import sys

    from streams.commands.offline import load_plan_or_exit

    if args.compare == SHADOW and not Path(SHADOW).is_file():
        return _compare_shadow(args, plan, since, until)
    candidate = load_plan_or_exit(args.compare)
    if isinstance(candidate, int):
        return candidate
    other = args.compare_score or args.score
    if other not in candidate.by_name:
        print(f"leadscore calibrate: --compare-score: the candidate has no score '{other}' (it "
              f"has: {', '.join(candidate.by_name)})", file=sys.stderr)  # fmt: skip
        return 2
    kind = plan.by_name[args.score].entity
    if candidate.by_name[other].entity != kind:
        print(f"leadscore calibrate: --compare-score: '{other}' is a "
              f"{candidate.by_name[other].entity} score, '{args.score}' a {kind} score",
              file=sys.stderr)  # fmt: skip
        return 2
    read = _compare_items(args)
    if isinstance(read, int):
        return read
    items, bad = read
    sides = {}
    for side, side_plan, name in (("current", plan, args.score), ("candidate", candidate, other)):
        observations, bad_lines = observations_from_archive(
            side_plan, name, items, since_ms=since, until_ms=until, tenant=args.tenant,
            conversions=args.conversions,
        )  # fmt: skip
        sides[side] = _side(observations, side_plan, name)
    bad += bad_lines
    meta = {"entity": kind, "tenant": args.tenant if args.tenant is not None
            else "the default tenant", "since": args.since, "until": args.until,
            "conversions": args.conversions.describe(),
            "source": "archive" if args.archive is not None else "input topics"}  # fmt: skip
    written = write_comparison(sides, meta, Path(args.out))
    if bad:
        print(f"leadscore calibrate: {bad} bad line(s) skipped", file=sys.stderr)
    print(summary(sides, kind, written))
    return 0


def _compare_shadow(args: Any, plan: Plan, since: int, until: int) -> int:
    """``--compare shadow``: the active plan from ``score-changed`` and the tenant's shadow plan
    from ``score-changed-shadow``, the same entities side by side, and those whose tier differs
    (``streams.commands.compare_shadow``)."""
    import sys

    from streams.commands.compare_shadow import MAX_LISTED, tier_differences
    from streams.commands.shadow_plans import shadows_of
    from streams.scoring import PlanError, load_plan
    from streams.wire.reading import service_codec

    if args.tenant is None:
        print("leadscore calibrate: --compare shadow needs --tenant (the default tenant has no "
              "shadow plans)", file=sys.stderr)  # fmt: skip
        return 2
    loaded = service_codec("calibrate")
    if isinstance(loaded, int):
        return loaded
    settings, codec = loaded
    try:
        running = shadows_of(settings, args.tenant, timeout_s=args.timeout)
    except RuntimeError as exc:
        print(f"leadscore calibrate: {exc}", file=sys.stderr)
        return 1
    if len(running) != 1:
        print(f"leadscore calibrate: --compare shadow: tenant {args.tenant} runs "
              f"{len(running)} shadow plans ({', '.join(sorted(running)) or 'none'}); it "
              "compares one", file=sys.stderr)  # fmt: skip
        return 2
    (found,) = running.values()
    try:
        shadow = load_plan(found.text, source=f"tenant {args.tenant}'s shadow {found.version}")
    except PlanError as exc:
        print(f"leadscore calibrate: {exc}", file=sys.stderr)
        return 1
    other = args.compare_score or args.score
    kind = plan.by_name[args.score].entity
    score = shadow.by_name.get(other)
    if score is None or score.entity != kind:
        print(f"leadscore calibrate: the shadow plan {shadow.version} has no {kind} score "
              f"'{other}' (--compare-score names it)", file=sys.stderr)  # fmt: skip
        return 2
    sides: dict[str, list[Observation]] = {}
    for side, side_plan, name, topic in (
        ("current", plan, args.score, settings.topic_score_changed),
        ("candidate", shadow, other, settings.topic_score_changed_shadow),
    ):
        observations, why = observations_from_topics(
            settings, codec, side_plan, name, since_ms=since, until_ms=until, tenant=args.tenant,
            timeout_s=args.timeout, conversions=args.conversions, topic=topic,
        )  # fmt: skip
        if why is not None:
            print(f"leadscore calibrate: {why}", file=sys.stderr)
            return 1
        sides[side] = observations
    common = {o.entity_id for o in sides["current"]} & {o.entity_id for o in sides["candidate"]}
    only = {side: sum(o.entity_id not in common for o in obs) for side, obs in sides.items()}
    both = {side: [o for o in obs if o.entity_id in common] for side, obs in sides.items()}
    differs = tier_differences(both["current"], both["candidate"], plan, args.score, shadow,
                               other)  # fmt: skip
    figures = {"current": _side(both["current"], plan, args.score),
               "candidate": _side(both["candidate"], shadow, other)}  # fmt: skip
    meta = {"entity": kind, "tenant": args.tenant, "since": args.since, "until": args.until,
            "conversions": args.conversions.describe(),
            "source": f"{settings.topic_score_changed} and "
                      f"{settings.topic_score_changed_shadow}",
            "shadow_version": shadow.version,
            "entities_only_current": only["current"], "entities_only_shadow": only["candidate"],
            "tier_differs_count": len(differs),
            "tier_differs": differs[:MAX_LISTED]}  # fmt: skip
    written = write_comparison(figures, meta, Path(args.out))
    print(f"{summary(figures, kind, written)}; tier differs for {len(differs)}")
    return 0


def summary(sides: dict[str, dict[str, Any]], kind: str, written: list[Path]) -> str:
    """The comparison's one line on stdout."""
    now, then = sides["current"], sides["candidate"]

    def top(side: dict[str, Any]) -> str:
        lift = side["deciles"][0]["lift"] if side["deciles"] else None
        return f"AUC {_num(side['auc'])}, top-decile lift {_x(lift)}"

    return (f"{now['entities']} {kind}s, {now['converters']} converted; {now['score']} "
            f"({now['plan_version']}): {top(now)}; {then['score']} ({then['plan_version']}): "
            f"{top(then)}; wrote {', '.join(str(p) for p in written)}")  # fmt: skip


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def comparison_plots(sides: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each side's plots (:func:`plots`) and the lift per decile of both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {f"{side}-{name}": image for side, figures in sides.items()
           for name, image in plots(figures, figures["score"]).items()}  # fmt: skip
    fig, ax = plt.subplots(figsize=(7, 3.4))
    colours = (("current", "#1c7ed6"), ("candidate", "#d9480f"))
    for offset, (side, colour) in zip((-0.2, 0.2), colours, strict=True):
        rows = sides[side]["deciles"]
        ax.bar([r["decile"] + offset for r in rows], [r["lift"] or 0 for r in rows], width=0.4,
               color=colour, label=f"{side}: {sides[side]['score']}")  # fmt: skip
    ax.axhline(1.0, color="#495057", linewidth=1, linestyle="--")
    ax.set_xticks(range(1, 11))
    ax.set_xlabel("decile (1: the highest scores)")
    ax.set_ylabel("lift (decile rate / base rate)")
    ax.legend()
    out["deciles"] = png_of(fig)
    plt.close(fig)
    return out


def render_comparison(sides: dict[str, dict[str, Any]], meta: dict[str, Any],
                      images: dict[str, str]) -> str:  # fmt: skip
    now, then = sides["current"], sides["candidate"]
    names = [f"{s['score']} ({s['plan_version']})" for s in (now, then)]
    title = html.escape(f"Calibration: {names[0]} and {names[1]} ({meta['entity']}s of "
                        f"{meta['tenant']})")  # fmt: skip

    def best(side: dict[str, Any], key: str) -> str:
        s = side["suggested_threshold"]
        if s is None:
            return "-"
        return str(s["at"]) if key == "at" else (_pct(s[key]) if key != "lift" else _x(s[key]))

    headline = table(
        ["", f"current: {names[0]}", f"candidate: {names[1]}"],
        [["entities", now["entities"], then["entities"]],
         ["converted", now["converters"], then["converters"]],
         ["AUC", _num(now["auc"]), _num(then["auc"])],
         ["lift of the top decile", _x(now["deciles"][0]["lift"] if now["deciles"] else None),
          _x(then["deciles"][0]["lift"] if then["deciles"] else None)],
         ["suggested threshold", best(now, "at"), best(then, "at")],
         ["its precision", best(now, "precision"), best(then, "precision")],
         ["its recall", best(now, "recall"), best(then, "recall")],
         ["its lift", best(now, "lift"), best(then, "lift")]],
    )  # fmt: skip
    decile_rows = table(
        ["decile", "current: entities", "rate", "lift", "candidate: entities", "rate", "lift"],
        [[a["decile"], f"{a['entities']:.1f}", _pct(a["rate"]), _x(a["lift"]),
          f"{b['entities']:.1f}", _pct(b["rate"]), _x(b["lift"])]
         for a, b in zip(now["deciles"], then["deciles"], strict=True)],
    )  # fmt: skip

    def bands(side: dict[str, Any]) -> str:
        return table(
            ["band", "from", "below", "entities", "converted", "rate", "lift"],
            [[b["band"], "-" if b["from"] is None else b["from"],
              "-" if b["below"] is None else b["below"], b["entities"], b["converters"],
              _pct(b["rate"]), _x(b["lift"])] for b in side["bands"]],
        )  # fmt: skip

    def thresholds(side: dict[str, Any]) -> str:
        suggested = side["suggested_threshold"]
        rows = [*side["thresholds"], *([{"name": "suggested", **suggested}] if suggested else [])]
        return table(
            ["threshold", "at", "at or above", "converted", "precision", "recall", "lift"],
            [[t["name"], t["at"], t["entities"], t["converters"], _pct(t["precision"]),
              _pct(t["recall"]), _x(t["lift"])] for t in rows],
        )  # fmt: skip

    def img(name: str, alt: str) -> str:
        return f'<img alt="{alt}" src="data:image/png;base64,{images[name]}">'

    def column(side: str) -> str:
        figures = sides[side]
        return (f"<div><h3>{side}: {html.escape(names[0 if side == 'current' else 1])}</h3>"
                f"{img(side + '-lift', 'lift per band')}{bands(figures)}"
                f"{img(side + '-thresholds', 'precision and recall')}{thresholds(figures)}"
                f"{img(side + '-distribution', 'score distributions')}</div>")  # fmt: skip

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 90em; color: #212529;
       padding: 0 1em; }}
h1 {{ font-size: 1.5em; }} h2 {{ font-size: 1.15em; margin-top: 2em; }} h3 {{ font-size: 1em; }}
table {{ border-collapse: collapse; margin: .5em 0; }}
th, td {{ border-bottom: 1px solid #dee2e6; padding: .3em .8em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
img {{ max-width: 100%; }} .note {{ color: #495057; }}
.sides {{ display: grid; grid-template-columns: 1fr 1fr; gap: 2em; }}
</style></head><body>
<h1>{title}</h1>
<p>The same {html.escape(meta["entity"])}s, scored under each plan from the same inputs
({html.escape(meta["source"])}) at {html.escape(str(meta["since"]))}; conversions after it, up
to {html.escape(str(meta["until"]))}. {_converts(meta)}</p>
{headline}
<h2>Lift per decile</h2>
<p class="note">Ten slices of equal size from the highest score down; entities of one value
are shared among the slices their ties span, so counts may be fractional.</p>
{img("deciles", "lift per decile of both")}
{decile_rows}
{_tier_differences(meta)}
<h2>Bands and thresholds</h2>
<div class="sides">{column("current")}{column("candidate")}</div>
</body></html>
"""


def _tier_differences(meta: dict[str, Any]) -> str:
    """``--compare shadow``: the entities whose tier differs between the plans (the first 50)."""
    if "tier_differs" not in meta:
        return ""
    rows = [[d["entity_id"], d["current"]["value"], d["current"]["tier"] or "-",
             d["shadow"]["value"], d["shadow"]["tier"] or "-"]
            for d in meta["tier_differs"][:50]]  # fmt: skip
    return (f"<h2>Entities whose tier differs: {meta['tier_differs_count']}</h2>"
            + table(["entity", "current", "tier", "shadow", "tier"], rows))  # fmt: skip


def write_comparison(sides: dict[str, dict[str, Any]], meta: dict[str, Any],
                     out_dir: Path) -> list[Path]:  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    images = comparison_plots(sides)
    json_path, html_path = out_dir / "comparison.json", out_dir / "comparison.html"
    json_path.write_text(json.dumps({**meta, **sides}, indent=1) + "\n")
    html_path.write_text(render_comparison(sides, meta, images))
    return [json_path, html_path]
