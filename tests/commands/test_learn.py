"""``leadscore learn`` on the learning demo dataset (``leadscore demo --learning-archive``): it
finds the planted signal and beats the deliberately mis-weighted hand-written plan on the
hold-out; the candidate plan is the current plan plus the predicted score, scores offline as
the learner computed it, and goes through the retraining flow (``replay`` dry run,
``calibrate --compare``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from streams.cli import main
from streams.scoring import load_plan
from streams.scoring.durations import parse_instant
from streams.scoring.plan.reader import read_yaml

ROOT = Path(__file__).resolve().parents[2]
HAND = ROOT / "plans" / "examples" / "learning-demo.yaml"
PERIOD = ["--since", "2026-01-19T00:00:00Z", "--until", "2026-05-25T00:00:00Z"]
#: What the planted truth rewards (streams.commands.planted.TRUTH), as the learner names the
#: features.
PLANTED = {"pricing-7d", "reply-7d", "industry-saas"}


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The documented sequence's first two steps: the dataset, then learn."""
    tmp = tmp_path_factory.mktemp("learn")
    archive = tmp / "data.jsonl"
    assert main(["demo", "--learning-archive", str(archive), "--contacts", "3000"]) == 0
    candidate, report = tmp / "candidate.yaml", tmp / "learning"
    assert main(["learn", "--plan", str(HAND), "--score", "engagement", "--archive",
                 str(archive), *PERIOD, "--attribute", "industry=saas", "--attribute",
                 "employees", "--out", str(candidate), "--report", str(report)]) == 0  # fmt: skip
    figures = json.loads((report / "learning.json").read_text())
    return {"tmp": tmp, "archive": archive, "candidate": candidate, "report": report,
            "figures": figures}  # fmt: skip


def test_learn_finds_the_planted_signal_and_beats_the_hand_written_plan(
    flow: dict[str, Any],
) -> None:
    figures = flow["figures"]
    weights = {f["name"]: f["standardised_weight"] for f in figures["features"]}
    # every planted feature weighs more (per standard deviation) than any other, and adds
    others = max(abs(w) for name, w in weights.items() if name not in PLANTED)
    assert min(weights[name] for name in PLANTED) > others
    learned, hand = figures["learned"], figures["hand"]
    lifts = learned["top_decile_lift"], hand["top_decile_lift"]
    print(f"hold-out AUC learned {learned['auc']:.3f}, hand {hand['auc']:.3f}; Brier "
          f"{learned['brier']:.4f}, {hand['brier']:.4f}; top-decile lift {lifts[0]:.2f}, "
          f"{lifts[1]:.2f}", file=sys.stderr)  # fmt: skip
    # Measured: AUC 0.843 against 0.597, a margin of 0.246 (this dataset: seed 7, 3,000
    # contacts; the fit is deterministic). Over seeds 1-10 of the same dataset the margin was
    # 0.160-0.285, so 0.15 is a bound any of them meets, not a tuned one.
    assert figures["auc_margin"] == pytest.approx(learned["auc"] - hand["auc"])
    assert figures["auc_margin"] >= 0.15
    assert learned["brier"] < hand["brier"]
    assert lifts[0] > 2 * lifts[1]
    counts = figures["counts"]
    assert counts["train"]["rows"] > 1000 and counts["holdout"]["rows"] > 1000
    assert len(counts["train"]["cutoffs"]) == 6 and len(counts["holdout"]["cutoffs"]) == 4
    page = (flow["report"] / "learning.html").read_text()
    assert page.count('src="data:image/png;base64,') == 4 and "one-feature logistic" in page


def test_the_candidate_is_the_current_plan_plus_the_predicted_score(flow: dict[str, Any]) -> None:
    text = flow["candidate"].read_text()
    candidate = load_plan(text, source="candidate")
    hand = load_plan(HAND.read_text(), source="hand")
    assert candidate.version == "learning-demo-1+learned" != hand.version
    assert candidate.lateness_ms == hand.lateness_ms
    before, _ = read_yaml(HAND.read_text())
    after, _ = read_yaml(text)
    assert after["scores"][:-1] == before["scores"]
    assert {k: v for k, v in after.items() if k not in ("version", "scores")} == {
        k: v for k, v in before.items() if k not in ("version", "scores")}  # fmt: skip
    predicted = candidate.by_name["engagement-predicted"]
    assert predicted.entity == "contact" and predicted.predicted is not None
    assert predicted.predicted.model == flow["figures"]["model"]
    names = [f.name for f in predicted.predicted.features]
    assert set(names) >= PLANTED and "pricing-14d" not in names  # (equal to 7d: left out)
    assert [t.name for t in predicted.thresholds] == ["likely"]


def test_the_candidate_scores_offline_as_the_learner_computed(
    flow: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sample = flow["figures"]["sample"]
    cutoff = sample[0]["cutoff"]
    at = parse_instant(cutoff)
    assert at is not None and len(sample) == 50
    lines = flow["archive"].read_text().splitlines()
    before = flow["tmp"] / "before.jsonl"
    before.write_text(
        "".join(line + "\n" for line in lines if json.loads(line)["occurred_at"] <= at)
    )
    capsys.readouterr()
    assert main(["score", "--plan", str(flow["candidate"]), str(before), "--until", cutoff]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    values = {(r["entity_id"], r["score"]): r["value"] for r in rows if r["kind"] == "score"}
    for row in sample:
        assert values[(row["entity_id"], "engagement-predicted")] == row["learned_bp"]
        assert values[(row["entity_id"], "engagement")] == row["hand"]


def test_replay_and_calibrate_compare_put_both_plans_side_by_side(
    flow: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    tmp = flow["tmp"]
    assert main(["replay", "--plan", str(flow["candidate"]), "--current", str(HAND),
                 "--archive", str(flow["archive"]), "--out", str(tmp / "replay"),
                 "--quiet"]) == 0  # fmt: skip
    replay = json.loads((tmp / "replay" / "replay.json").read_text())
    assert replay["dry_run"] and replay["scores_changed"] == 3000  # each gains the new score
    assert {r["score"] for r in replay["entities"]} == {"engagement-predicted"}
    fire = {(f["score"], f["threshold"]) for f in replay["thresholds_would_fire"]}
    assert fire == {("engagement-predicted", "likely")}
    out = tmp / "compare"
    args = ["calibrate", "--plan", str(HAND), "--score", "engagement", "--archive",
            str(flow["archive"]), "--since", "2026-04-25T00:00:00Z", "--until",
            "2026-05-25T00:00:00Z", "--compare", str(flow["candidate"]), "--compare-score",
            "engagement-predicted", "--out", str(out)]  # fmt: skip
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "comparison.json").read_text())
    now, then = report["current"], report["candidate"]
    assert (now["score"], then["score"]) == ("engagement", "engagement-predicted")
    assert (now["plan_version"], then["plan_version"]) == ("learning-demo-1",
                                                           "learning-demo-1+learned")  # fmt: skip
    assert now["entities"] == then["entities"] > 2000
    assert now["converters"] == then["converters"] > 20
    assert then["auc"] > now["auc"] + 0.15 and then["predicted"] and not now["predicted"]
    assert then["deciles"][0]["lift"] > 2 * now["deciles"][0]["lift"]
    assert [b["band"] for b in now["bands"]] == ["cold", "warm", "hot"]  # its tiers
    assert len(then["bands"]) == 10  # no tiers: ten bands of equal count
    assert [t["name"] for t in then["thresholds"]] == ["likely"]
    assert "engagement-predicted (learning-demo-1+learned): AUC" in printed
    page = (out / "comparison.html").read_text()
    assert page.count('src="data:image/png;base64,') == 7
    assert main([*args[:-3], "nope", "--out", str(out)]) == 2
    assert "--compare-score: the candidate has no score 'nope'" in capsys.readouterr().err


def test_the_command_names_its_mistakes(
    flow: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = flow["tmp"]
    base = ["learn", "--plan", str(HAND), "--score", "engagement", "--archive",
            str(flow["archive"]), "--out", str(tmp / "c.yaml"),
            "--report", str(tmp / "r")]  # fmt: skip
    capsys.readouterr()
    cases = [
        (["--score", "nope"], 2, "--score: the plan has no score 'nope' (it has: engagement)"),
        (["--since", "soon"], 2, "--since must be epoch millis or ISO-8601 with an offset"),
        (["--every", "weekly"], 2, "--every must be a duration such as 7d or 30d"),
        (["--attribute", "size="], 2, "--attribute: expected NAME or NAME=VALUE (got 'size=')"),
        (["--conversion", "sale"], 2, "--conversion: expected purchase, deal-won or"),
        (["--holdout", "1"], 2, "--holdout must lie between 0 and 1"),
        (["--name", "engagement"], 1, "--name: the plan already has a score 'engagement'"),
        (["--since", "2026-05-01T00:00:00Z"], 1, "too few for a hold-out and training cutoffs"),
        (
            ["--plan", str(flow["candidate"]), "--score", "engagement-predicted"],
            1,
            "--score: engagement-predicted is predicted itself; name a hand-written",
        ),
    ]
    for extra, code, message in cases:
        assert main([*base, *extra]) == code, extra
        assert message in capsys.readouterr().err, extra
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if scikit-learn were not installed
    assert main(base) == 2
    assert "needs scikit-learn, which is not installed" in capsys.readouterr().err
