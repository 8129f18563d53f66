"""Hostile plans and settings at the command line: ``leadscore plan check`` and ``leadscore
worker`` exit 2 with a message naming the file, the field or the variable; never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLANS = {
    "yaml11-on": "scores:\n  - name: s\n    entity: contact\n    rules:\n"
                 "      - {id: r, true: page_visit, points: 1}\n",
    "int-key": "scores:\n  - name: s\n    entity: contact\n    1: 2\n",
    "deep": "scores: " + "[" * 5000 + "]" * 5000 + "\n",
    "catastrophic": "scores:\n  - name: s\n    entity: contact\n    rules:\n"
                    "      - {id: r, on: page_visit, where: {url: {regex: '(a)\\1'}}, points: 1}\n",
    "huge-number": "scores:\n  - name: s\n    entity: contact\n    thresholds: [{name: a, at: "
                   + "9" * 5000 + "}]\n",
    "not-utf8": "scores: \udcff\n",
    "binary": "\x00\x01\x02",
}  # fmt: skip


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("LEADSCORE_")}
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip


@pytest.mark.parametrize("name", sorted(PLANS))
def test_a_hostile_plan_is_refused_in_one_message(name: str, tmp_path: Path) -> None:
    plan = tmp_path / f"{name}.yaml"
    plan.write_bytes(PLANS[name].encode("utf-8", "surrogateescape"))
    for args, env in ((["plan", "check", str(plan)], {}),
                      (["worker"], {"LEADSCORE_PLAN_PATH": str(plan),
                                    "LEADSCORE_DATA_DIR": str(tmp_path / "w")})):  # fmt: skip
        done = run(args, env)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr + done.stdout
        assert str(plan) in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LEADSCORE_KAFKA_SSL_CA_LOCATION", "x" * 5000),
        ("LEADSCORE_PARTITIONS", "9" * 5000),
        ("LEADSCORE_PLAN_PATH", "x" * 5000),
        ("LEADSCORE_DATA_DIR", "/proc/forbidden/dir"),
        ("LEADSCORE_TYPO", "1"),
    ],
)
def test_hostile_settings_stop_the_worker_in_one_message(variable: str, value: str,
                                                         tmp_path: Path) -> None:  # fmt: skip
    env = {"LEADSCORE_DATA_DIR": str(tmp_path / "w"), variable: value}
    done = run(["worker"], env)
    assert done.returncode == 2, (done.stdout, done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    assert variable in done.stderr or "plan" in done.stderr


def test_a_bad_data_dir_is_named_before_any_broker_is_asked(tmp_path: Path) -> None:
    # the data directory is claimed first: no broker listens on the port below
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    env = {"LEADSCORE_DATA_DIR": "/proc/forbidden/dir",
           "LEADSCORE_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed}"}  # fmt: skip
    done = run(["worker"], env)
    assert done.returncode == 2, (done.stdout, done.stderr[-2000:])
    assert "LEADSCORE_DATA_DIR" in done.stderr and "Traceback" not in done.stderr
