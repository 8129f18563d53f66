"""``leadscore plan check`` / ``score`` into a pipe that is already closed (``| head`` after its
lines) end quietly with 0, not with a BrokenPipeError traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_closed_pipe_ends_the_offline_commands_quietly(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"type": "page_visit", "event_id": "e1", "occurred_at": 0, '
                      '"contact_id": "c1", "url": "https://x.example/pricing"}\n')  # fmt: skip
    commands = (
        ["plan", "check", "plans/reference.yaml"],
        ["score", "--plan", "plans/reference.yaml", "--changes", str(events)],
    )
    for argv in commands:
        read, write = os.pipe()
        os.close(read)  # nobody will read: the first write fails with EPIPE
        try:
            done = subprocess.run(
                [sys.executable, "-m", "streams.cli", *argv], cwd=ROOT, stdout=write,
                stderr=subprocess.PIPE, input=b"", timeout=120, check=False,
            )  # fmt: skip
        finally:
            os.close(write)
        assert (done.returncode, done.stderr.decode()) == (0, ""), argv
