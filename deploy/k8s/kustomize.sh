#!/usr/bin/env bash
# Prints the path of a kustomize v5: the one on the PATH, else the Go module
# sigs.k8s.io/kustomize/kustomize/v5 at $KUSTOMIZE_VERSION, built once with `go install` into
# .cache/kustomize/<version>/bin (Go from the PATH or /usr/local/go/bin). Says in one line what
# is missing when neither works.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="${KUSTOMIZE_VERSION:-v5.8.2}"   # v5.8.3 needs Go 1.27
bin="${LEADSCORE_CACHE_DIR:-$here/../../.cache}/kustomize/$version/bin"
if command -v kustomize >/dev/null 2>&1 && kustomize version 2>/dev/null | grep -q '^v5\.'; then
  command -v kustomize; exit 0
fi
if [[ -x "$bin/kustomize" ]]; then echo "$bin/kustomize"; exit 0; fi
go="$(command -v go || true)"
[[ -n "$go" ]] || { [[ -x /usr/local/go/bin/go ]] && go=/usr/local/go/bin/go; }
[[ -n "$go" ]] || { echo "kustomize.sh: kustomize v5 is needed: put it on the PATH, or install Go 1.26+ so this script can build sigs.k8s.io/kustomize/kustomize/v5@$version." >&2; exit 1; }
mkdir -p "$bin"
log="$bin/../go-install.log"
GOBIN="$bin" GOFLAGS="${GOFLAGS:-} -modcacherw" GOTOOLCHAIN=local \
  "$go" install "sigs.k8s.io/kustomize/kustomize/v5@$version" >"$log" 2>&1 \
  || { echo "kustomize.sh: go install sigs.k8s.io/kustomize/kustomize/v5@$version failed ($("$go" version | cut -d' ' -f3); see $log): put kustomize v5 on the PATH." >&2; exit 1; }
echo "$bin/kustomize"
