#!/usr/bin/env bash
# Builds the images of the project, with podman (or docker where a Docker engine answers):
#
#   deploy/containers/images.sh [leadscore]   the worker image, leadscore:local (make image)
#   deploy/containers/images.sh all           and the stack's local images: leadscore-kafka:local
#                                             and leadscore-prometheus:local (make images)
#
# The worker image is the Dockerfile's, unchanged, from the Python base PYTHON_IMAGE: when that
# is unset, the Dockerfile's own default (python:3.11-slim-trixie) where it can be pulled, else
# the base deploy/containers/base.sh makes from Debian packages. The Kafka image holds the
# broker jars deploy/kafka/kafka.sh resolves from Maven Central; Prometheus is Debian's package;
# both are built on the same Debian base. Everything is cached: a second run takes seconds.
#
# With podman, the build's RUN steps see the host's CA bundle (mounted, not copied into any
# image), so pip and apt work behind a TLS-inspecting proxy whose CA the host trusts.
# Environment: PYTHON_IMAGE, CONTAINER_ENGINE (podman|docker), LEADSCORE_IMAGE (leadscore:local).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
what="${1:-leadscore}"
[[ "$what" == leadscore || "$what" == all ]] || { echo "usage: images.sh [leadscore|all]" >&2; exit 2; }
say() { echo "images.sh: $*" >&2; }
# shellcheck source=engine.sh
source "$here/engine.sh"
if [[ "$ENGINE" == podman ]]; then "$here/setup.sh"; fi
start=$SECONDS

build=("$ENGINE" build)
if [[ "$ENGINE" == podman ]]; then
  # docker format keeps the Dockerfile's HEALTHCHECK (OCI images have none)
  build+=(--format docker)
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    build+=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
  fi
fi

default_base="$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$repo/Dockerfile")"
base="${PYTHON_IMAGE:-}"
if [[ -z "$base" ]]; then
  if "$ENGINE" image inspect "$default_base" >/dev/null 2>&1 \
      || timeout 120 "$ENGINE" pull -q "$default_base" >/dev/null 2>&1; then
    base="$default_base"
  else
    say "$default_base cannot be pulled here: using a base made from Debian packages"
    base="$("$here/base.sh")"
  fi
fi
debian_base() {  # the stack's other images are built on the Debian-made base
  "$here/base.sh"
}

log_dir="$repo/var/containers"; mkdir -p "$log_dir"
run_build() {  # run_build <log name> <build args...>
  local name="$1" t=$SECONDS; shift
  if ! "${build[@]}" "$@" >"$log_dir/build-$name.log" 2>&1; then
    tail -n 40 "$log_dir/build-$name.log" >&2
    say "building $name failed (above; the whole log: var/containers/build-$name.log)"; exit 1
  fi
  say "$name built in $(( SECONDS - t )) s"
}

image="${LEADSCORE_IMAGE:-leadscore:local}"
run_build leadscore --build-arg PYTHON_IMAGE="$base" -t "$image" -f "$repo/Dockerfile" "$repo"

if [[ "$what" == all ]]; then
  dbase="$(debian_base)"
  # Kafka: the jars of kafka.sh's cache (resolved from Maven Central on its first run), staged
  # beside the image's own files; hard links where the file system allows.
  version="$("$repo/deploy/kafka/kafka.sh" fetch | tail -n 1)"
  jars="${LEADSCORE_CACHE_DIR:-$repo/.cache}/kafka/$version/libs"
  context="${LEADSCORE_CACHE_DIR:-$repo/.cache}/containers/kafka-context"
  rm -rf "$context" && mkdir -p "$context"
  cp -al "$jars" "$context/libs" 2>/dev/null || cp -a "$jars" "$context/libs"
  cp "$here/kafka/entrypoint.sh" "$here/kafka/kafka-broker-api-versions.sh" "$here/kafka/log4j2.properties" "$context/"
  run_build kafka --build-arg BASE_IMAGE="$dbase" --label "org.apache.kafka.version=$version" \
    -t "leadscore-kafka:$version" -t leadscore-kafka:local -f "$here/kafka/Containerfile" "$context"
  run_build prometheus --build-arg BASE_IMAGE="$dbase" -t leadscore-prometheus:local \
    -f "$here/prometheus/Containerfile" "$here/prometheus"
fi
# Rebuilds leave untagged images behind: those made more than a week ago go. (A plain prune
# would empty the build cache too; this one costs a full rebuild only after a week without any.)
if [[ "$ENGINE" == podman ]]; then "$ENGINE" image prune -f --filter until=168h >/dev/null 2>&1 || true; fi
say "done in $(( SECONDS - start )) s: $("$ENGINE" image inspect --format '{{.Size}}' "$image" | awk '{printf "%s %.0f MB", "'"$image"'", $1 / 1e6}')"
