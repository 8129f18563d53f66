"""Tests of the benchmarks under ``bench/`` (make bench, bench-core and bench-smoke)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

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
