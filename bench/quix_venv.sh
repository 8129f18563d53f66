#!/usr/bin/env bash
# Build (once) the virtual environment the Quix Streams peer runs in: .cache/bench/quix-venv.
#
# Idempotent: a stamp file records a finished install; the requirements are installed again
# only when bench/quix-requirements.txt or bench/quix-constraints.txt (every package of the venv
# pinned) is newer than the stamp. The work tree is put on the
# venv's path with a .pth file (what an editable install without dependencies amounts to), so
# streams.scoring, streams.wire.codec and streams.wire.publish import from it. The last line on
# stdout is the venv's python.
#
# Fast on a fresh clone (make test's benchmark smoke builds it there): the venv is made without
# pip and the project venv's pip installs into it (pip --python), without compiling bytecode
# (Python compiles a module when it is first imported). On the shared 2-core machine: about
# 15 s, against about 50 s for a venv with its own pip that compiles every module.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.cache/bench/quix-venv"
REQS="$ROOT/bench/quix-requirements.txt"
PINS="$ROOT/bench/quix-constraints.txt"
STAMP="$VENV/.installed"
PYTHON="${PYTHON:-python3}"
PIP=("$ROOT/.venv/bin/python" -m pip --python "$VENV/bin/python")  # make venv made it

if [[ ! -x "$VENV/bin/python" ]]; then
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv --without-pip "$VENV" >&2
fi

if [[ ! -f "$STAMP" || "$REQS" -nt "$STAMP" || "$PINS" -nt "$STAMP" ]]; then
    "${PIP[@]}" install --quiet --disable-pip-version-check --no-compile -c "$PINS" -r "$REQS" >&2
    site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
    echo "$ROOT" > "$site/leadscore-worktree.pth"
    "$VENV/bin/python" -c "import quixstreams, streams.scoring, streams.wire.codec, streams.wire.publish" >&2
    touch "$STAMP"
fi

echo "$VENV/bin/python"
