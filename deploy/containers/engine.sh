# Sourced by the scripts in deploy/containers/: picks the container engine and its settings.
#   CONTAINER_ENGINE=podman|docker   force one; else docker when a Docker engine answers, else
#                                    podman (deploy/containers/setup.sh installs it)
# podman runs with the project's containers.conf (CONTAINERS_CONF, see that file); an explicit
# CONTAINERS_CONF of the caller is kept.
here_engine="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "${CONTAINER_ENGINE:-}" ]]; then
  if command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then
    CONTAINER_ENGINE=docker
  else
    CONTAINER_ENGINE=podman
  fi
fi
ENGINE="$CONTAINER_ENGINE"
if [[ "$ENGINE" == podman ]]; then
  export CONTAINERS_CONF="${CONTAINERS_CONF:-$here_engine/containers.conf}"
fi
export CONTAINER_ENGINE
