"""``leadscore calibrate``: the figures against a hand computation, the planted signal of the
demo dataset found, and the command's report files and mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.cli import main
from streams.commands.calibrate import Observation, analyse, observations_from_archive
from streams.commands.planted import SINCE, UNTIL, planted
from streams.scoring import load_plan

ROOT = Path(__file__).resolve().parents[2]
DEMO_PLAN = ROOT / "plans" / "examples" / "calibration-demo.yaml"


def test_the_figures_equal_a_hand_computation() -> None:
    rows = [("a", 10, True, {"r1"}), ("b", 10, False, {"r1"}), ("c", 40, True, {"r1", "r2"}),
            ("d", 40, True, {"r2"}), ("e", 70, False, set()), ("f", 0, False, set())]  # fmt: skip
    obs = [Observation(e, s, c, frozenset(r)) for e, s, c, r in rows]
    got = analyse(obs, thresholds=[("mql", 40)], tiers=[("cold", 20), ("hot", None)])
    assert (got["entities"], got["converters"], got["base_rate"]) == (6, 3, 0.5)
    # cold: a, b, f (1 of 3 converted: rate 1/3, lift 2/3); hot: c, d, e (2 of 3: lift 4/3)
    assert [(b["band"], b["entities"], b["converters"]) for b in got["bands"]] == [
        ("cold", 3, 1), ("hot", 3, 2)]  # fmt: skip
    assert got["bands"][0]["lift"] == pytest.approx(2 / 3)
    assert got["bands"][1]["lift"] == pytest.approx(4 / 3)
    # at 40: c, d, e: precision 2/3, recall 2/3, lift 4/3, F1 2/3
    [mql] = got["thresholds"]
    assert (mql["entities"], mql["converters"]) == (3, 2)
    assert mql["precision"] == pytest.approx(2 / 3) and mql["recall"] == pytest.approx(2 / 3)
    assert mql["f1"] == pytest.approx(2 / 3) and mql["lift"] == pytest.approx(4 / 3)
    # candidates 0 (F1 2/3: precision 1/2, recall 1), 10 (3/5 and 1: F1 3/4), 40 (2/3), 70 (0)
    assert [c["at"] for c in got["candidates"]] == [0, 10, 40, 70]
    assert got["suggested_threshold"]["at"] == 10
    assert got["suggested_threshold"]["f1"] == pytest.approx(0.75)
    # r1: 2 of 3 converters (a, c), 1 of 3 others (b): ratio 2; r2: 2 of 3 and 0 of 3
    assert [(r["rule"], r["converters_with"], r["others_with"], r["ratio"])
            for r in got["rules"]] == [("r1", 2, 1, 2.0), ("r2", 2, 0, None)]  # fmt: skip


def test_no_tiers_gives_ten_bands_of_equal_count_and_no_conversions_no_advice() -> None:
    obs = [Observation(f"e{i}", i, False) for i in range(25)]
    got = analyse(obs)
    assert [b["entities"] for b in got["bands"]] == [2, 3, 2, 3, 2, 3, 2, 3, 2, 3]
    assert got["bands"][0]["from"] == 0 and got["bands"][0]["below"] == 2
    assert got["bands"][-1]["below"] is None
    assert got["base_rate"] == 0 and all(b["lift"] is None for b in got["bands"])


def test_the_demo_datasets_planted_signal_is_found() -> None:
    plan = load_plan(DEMO_PLAN.read_text(), source=str(DEMO_PLAN))
    lines = [json.dumps(r) for r in planted(2000, seed=11)]
    obs, bad = observations_from_archive(plan, "engagement", lines, since_ms=SINCE,
                                         until_ms=UNTIL, tenant=None)  # fmt: skip
    assert bad == 0 and len(obs) > 1900
    score = plan.by_name["engagement"]
    got = analyse(obs, thresholds=[(t.name, t.at) for t in score.thresholds],
                  tiers=[(t.name, t.below) for t in score.tiers])  # fmt: skip
    lifts = {b["band"]: b["lift"] for b in got["bands"]}
    assert lifts["cold"] < 0.5 < 1.3 < lifts["hot"]  # buyers score high, the others low
    rules = {r["rule"]: r["ratio"] for r in got["rules"]}
    assert rules["reply"] > 1.5 > rules["blog"]  # replies mark buyers; blog reading does not
    assert got["suggested_threshold"]["lift"] > 1.5


def test_the_command_writes_the_report_and_names_its_mistakes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive, out = tmp_path / "data.jsonl", tmp_path / "report"
    assert main(["demo", "--calibration-archive", str(archive), "--contacts", "300"]) == 0
    args = ["calibrate", "--plan", str(DEMO_PLAN), "--score", "engagement", "--archive",
            str(archive), "--since", "2026-01-19T00:00:00Z", "--until", "2026-02-18T00:00:00Z",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "calibration.json").read_text())
    assert report["entities"] > 250 and report["plan_version"] == "calibration-demo-1"
    page = (out / "calibration.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3 and "Suggested threshold" in page
    capsys.readouterr()
    assert main([*args[:4], "nope", *args[5:]]) == 2
    assert "--score: the plan has no score 'nope' (it has: engagement)" in capsys.readouterr().err
    assert main([*args[:8], "soon", *args[9:]]) == 2
    assert "--since must be epoch millis or ISO-8601" in capsys.readouterr().err
    assert main([*args[:10], "2026-01-01T00:00:00Z", *args[11:]]) == 2
    assert "--until must be after --since" in capsys.readouterr().err
