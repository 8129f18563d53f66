#!/usr/bin/env bash
# Build (once) the virtual environment the Quix Streams peer runs in: .cache/bench/quix-venv.
#
# Idempotent: a stamp file records a finished install; the requirements are installed again
# only when bench/quix-requirements.txt is newer than the stamp. The project itself is installed
# editable without dependencies, so streams.scoring, streams.wire.codec and streams.wire.publish import
# from the work tree. The last line on stdout is the venv's python.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.cache/bench/quix-venv"
REQS="$ROOT/bench/quix-requirements.txt"
STAMP="$VENV/.installed"
PYTHON="${PYTHON:-python3}"

if [[ ! -x "$VENV/bin/python" ]]; then
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV" >&2
fi

if [[ ! -f "$STAMP" || "$REQS" -nt "$STAMP" ]]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$ROOT" >&2
    "$VENV/bin/python" -c "import quixstreams, streams.scoring, streams.wire.codec, streams.wire.publish" >&2
    touch "$STAMP"
fi

echo "$VENV/bin/python"
