#!/usr/bin/env bash
# Prints the path of a tmux for the terminal tests (tests/integration/test_watch.py): the one on
# the PATH, else Debian's tmux package and the libraries it needs, fetched once with
# `apt-get download` and unpacked (no install, no root) into .cache/tmux, behind a wrapper that
# points the dynamic loader at them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${LEADSCORE_CACHE_DIR:-$here/../../.cache}/tmux"
if command -v tmux >/dev/null 2>&1; then command -v tmux; exit 0; fi
if [[ -x "$cache/tmux" ]]; then echo "$cache/tmux"; exit 0; fi
command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 \
  || { echo "tmux.sh: tmux is needed for the terminal tests: install it (apt-get install tmux)." >&2; exit 1; }
mkdir -p "$cache" && cd "$cache"
rm -rf ./*.deb root
apt-get download tmux libevent-core-2.1-7 libutempter0 >/dev/null 2>apt.log \
  || { echo "tmux.sh: apt-get download tmux failed (see $cache/apt.log): install tmux." >&2; exit 1; }
for deb in ./*.deb; do dpkg-deb -x "$deb" root; done
rm -f ./*.deb
libs="$(cd root && find . -name '*.so*' -printf '%h\n' | sort -u | sed "s|^\.|$cache/root|" | paste -sd:)"
printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
  "$libs" "$cache/root/usr/bin/tmux" > tmux
chmod +x tmux
echo "$cache/tmux"
