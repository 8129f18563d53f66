#!/usr/bin/env bash
# Prints the path of promtool (or, with the argument `prometheus`, of the Prometheus server): the
# one on the PATH, else Prometheus's Debian package fetched once with `apt-get download` and
# unpacked (no install, no root needed) into .cache/prometheus.
#
#   deploy/prometheus/promtool.sh [promtool|prometheus]
set -euo pipefail
tool="${1:-promtool}"
[[ "$tool" == promtool || "$tool" == prometheus ]] || { echo "promtool.sh: unknown tool '$tool' (promtool or prometheus)" >&2; exit 2; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${LEADSCORE_CACHE_DIR:-$here/../../.cache}/prometheus"
if command -v "$tool" >/dev/null 2>&1; then command -v "$tool"; exit 0; fi
if [[ -x "$cache/root/usr/bin/$tool" ]]; then echo "$cache/root/usr/bin/$tool"; exit 0; fi
command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 \
  || { echo "promtool.sh: $tool is needed: install Debian's prometheus package (apt-get install prometheus) or put $tool on the PATH." >&2; exit 1; }
mkdir -p "$cache" && cd "$cache"
rm -f prometheus_*.deb
apt-get download prometheus >/dev/null 2>apt.log \
  || { echo "promtool.sh: apt-get download prometheus failed (see $cache/apt.log): install Debian's prometheus package or put $tool on the PATH." >&2; exit 1; }
rm -rf root && dpkg-deb -x prometheus_*.deb root && rm -f prometheus_*.deb
echo "$cache/root/usr/bin/$tool"
