#!/usr/bin/env bash
# Makes the project's Python base image from Debian packages, for machines that cannot pull
# python:3.11-slim-trixie (the Dockerfile's default base) from an image registry, and prints its
# name. The same Python line as that image: 3.11, which among Debian's releases only bookworm
# (Debian 12) ships (trixie's is 3.13). mmdebstrap builds a minimal bookworm (with its updates
# and security suites) holding python3.11 with its venv module into a tarball, and
# `podman import` turns it into an image. Made once: the image's tag carries a digest of this
# script's commands (comments aside), so a change to them makes a new one, and a second run
# prints the name in a fraction of a second. For the latest Debian updates, remove the image
# (`podman rmi $(deploy/containers/base.sh name)`): the next build makes it anew.
#
#   deploy/containers/base.sh            make the base if it is missing; print its name
#   deploy/containers/base.sh name       print its name only
#
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian), DEBIAN_SECURITY_MIRROR
# (default http://deb.debian.org/debian-security), CONTAINER_ENGINE (podman or docker; default
# from engine.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=engine.sh
source "$here/engine.sh"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
suite=bookworm
# python3.11 and its venv module (the Dockerfile runs `python -m venv`), python-is-python3 for
# `python`, ca-certificates for pip and TLS. No C headers: the Dockerfile's build stage installs
# them with gcc, so the runtime image goes without (the service's time zones come from the tzdata
# wheel, so Debian's tzdata stays out too).
packages=python3.11,python3.11-venv,python3-venv,python-is-python3,ca-certificates
digest="$(grep -v '^[[:space:]]*#' "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)"
name="localhost/leadscore-base:py3.11-$suite-$digest"

[[ "${1:-}" == name ]] && { echo "$name"; exit 0; }
if "$ENGINE" image exists "$name" 2>/dev/null || "$ENGINE" image inspect "$name" >/dev/null 2>&1; then
  echo "$name"; exit 0
fi
command -v mmdebstrap >/dev/null 2>&1 || { echo "base.sh: mmdebstrap is missing (deploy/containers/setup.sh installs it)" >&2; exit 1; }
[[ "$(id -u)" == 0 ]] || { echo "base.sh: mmdebstrap runs as root here (mode root)" >&2; exit 1; }
work="$(mktemp -d "${TMPDIR:-/tmp}/leadscore-base.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "base.sh: building $name from Debian $suite packages (first run only, about a minute)..." >&2
start=$SECONDS
# Docs, man pages, translations and Python's static libraries are never installed (dpkg path
# filters kept in the image, as Debian's own slim images do), and apt's lists are dropped.
# merged /usr by directory links, as debootstrap and Debian's images make it (the usrmerge package
# would bring perl along).
if ! mmdebstrap --mode=root --variant=minbase --format=tar --include="$packages" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --dpkgopt='path-exclude=/usr/lib/*-linux-gnu/libpython3.11*.a' \
    --dpkgopt='path-exclude=/usr/lib/python3.11/config-3.11-*/*.a' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*.log "$1"/var/log/apt/*' \
    "$suite" "$work/base.tar" \
    "deb $mirror $suite main" "deb $mirror $suite-updates main" "deb $security $suite-security main" \
    >"$work/mmdebstrap.log" 2>&1; then
  tail -n 40 "$work/mmdebstrap.log" >&2
  echo "base.sh: mmdebstrap failed (above)" >&2; exit 1
fi
"$ENGINE" import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' \
  --message "leadscore base: Debian $suite minbase, python3.11 (deploy/containers/base.sh)" \
  "$work/base.tar" "$name" >"$work/import.log" 2>&1 || { cat "$work/import.log" >&2; exit 1; }
echo "base.sh: $name made in $(( SECONDS - start )) s" >&2
# earlier bases lose their tags (their layers go once nothing built on them is left)
for old in $("$ENGINE" images --format '{{.Repository}}:{{.Tag}}' "${name%%:*}" 2>/dev/null); do
  [[ "$old" == "$name" ]] || "$ENGINE" rmi "$old" >/dev/null 2>&1 || true
done
echo "$name"
