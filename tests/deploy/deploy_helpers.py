"""Helpers of the deployment tests (``test_compose.py``, ``test_k8s.py``): the Dockerfile read as
instructions, and a worker's environment checked by the real settings loader."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.settings import NOT_SETTINGS, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
#: what a worker in a container or pod binds: reachable from other containers and the probes
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


@dataclass(frozen=True)
class Instruction:
    stage: str
    op: str
    args: str


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stage = ""
    out: list[Instruction] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, args = line.partition(" ")
        args = re.sub(r"\s+", " ", args).strip()
        if op.upper() == "FROM":
            stage = args.split(" AS ")[-1] if " AS " in args else args
        out.append(Instruction(stage, op.upper(), args))
    return out


def image_env() -> dict[str, str]:
    """``ENV`` of the runtime stage, as ``KEY=value`` pairs."""
    env: dict[str, str] = {}
    for ins in dockerfile():
        if ins.stage == "runtime" and ins.op == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", ins.args):
                env[key] = value
    return env


def setting_names() -> set[str]:
    """Every LEADSCORE_* variable the worker accepts: its settings and those read elsewhere."""
    return {f"LEADSCORE_{name.upper()}" for name in Settings.model_fields} | NOT_SETTINGS


def load_with_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    """``load_settings()`` with exactly these ``LEADSCORE_*`` variables (the runner's removed:
    ``make test`` exports ``LEADSCORE_CORE``)."""
    for name in list(os.environ):
        if name.upper().startswith("LEADSCORE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()
