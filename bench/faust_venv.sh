#!/usr/bin/env bash
# Build (once) the faust-baseline contender: the last Faust worker (commit 2110d38) as a source
# tree from `git archive` in .cache/bench/faust-baseline-<commit>, and a virtual environment for
# it from that commit's own pyproject.toml and constraints.txt in .cache/bench/faust-venv.
#
# Idempotent: a stamp file records a finished install. The last line on stdout is the python.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMMIT="${BASELINE_COMMIT:-2110d38}"
TREE="$ROOT/.cache/bench/faust-baseline-$COMMIT"
VENV="$ROOT/.cache/bench/faust-venv"
STAMP="$VENV/.installed-$COMMIT"
PYTHON="${PYTHON:-python3}"

if [[ ! -d "$TREE/streams" ]]; then
    mkdir -p "$TREE"
    git -C "$ROOT" archive "$COMMIT" streams schemas plans pyproject.toml constraints.txt README.md \
        | tar -x -C "$TREE"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV" >&2
fi
if [[ ! -f "$STAMP" ]]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c "$TREE/constraints.txt" \
        "$TREE" >&2
    (cd "$TREE" && "$VENV/bin/python" -c "import faust, streams.app") >&2
    touch "$STAMP"
fi
echo "$VENV/bin/python"
