#!/usr/bin/env bash
# The compose stack (docker-compose.yml) here, with the local images of docker-compose.local.yml:
#
#   deploy/containers/compose.sh build                 build the images (images.sh all; cached)
#   deploy/containers/compose.sh up -d                 start the stack
#   deploy/containers/compose.sh ps|logs|stop|down ... any other compose command, passed on
#
# podman-compose (the project's dev extra, in .venv) with podman and the project's
# containers.conf, or `docker compose` where a Docker engine answers (CONTAINER_ENGINE picks).
# Options before the command go to compose itself (e.g. -p NAME for another project name).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=engine.sh
source "$here/engine.sh"
[[ "${1:-}" == build ]] && exec "$here/images.sh" all
files=(-f "$repo/docker-compose.yml" -f "$repo/docker-compose.local.yml")
if [[ "$ENGINE" == docker ]]; then
  exec docker compose "${files[@]}" "$@"
fi
"$here/setup.sh" check >/dev/null 2>&1 || "$here/setup.sh"
compose="$repo/.venv/bin/podman-compose"
[[ -x "$compose" ]] || compose="$(command -v podman-compose)" \
  || { echo "compose.sh: podman-compose is missing: make venv installs it (dev extra)" >&2; exit 1; }
exec "$compose" "${files[@]}" "$@"
