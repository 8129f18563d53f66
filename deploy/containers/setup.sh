#!/usr/bin/env bash
# Installs what the container builds and the compose stack need on a Debian machine, once:
# podman with the runc runtime and netavark networking, iptables for netavark, catatonit (the
# pause process of podman's pods), mmdebstrap (the local base image, base.sh) and podman-compose
# (the project's dev extra, installed by `make venv`). A second run checks and returns in well
# under a second.
#
#   deploy/containers/setup.sh          install what is missing (apt-get; needs root)
#   deploy/containers/setup.sh check    exit 0 if everything is there, else name what is missing
#
# netavark is installed in the same apt-get call as podman, so podman never falls back to CNI.
# The engine's settings are the project's own containers.conf beside this script (runc,
# cgroupfs, ulimits within the host's, file logs: see its comments); every script here runs
# podman with CONTAINERS_CONF pointing at it, so nothing under /etc is changed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
packages=(podman runc netavark aardvark-dns catatonit iptables mmdebstrap)

missing() {
  local p out=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || out+=("$p")
  done
  echo "${out[@]:-}"
}

case "${1:-install}" in
  check)
    m="$(missing)"
    [[ -z "$m" ]] || { echo "setup.sh: missing Debian packages: $m (run deploy/containers/setup.sh)" >&2; exit 1; }
    exit 0 ;;
  install) ;;
  *) echo "usage: setup.sh [install|check]" >&2; exit 2 ;;
esac

m="$(missing)"
if [[ -n "$m" ]]; then
  command -v apt-get >/dev/null 2>&1 \
    || { echo "setup.sh: needs Debian's apt-get to install: $m (or install podman, runc, netavark and mmdebstrap yourself)" >&2; exit 1; }
  [[ "$(id -u)" == 0 ]] || { echo "setup.sh: installing $m needs root" >&2; exit 1; }
  echo "setup.sh: installing $m ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086 # a list of package names
  if ! apt-get install -y -q --no-install-recommends $m >/tmp/leadscore-setup.$$.log 2>&1; then
    apt-get update -q >/dev/null 2>&1 || true
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $m >/tmp/leadscore-setup.$$.log 2>&1 \
      || { tail -n 30 /tmp/leadscore-setup.$$.log >&2; rm -f /tmp/leadscore-setup.$$.log; echo "setup.sh: apt-get install failed (above)" >&2; exit 1; }
  fi
  rm -f /tmp/leadscore-setup.$$.log
fi
# podman itself, with the project's settings: runc, netavark (a CNI backend here means the
# settings are not the ones read).
export CONTAINERS_CONF="$here/containers.conf"
backend="$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null)" \
  || { podman info >&2 || true; echo "setup.sh: podman does not run (above)" >&2; exit 1; }
[[ "$backend" == netavark ]] || { echo "setup.sh: podman uses the $backend network backend, not netavark" >&2; exit 1; }
