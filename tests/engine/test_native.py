"""Choosing the core's build (``streams.native``): compiled when fresh, pure on request or when
stale, and a clear exit for a bad ``LEADSCORE_CORE``. Each case runs in a fresh interpreter,
because the choice is made once, when ``streams`` is first imported."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streams import native

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import streams.scoring.scorer as e, streams.native as n; print(e.__file__); "
    "print(n.describe())"
)


def probe(mode: str, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEADSCORE_CORE": mode, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", PROBE], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_pure_loads_the_sources_even_with_a_build_present() -> None:
    result = probe("pure")
    assert result.returncode == 0, result.stderr
    origin, described = result.stdout.splitlines()
    assert origin.endswith("scorer.py")
    assert described == "core pure (LEADSCORE_CORE=pure)"


def test_a_bad_setting_exits_naming_the_variable() -> None:
    result = probe("fast")
    assert result.returncode == 1
    assert "LEADSCORE_CORE='fast': expected one of auto, compiled, pure" in result.stderr
    assert "Traceback" not in result.stderr


def needs_build() -> None:
    if not native.build_status()[0]:
        pytest.skip("no compiled build here (LEADSCORE_CORE=pure make venv); make test has one")


def test_compiled_loads_the_extension_modules() -> None:
    needs_build()
    result = probe("compiled")
    assert result.returncode == 0, result.stderr
    origin, described = result.stdout.splitlines()
    assert origin.endswith(".so") or origin.endswith(".pyd")
    assert described == "core compiled (compiled build matches the sources)"


def test_an_edited_source_makes_the_build_stale(tmp_path: Path) -> None:
    """A copy of the package with one core source changed: auto falls back to pure, compiled
    refuses to start."""
    needs_build()
    shutil.copytree(ROOT / "streams", tmp_path / "streams",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    aggregate = tmp_path / "streams" / "scoring" / "aggregate.py"
    aggregate.write_text(aggregate.read_text() + "\n# edited\n")
    auto = probe("auto", tmp_path)
    assert auto.returncode == 0, auto.stderr
    origin, described = auto.stdout.splitlines()
    assert origin == str(tmp_path / "streams" / "scoring" / "scorer.py")
    assert "stale" in described
    compiled = probe("compiled", tmp_path)
    assert compiled.returncode == 1
    assert "LEADSCORE_CORE=compiled, but the compiled build is stale" in compiled.stderr


def test_version_reports_the_build() -> None:
    env = {**os.environ, "LEADSCORE_CORE": "pure"}
    result = subprocess.run([sys.executable, "-m", "streams.cli", "--version"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("leadscore 0.1.0, core pure (LEADSCORE_CORE=pure), Python 3.")
