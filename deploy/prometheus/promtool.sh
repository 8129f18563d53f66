#!/usr/bin/env bash
# Prints the path of promtool (or, with the argument `prometheus`, of the Prometheus server): the
# one on the PATH, else Prometheus's Debian package fetched once with `apt-get download` and
# unpacked (no install, no root needed) into .cache/prometheus, with the JavaScript packages its
# web UI links to (their links are relative, so the unpacked tree serves a working graph page).
#
#   deploy/prometheus/promtool.sh [promtool|prometheus]
set -euo pipefail
tool="${1:-promtool}"
[[ "$tool" == promtool || "$tool" == prometheus ]] || { echo "promtool.sh: unknown tool '$tool' (promtool or prometheus)" >&2; exit 2; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${LEADSCORE_CACHE_DIR:-$here/../../.cache}/prometheus"
if command -v "$tool" >/dev/null 2>&1; then command -v "$tool"; exit 0; fi
ui_packages=(libjs-bootstrap4 libjs-eonasdan-bootstrap-datetimepicker libjs-jquery libjs-jquery-hotkeys
  libjs-moment libjs-moment-timezone libjs-mustache libjs-popper.js libjs-rickshaw libjs-d3
  fonts-glyphicons-halflings)
if [[ -x "$cache/root/usr/bin/$tool" && -f "$cache/root/.complete" ]]; then echo "$cache/root/usr/bin/$tool"; exit 0; fi
command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 \
  || { echo "promtool.sh: $tool is needed: install Debian's prometheus package (apt-get install prometheus) or put $tool on the PATH." >&2; exit 1; }
mkdir -p "$cache" && cd "$cache"
rm -f ./*.deb
apt-get download prometheus "${ui_packages[@]}" >/dev/null 2>apt.log \
  || { echo "promtool.sh: apt-get download prometheus failed (see $cache/apt.log): install Debian's prometheus package or put $tool on the PATH." >&2; exit 1; }
rm -rf root && for deb in ./*.deb; do dpkg-deb -x "$deb" root; done && rm -f ./*.deb
touch root/.complete
echo "$cache/root/usr/bin/$tool"
