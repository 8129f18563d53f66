"""Tests of the benchmarks under ``bench/`` (make bench, bench-core and bench-smoke)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


def bench_module(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module. The bench scripts import their siblings by plain name
    (``import kafkaio``), so ``bench/`` is on ``sys.path`` while it loads, and only then."""
    key = f"bench_{name}"  # not the plain name: bench/profile.py would shadow the stdlib's
    if key in sys.modules:
        return sys.modules[key]
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(key, BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def tiny_run(tmp_path: Path, script: str, *args: str) -> tuple[dict[str, Any], str]:
    """``bench/<script>.py`` with ``args`` writing to ``tmp_path``: its one results file's
    JSON and Markdown (``<prefix>-<date>.json`` and ``.md``)."""
    done = subprocess.run(
        [sys.executable, f"bench/{script}.py", *args, "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    [json_path] = tmp_path.glob("*.json")
    [md_path] = tmp_path.glob("*.md")
    return json.loads(json_path.read_text()), md_path.read_text()
