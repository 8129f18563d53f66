"""``leadscore replay`` (dry run): the candidate's side equals offline scoring of the same inputs
under the candidate plan, the current side under the current one, and the migrations, crossings
and rule totals follow from them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from streams.cli import main
from streams.commands.planted import planted

ROOT = Path(__file__).resolve().parents[2]
CURRENT = ROOT / "plans" / "examples" / "calibration-demo.yaml"


def finals(plan: Path, archive: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    capsys.readouterr()
    assert main(["score", "--plan", str(plan), str(archive)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return {r["entity_id"]: r["value"] for r in rows if r["kind"] == "score"}


def test_the_dry_run_equals_offline_scoring_under_each_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "inputs.jsonl"
    archive.write_text("".join(json.dumps(r) + "\n" for r in planted(400, seed=3)
                               if r["type"] != "purchase"))  # fmt: skip
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CURRENT.read_text().replace("version: calibration-demo-1",
                                                     "version: candidate-2")
                         .replace("points: 20}", "points: 35}"))  # pricing: 20 -> 35  # fmt: skip
    out = tmp_path / "replay"
    assert main(["replay", "--plan", str(candidate), "--current", str(CURRENT), "--archive",
                 str(archive), "--out", str(out), "--quiet"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    report = json.loads((out / "replay.json").read_text())
    assert report["dry_run"] and "dry run: nothing was published" in printed
    now, then = finals(CURRENT, archive, capsys), finals(candidate, archive, capsys)
    changed = {e: (now[e], then[e]) for e in now if now[e] != then[e]}
    assert changed and report["scores_changed"] == len(changed)
    assert {r["entity_id"]: (r["current"], r["candidate"]) for r in report["entities"]} == changed
    assert all(r["delta"] == r["candidate"] - r["current"] > 0 for r in report["entities"])
    # the tenant is tenant_id in the rows and tenant in the report (not account: docs/migration.md)
    assert report["tenant"] is None and "account" not in report
    assert all(r["tenant_id"] is None and "account_id" not in r for r in report["entities"])
    # migrations and crossings, recounted from the values (tiers cold < 30 <= warm < 60 <= hot)
    tier = lambda v: "cold" if v < 30 else "warm" if v < 60 else "hot"  # noqa: E731
    moves = Counter((tier(a), tier(b)) for a, b in changed.values() if tier(a) != tier(b))
    assert {(m["from"], m["to"]): m["entities"] for m in report["tier_migrations"]} == moves
    ups = Counter(name for a, b in changed.values() for name, at in (("mql", 60), ("sql", 120))
                  if a < at <= b)  # fmt: skip
    assert {f["threshold"]: f["entities"] for f in report["thresholds_would_fire"]} == ups
    pricing = next(r for r in report["rules"] if r["rule"] == "pricing")
    assert pricing["points_candidate"] * 20 == pricing["points_current"] * 35
    assert pricing["entities_candidate"] == pricing["entities_current"] > 0
