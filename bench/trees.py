"""Source trees of other commits for the benchmarks, each exported once with its own core build.

``export(rev)`` writes the commit's ``streams``, ``tools`` and ``schemas`` (those it has) with
``git archive`` into ``.cache/bench/tree-<sha>``; ``compile_core(tree)`` compiles that tree's
scoring core with its own ``tools/build_core.py``. Used by the core benchmark's baseline
(``bench/core.py --base``) and by the side-by-side benchmark's ``leadscore@<commit>`` contender
(``bench/run.py --base``), which runs that tree's worker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: What a tree holds: the package, the core's build script, the Avro schemas the worker reads.
PATHS = ("streams", "tools", "schemas")


def resolve(rev: str) -> str:
    """The full commit id of ``rev``."""
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip


def tree_path(rev: str) -> Path:
    """Where :func:`export` puts the commit's tree: ``.cache/bench/tree-<sha>``."""
    return ROOT / ".cache" / "bench" / f"tree-{resolve(rev)[:12]}"


def export(rev: str) -> Path:
    """The commit's tree in ``.cache/bench/tree-<sha>``, exported once."""
    full = resolve(rev)
    tree = tree_path(full)
    if not (tree / ".exported").exists():
        shutil.rmtree(tree, ignore_errors=True)  # an export that did not finish
        tree.mkdir(parents=True)
        paths = [p for p in PATHS if subprocess.run(
            ["git", "-C", str(ROOT), "cat-file", "-e", f"{full}:{p}"], check=False,
            stderr=subprocess.DEVNULL).returncode == 0]  # fmt: skip
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", full, *paths],
                                 capture_output=True, check=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        (tree / ".exported").write_text(full + "\n")
    return tree


def compile_core(tree: Path) -> bool:
    """Compile the tree's core with its own build script (nothing if its build is current);
    False for trees from before the mypyc build, which have no build script (pure only)."""
    script = tree / "tools" / "build_core.py"
    if not script.exists():
        return False
    env = {k: v for k, v in os.environ.items() if k != "LEADSCORE_CORE"}
    subprocess.run([sys.executable, str(script)], cwd=tree, env=env, check=True)
    return (tree / "streams" / "scoring" / "native.stamp").exists()
