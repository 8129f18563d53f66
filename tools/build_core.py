"""Compile the scoring core's hot modules with mypyc, in place (run by ``make venv``).

Skipped with ``LEADSCORE_CORE=pure``. Idempotent: when the stamp matches the sources, nothing
is rebuilt. On success the extension modules sit beside their sources
(``streams/scoring/*.so``) and ``streams/scoring/native.stamp`` holds the hash of the sources
they were built from; ``streams.native`` uses the build only while that hash matches.

If compiling fails (no C compiler, no Python headers), this says why and exits 0: the pure
build runs, ``leadscore --version`` reports it, and ``LEADSCORE_CORE=compiled`` refuses to
start. Set ``LEADSCORE_CORE_BUILD_STRICT=1`` to make a failed compile fail the build.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: What was asked for; the import below must not insist on a build that does not exist yet.
MODE = os.environ.get("LEADSCORE_CORE", "auto").strip()
os.environ["LEADSCORE_CORE"] = "pure"
from streams import native  # noqa: E402

SETUP = """
from setuptools import setup
from mypyc.build import mypycify

setup(
    name="leadscore-core",
    packages=[],
    ext_modules=mypycify({paths!r}, opt_level="3", group_name={group!r}),
)
"""


def clean() -> None:
    for path in native.extension_paths():
        path.unlink()
    native.STAMP.unlink(missing_ok=True)


def build() -> int:
    """Build under an exclusive lock: two builds at once (two make runs in one checkout) would
    otherwise share the work directory and replace each other's half-written modules."""
    lock_path = ROOT / ".cache" / "core-build.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return build_locked()


def build_locked() -> int:
    wanted = native.sources_hash()
    if native.STAMP.exists() and native.STAMP.read_text().strip() == wanted:
        print("core: compiled build is up to date")
        return 0
    clean()
    paths = [str(native.source(name)) for name in native.MODULES]
    work = ROOT / ".cache" / "core-build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    setup = work / "setup.py"
    setup.write_text(SETUP.format(paths=paths, group=native.GROUP))
    started = time.monotonic()
    print(f"core: compiling {len(paths)} modules with mypyc (about 40 s) ...", flush=True)
    with tempfile.TemporaryDirectory() as temp:
        result = subprocess.run(
            [sys.executable, str(setup), "build_ext", "--build-lib", "lib", "--build-temp", temp],
            cwd=work, capture_output=True, text=True, check=False,
        )  # fmt: skip
    log = work / "build.log"
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        clean()
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        print(f"core: mypyc build FAILED (the pure-Python core will run); log {log}\n{tail}")
        return 1 if os.environ.get("LEADSCORE_CORE_BUILD_STRICT") == "1" else 0
    # built in the work directory (away from the project's pyproject.toml), then moved beside
    # the sources
    built_dir = work / "lib" / "streams" / "scoring"
    for built in built_dir.rglob("*"):
        if built.suffix in (".so", ".pyd"):
            # a new file renamed over the old: a process that has the old one loaded keeps it
            target = native.CORE_DIR / built.relative_to(built_dir)
            partial = target.with_name(target.name + f".{os.getpid()}.part")
            shutil.copy2(built, partial)
            os.replace(partial, target)
    native.STAMP.write_text(wanted + "\n")
    took = time.monotonic() - started
    print(f"core: compiled {len(native.extension_paths())} extension modules in {took:.0f} s")
    return 0


def main() -> int:
    if MODE == "pure":
        clean()
        print("core: LEADSCORE_CORE=pure: not compiling (pure-Python core)")
        return 0
    return build()


if __name__ == "__main__":
    sys.exit(main())
