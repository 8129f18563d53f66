#!/usr/bin/env bash
# Build (once) the faust-baseline contender: the last Faust worker (commit 2110d38) as a source
# tree from `git archive` in .cache/bench/faust-baseline-<commit>, and a virtual environment for
# it from that commit's own pyproject.toml and constraints.txt in .cache/bench/faust-venv.
#
# Idempotent: stamp files record a finished export and a finished install. The last line on
# stdout is the python. As bench/quix_venv.sh: no pip in the venv (the project venv's pip
# installs into it) and no bytecode compiled at install.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMMIT="${BASELINE_COMMIT:-2110d38}"
TREE="$ROOT/.cache/bench/faust-baseline-$COMMIT"
VENV="$ROOT/.cache/bench/faust-venv"
STAMP="$VENV/.installed-$COMMIT"
PYTHON="${PYTHON:-python3}"
PIP=("$ROOT/.venv/bin/python" -m pip --python "$VENV/bin/python")  # make venv made it

if [[ ! -f "$TREE/.exported" ]]; then  # an export that did not finish is made again
    rm -rf "$TREE" && mkdir -p "$TREE"
    git -C "$ROOT" archive "$COMMIT" streams schemas plans pyproject.toml constraints.txt README.md \
        | tar -x -C "$TREE"
    touch "$TREE/.exported"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv --without-pip "$VENV" >&2
fi
if [[ ! -f "$STAMP" ]]; then
    # its dependencies only: the worker runs from the tree (python -m streams.cli, cwd = tree),
    # so the old project needs no wheel built (nor a build environment for it)
    "$PYTHON" -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
        "$TREE/pyproject.toml" > "$TREE/requirements.txt"
    "${PIP[@]}" install --quiet --disable-pip-version-check --no-compile \
        -c "$TREE/constraints.txt" -r "$TREE/requirements.txt" >&2
    (cd "$TREE" && "$VENV/bin/python" -c "import faust, streams.app") >&2
    touch "$STAMP"
fi
echo "$VENV/bin/python"
