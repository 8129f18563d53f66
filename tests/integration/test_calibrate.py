"""``leadscore calibrate`` on the service's own topics: the demo dataset with its planted signal
goes through the worker, and the report read from ``score-changed`` and the conversion topics
equals the one computed offline from the same inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from streams.commands.calibrate import observations_from_archive
from streams.commands.planted import SINCE, UNTIL, planted
from streams.scoring import load_plan
from streams.scoring.durations import format_instant
from streams.wire.codec import Source
from tests.integration.service import Service

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "plans" / "examples" / "calibration-demo.yaml"
SOURCE = {"page_visit": Source.PAGE_VISITS, "email.click": Source.EMAIL_EVENTS,
          "email.reply": Source.EMAIL_EVENTS, "purchase": Source.PURCHASES}  # fmt: skip
FIGURES = ("entities", "converters", "base_rate", "bands", "thresholds", "candidates",
           "suggested_threshold", "rules")  # fmt: skip


def as_input(record: dict[str, Any]) -> tuple[Source, dict[str, Any]]:
    fields = {k: v for k, v in record.items() if k != "type"}
    if record["type"] == "purchase":
        fields["amount"] = Decimal(fields["amount"])
    return SOURCE[record["type"]], fields


async def test_calibrate_from_the_topics_equals_the_offline_report(
    bootstrap: str, tmp_path: Path
) -> None:
    plan = load_plan(PLAN.read_text(), source=str(PLAN))
    records = planted(150, seed=5)
    lines = [json.dumps(r) for r in records]
    offline, _ = observations_from_archive(plan, "engagement", lines, since_ms=SINCE,
                                           until_ms=UNTIL, tenant=None)  # fmt: skip
    # the topics know the contacts whose score moved: keep those (the archive knows them all)
    scored = {o.entity_id for o in offline if o.score != 0}
    records = [r for r in records if r["contact_id"] in scored]
    archive = tmp_path / "inputs.jsonl"
    archive.write_text("".join(json.dumps(r) + "\n" for r in records))
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path, plan=PLAN, partitions=2)
    worker = service.worker().start()
    window = ["--since", format_instant(SINCE), "--until", format_instant(UNTIL)]
    try:
        await worker.wait_ready()
        await service.produce([as_input(r) for r in records])
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            before = {c["entity_id"] for c in await service.changes()
                      if c["occurred_at"] <= SINCE}  # fmt: skip
            if before == scored:
                break
            time.sleep(0.5)
        env = {**os.environ, **service.env("cli", 6066)}  # (the port is not used)
        runs = {}
        for name, extra in (("topics", []), ("archive", ["--archive", str(archive)])):
            done = subprocess.run(
                [sys.executable, "-m", "streams.cli", "calibrate", "--score", "engagement",
                 *window, *extra, "--out", str(tmp_path / name)],
                capture_output=True, text=True, env=env, timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            runs[name] = json.loads((tmp_path / name / "calibration.json").read_text())
    finally:
        service.stop_all()
    assert before == scored
    topics, archived = runs["topics"], runs["archive"]
    assert topics["entities"] == len(scored) > 100 and topics["converters"] > 10
    for figure in FIGURES:
        assert topics[figure] == archived[figure], figure
    lifts = {b["band"]: b["lift"] for b in topics["bands"]}
    assert lifts["hot"] > 1 > lifts["cold"]  # the planted signal, through the service
