"""``leadscore replay --from-time``: the dry run over the service's input topics equals the one
over an archive of the same inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from streams.commands.planted import planted
from tests.integration.service import Service
from tests.integration.test_calibrate import as_input

ROOT = Path(__file__).resolve().parents[2]
CURRENT = ROOT / "plans" / "examples" / "calibration-demo.yaml"
SAME = ("entities_compared", "scores_changed", "entities", "tier_migrations",
        "thresholds_would_fire", "rules", "events", "bad_lines")  # fmt: skip


async def test_replay_from_the_topics_equals_replay_of_an_archive(
    bootstrap: str, tmp_path: Path
) -> None:
    records = [r for r in planted(120, seed=9) if r["type"] != "purchase"]
    archive = tmp_path / "inputs.jsonl"
    archive.write_text("".join(json.dumps(r) + "\n" for r in records))
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CURRENT.read_text().replace("points: 30}", "points: 50}"))  # replies
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path, plan=CURRENT, partitions=2)
    worker = service.worker().start()  # (creates the topics)
    reports: dict[str, Any] = {}
    try:
        await worker.wait_ready()
        before = int(time.time() * 1000) - 1
        await service.produce([as_input(r) for r in records])
        env = {**os.environ, **service.env("cli", 6066)}  # (the port is not used)
        for name, source in (("topics", ["--from-time", str(before)]),
                             ("archive", ["--archive", str(archive)])):  # fmt: skip
            done = subprocess.run(
                [sys.executable, "-m", "streams.cli", "replay", "--plan", str(candidate),
                 "--current", str(CURRENT), *source, "--out", str(tmp_path / name), "--quiet"],
                capture_output=True, text=True, env=env, timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            reports[name] = json.loads((tmp_path / name / "replay.json").read_text())
    finally:
        service.stop_all()
    assert reports["topics"]["events"] == len(records) and reports["topics"]["scores_changed"] > 0
    for figure in SAME:
        assert reports["topics"][figure] == reports["archive"][figure], figure
