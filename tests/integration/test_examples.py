"""The example downstream service (``examples/sales_handoff.py``) runs against the real broker:
it hands over each upward crossing once, and a second run of the same group hands over nothing
again, even when its ledger already holds changes whose offsets were not committed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.score_changes import changes, produce
from tests.integration.service import REPO, _without_settings

EXAMPLE = REPO / "examples" / "sales_handoff.py"


def run(bootstrap: str, topic: str, ledger: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), "--bootstrap", bootstrap, "--topic", topic,
         "--group", f"sales-{topic}", "--ledger", str(ledger), "--idle-exit", "3"],
        cwd=REPO, env={**_without_settings(os.environ), "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_sales_handoff_example(bootstrap: str, changes_topic: str, tmp_path: Path) -> None:
    down = [{"name": "mql", "direction": "down"}]
    produce(bootstrap, changes_topic, [
        (changes(2), True),  # seq 1, 2: up crossings of mql
        (changes(1, 3, thresholds=down), True),  # a downward crossing: not handed over
        (changes(1, 4, thresholds=[]), True),  # no crossing
    ])  # fmt: skip
    ledger = tmp_path / "handoffs.jsonl"
    first = run(bootstrap, changes_topic, ledger)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("handed over contact c-1") == 2
    entries = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [e["change_id"] for e in entries] == ["ch-1", "ch-2"]

    # A crash after handing over ch-5 but before its offset was committed: the ledger has it.
    ledger.write_text(ledger.read_text() + json.dumps({"change_id": "ch-5"}) + "\n")
    produce(bootstrap, changes_topic, [(changes(2, 5), True)])
    second = run(bootstrap, changes_topic, ledger)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == ["handed over contact c-1 (engagement 90 -> 105)"]
    assert [json.loads(line)["change_id"] for line in ledger.read_text().splitlines()] == [
        "ch-1", "ch-2", "ch-5", "ch-6"
    ]  # fmt: skip
