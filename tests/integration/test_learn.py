"""``leadscore learn`` and ``calibrate --compare`` read the service's input topics: the
learning demo dataset, published to them, gives the same model, figures and comparison as the
same records read from an archive."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from streams.cli import main
from streams.commands.planted import cohorts
from streams.scoring.plan.reader import read_yaml
from streams.wire.codec import Source
from tests.integration.service import Service

ROOT = Path(__file__).resolve().parents[2]
HAND = ROOT / "plans" / "examples" / "learning-demo.yaml"
SOURCE = {"page_visit": Source.PAGE_VISITS, "email.click": Source.EMAIL_EVENTS,
          "email.reply": Source.EMAIL_EVENTS, "purchase": Source.PURCHASES,
          "contact.updated": Source.CONTACT_PROFILES}  # fmt: skip


def as_input(record: dict[str, Any]) -> tuple[Source, dict[str, Any]]:
    fields = {k: v for k, v in record.items() if k != "type"}
    if record["type"] == "purchase":
        fields["amount"] = Decimal(fields["amount"])
    return SOURCE[record["type"]], fields


async def test_learn_and_compare_from_the_topics_equal_the_archive(
    bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = cohorts(800, seed=7)
    archive = tmp_path / "inputs.jsonl"
    archive.write_text("".join(json.dumps(r) + "\n" for r in records))
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path, plan=HAND, partitions=2)
    for name, value in service.env("cli", 6066).items():  # (the port is not used)
        monkeypatch.setenv(name, value)
    from streams.settings import load_settings
    from streams.wire.topics import ensure_topics

    ensure_topics(load_settings())  # (no worker here: learn reads the input topics only)
    assert await service.produce([as_input(r) for r in records]) == len(records)
    learned, compared = {}, {}
    for name, extra in (("topics", []), ("archive", ["--archive", str(archive)])):
        out = tmp_path / name
        assert main(["learn", "--score", "engagement", "--since", "2026-01-19T00:00:00Z",
                     "--until", "2026-05-25T00:00:00Z", "--attribute", "industry=saas",
                     *extra, "--out", str(out / "candidate.yaml"),
                     "--report", str(out / "learning")]) == 0  # fmt: skip
        learned[name] = json.loads((out / "learning" / "learning.json").read_text())
        assert main(["calibrate", "--score", "engagement", "--since", "2026-04-25T00:00:00Z",
                     "--until", "2026-05-25T00:00:00Z", *extra, "--compare",
                     str(out / "candidate.yaml"), "--compare-score", "engagement-predicted",
                     "--out", str(out / "comparison")]) == 0  # fmt: skip
        compared[name] = json.loads((out / "comparison" / "comparison.json").read_text())
    topics, archived = learned["topics"], learned["archive"]
    assert (topics["source"], archived["source"]) == ("the input topics", "inputs.jsonl")
    for key in ("features", "intercept", "model", "counts", "learned", "hand", "threshold"):
        assert topics[key] == archived[key], key
    assert topics["counts"]["train"]["converted"] > 20 and topics["learned"]["auc"] > 0.6
    plans = [read_yaml((tmp_path / name / "candidate.yaml").read_text())
             for name in ("topics", "archive")]  # fmt: skip
    assert plans[0] == plans[1] and plans[0][1] == []
    assert compared["topics"]["source"] == "input topics"
    for side in ("current", "candidate"):
        assert compared["topics"][side] == compared["archive"][side], side
