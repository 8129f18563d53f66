#!/usr/bin/env bash
# Toxiproxy (Shopify's TCP proxy with injectable faults), built from the Go module proxy for the
# network-fault tests (tests/integration/test_network.py), which start and stop it themselves.
#
#   deploy/toxiproxy/toxiproxy.sh build    build it once into the cache; print the server's path
#
# Environment (optional):
#   TOXIPROXY_VERSION=v2.5.0   the module version to build
#   LEADSCORE_CACHE_DIR        where it is built (default <repo>/.cache)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
version="${TOXIPROXY_VERSION:-v2.5.0}"
dir="${LEADSCORE_CACHE_DIR:-$repo/.cache}/toxiproxy/$version"
server="$dir/toxiproxy-server"

die() { echo "toxiproxy.sh: $*" >&2; exit 1; }

build() {
  [[ -x "$server" ]] && { echo "$server"; return 0; }
  command -v go >/dev/null || die "Go is needed to build Toxiproxy (go install from the module proxy)."
  mkdir -p "$dir"
  # The module's main package is cmd/server; go install names the binary after it.
  if ! GOBIN="$dir/bin" GOFLAGS=-mod=mod go install \
      "github.com/Shopify/toxiproxy/v2/cmd/server@$version" >"$dir/build.log" 2>&1; then
    tail -5 "$dir/build.log" >&2
    die "go install github.com/Shopify/toxiproxy/v2/cmd/server@$version failed (log: $dir/build.log)."
  fi
  mv "$dir/bin/server" "$server"
  echo "$server"
}

case "${1:-help}" in
  build) build ;;
  help|-h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (try: deploy/toxiproxy/toxiproxy.sh help)" ;;
esac
