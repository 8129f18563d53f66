#!/usr/bin/env bash
# Prints the path of a promtool: the one on the PATH, else Prometheus's Debian package fetched
# once with `apt-get download` and unpacked (no install, no root needed) into .cache/prometheus.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${LEADSCORE_CACHE_DIR:-$here/../../.cache}/prometheus"
if command -v promtool >/dev/null 2>&1; then command -v promtool; exit 0; fi
if [[ -x "$cache/root/usr/bin/promtool" ]]; then echo "$cache/root/usr/bin/promtool"; exit 0; fi
command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 \
  || { echo "promtool.sh: promtool is needed: install Debian's prometheus package (apt-get install prometheus) or put promtool on the PATH." >&2; exit 1; }
mkdir -p "$cache" && cd "$cache"
rm -f prometheus_*.deb
apt-get download prometheus >/dev/null 2>apt.log \
  || { echo "promtool.sh: apt-get download prometheus failed (see $cache/apt.log): install Debian's prometheus package or put promtool on the PATH." >&2; exit 1; }
rm -rf root && dpkg-deb -x prometheus_*.deb root && rm -f prometheus_*.deb
echo "$cache/root/usr/bin/promtool"
