"""Which build of the scoring core runs: mypyc-compiled or pure Python.

``make venv`` compiles the core's hot modules with mypyc (``tools/build_core.py``) into
extension modules beside their sources, plus a stamp holding a hash of those sources. Python
prefers an extension module over a ``.py`` of the same name, so a fresh build is used simply by
importing. This module, imported by ``streams/__init__.py`` before anything imports the core,
decides from ``LEADSCORE_CORE``:

- ``auto`` (default): the compiled build if it is there and matches the sources, else pure
  Python (an edited source makes a build stale: it is never used silently);
- ``compiled``: the compiled build, or fail at import naming the reason;
- ``pure``: pure Python even if a build is there (``make venv LEADSCORE_CORE=pure`` also skips
  compiling).

Pure is forced by a meta-path finder that loads the compiled modules from their ``.py`` files.
Both builds give the same answers: ``make test`` runs the unit tests under each.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

#: The core modules mypyc compiles (the hot path; the plan loader and explain stay Python).
MODULES = (
    "adjust",
    "arrival",
    "avro",
    "avro_read",
    "catchup",
    "aggregate",
    "capping",
    "catalog",
    "compaction",
    "conditions",
    "contribs",
    "decay",
    "decay_fast",
    "decay_memo",
    "durations",
    "emit",
    "evaluate",
    "events",
    "holds",
    "inactivity",
    "ledger",
    "matrix",
    "members",
    "model",
    "once",
    "outcomes",
    "patterns",
    "plan.spec",
    "points",
    "predict",
    "profile",
    "quiet_hours",
    "rollup",
    "scorer",
    "segments",
    "serialize",
    "state",
    "tenant",
)
PACKAGE = "streams.scoring"
GROUP = f"{PACKAGE}.native"  # mypyc's shared library: streams/scoring/native__mypyc.*.so
CORE_DIR = Path(__file__).resolve().parent / "scoring"
STAMP = CORE_DIR / "native.stamp"
MODES = ("auto", "compiled", "pure")


def sources_hash() -> str:
    """Hash of the compiled modules' sources, the Python version and the build script's inputs."""
    digest = hashlib.sha256(sys.implementation.cache_tag.encode())
    for name in MODULES:
        digest.update(name.encode())
        digest.update(source(name).read_bytes())
    return digest.hexdigest()


def source(name: str) -> Path:
    """The source of a compiled module (``plan.spec`` is ``streams/scoring/plan/spec.py``)."""
    return CORE_DIR.joinpath(*name.split(".")).with_suffix(".py")


def extension_paths() -> list[Path]:
    return [p for p in CORE_DIR.rglob("*") if p.suffix in (".so", ".pyd")]


def build_status() -> tuple[bool, str]:
    """(usable, why): whether a compiled build matching the sources is there."""
    if not STAMP.exists() or not extension_paths():
        return False, "no compiled build (make venv compiles it)"
    if STAMP.read_text().strip() != sources_hash():
        return False, "the compiled build is stale: sources changed since it was built"
    return True, "compiled build matches the sources"


class _PureFinder:
    """Loads the compiled modules of the core from their ``.py`` sources."""

    @staticmethod
    def find_spec(
        fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        name = fullname.removeprefix(PACKAGE + ".")
        if name == fullname or name not in MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, source(name))


#: What was chosen at import: "compiled" or "pure", and why.
CHOSEN = "pure"
REASON = ""


def select(mode: str | None = None) -> None:
    """Choose the build (once, before the core is imported); exit naming LEADSCORE_CORE if the
    setting is invalid or asks for a compiled build that is not there."""
    global CHOSEN, REASON
    mode = (mode if mode is not None else os.environ.get("LEADSCORE_CORE", "auto")).strip()
    if mode not in MODES:
        raise SystemExit(f"leadscore: LEADSCORE_CORE={mode!r}: expected one of {', '.join(MODES)}")
    usable, why = (False, "LEADSCORE_CORE=pure") if mode == "pure" else build_status()
    if mode == "compiled" and not usable:
        raise SystemExit(f"leadscore: LEADSCORE_CORE=compiled, but {why}")
    CHOSEN, REASON = ("compiled" if usable else "pure"), why
    if not usable and not any(isinstance(f, _PureFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PureFinder())


def loaded() -> str:
    """The build the imported core actually runs ("compiled" or "pure")."""
    module = sys.modules.get(f"{PACKAGE}.scorer")
    if module is None:
        return CHOSEN
    origin = getattr(module, "__file__", "") or ""
    return "pure" if origin.endswith(".py") else "compiled"


def describe() -> str:
    return f"core {loaded()} ({REASON})"
