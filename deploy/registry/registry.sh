#!/usr/bin/env bash
# Local schema registry for development and tests: Apicurio Registry (in-memory storage), serving
# the Confluent-compatible API, assembled from Maven Central and run on the JVM like the broker.
#
#   deploy/registry/registry.sh fetch        build the registry into the cache (first run only)
#   deploy/registry/registry.sh up|down      start (and wait until ready) / stop it
#   deploy/registry/registry.sh status       one line; exit 0 when it serves requests
#   deploy/registry/registry.sh url          the URL for LEADSCORE_SCHEMA_REGISTRY_URL
#   deploy/registry/registry.sh wipe         stop it and delete its logs (schemas live in memory)
#   deploy/registry/registry.sh port-free    exit 0 if REGISTRY_PORT is free (or ours)
#   deploy/registry/registry.sh free-port    print a free port to use as REGISTRY_PORT
#
# Apicurio publishes no runnable jar on Maven Central, only the application's classes
# (io.apicurio:apicurio-registry-app), so `fetch` does what its own build does: it takes that
# jar and its POM, resolves the dependencies with Maven and runs the Quarkus augmentation
# (quarkus-maven-plugin build, fast-jar) into `<cache>/registry/<version>/quarkus-app`
# (about 130 MB; 1.5 minutes the first time with an empty ~/.m2, which takes 226 MB; 15-25 s
# with the Maven repository filled). Version 2.4.2.Final is the newest whose modules are all on
# Maven Central: 2.5.x and 2.6.x lack apicurio-registry-schema-util-provider, 3.0.9 and 3.3.2
# their parent POM, and 3.3.x most of its own modules (and it needs Java 21).
# Two adjustments make 2.4.2.Final resolve from Maven Central alone:
#   - everit-json-schema comes from com.github.erosb:everit-json-schema (Maven Central) instead
#     of com.github.everit-org.json-schema (JitPack only); same packages, same version;
#   - the build-time extension apicurio-common-app-components-config-index(-deployment) is taken
#     at 0.1.10.Final, because 0.1.18.Final's deployment artifact is not on Maven Central.
#
# Storage is in memory (H2): schemas are lost when the registry stops. The global
# compatibility rule is BACKWARD (Confluent's default): a new version of a subject must be
# readable by consumers of the previous one (adding an optional field with a default is fine).
#
# Environment (all optional):
#   REGISTRY_PORT=8081          HTTP port on 127.0.0.1
#   REGISTRY_HEAP_OPTS          JVM heap (default -Xms64m -Xmx384m)
#   REGISTRY_START_TIMEOUT=90   seconds to wait for readiness
#   LEADSCORE_CACHE_DIR         where the built registry is cached (default <repo>/.cache)
#   LEADSCORE_VAR_DIR           where its pid, port and logs live (default <repo>/var)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache_dir="${LEADSCORE_CACHE_DIR:-$repo/.cache}/registry"
run_dir="${LEADSCORE_VAR_DIR:-$repo/var}/registry"
version="2.4.2.Final"
quarkus_version="2.16.4.Final"  # the quarkus.version of io.apicurio:apicurio-registry:2.4.2.Final
dependency_plugin="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
start_timeout_s="${REGISTRY_START_TIMEOUT:-90}"
app_dir="$cache_dir/$version/quarkus-app"

die() { echo "registry.sh: $*" >&2; exit 1; }
say() { echo "registry.sh: $*" >&2; }

is_running() { [[ -f "$run_dir/registry.pid" ]] && kill -0 "$(cat "$run_dir/registry.pid")" 2>/dev/null; }
# A registry of this checkout started on another port recorded it: use that unless told otherwise.
recorded_port() { is_running && [[ -f "$run_dir/port" ]] && cat "$run_dir/port"; }
port="${REGISTRY_PORT:-$(recorded_port || echo 8081)}"
[[ "$port" =~ ^[0-9]+$ ]] && (( port > 0 && port < 65536 )) || die "REGISTRY_PORT must be a TCP port (got '$port')."
base_url="http://127.0.0.1:$port"
api_url="$base_url/apis/ccompat/v6"

require_java() {
  command -v java >/dev/null 2>&1 || die "Java 17 or newer is required: install a JDK 17+ (e.g. apt-get install openjdk-17-jdk-headless)."
  local major
  major="$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}' | cut -d. -f1)"
  [[ "$major" =~ ^[0-9]+$ && "$major" -ge 17 ]] || die "Java 17 or newer is required, found '${major:-unknown}'."
}

# Build the registry once; later calls find it in the cache and return at once.
fetch() {
  require_java
  [[ -f "$app_dir/quarkus-run.jar" ]] && return 0
  command -v mvn >/dev/null 2>&1 || die "Maven is required to build the registry from Maven Central: install Maven 3.6+ (e.g. apt-get install maven)."
  local work="$cache_dir/build.$$"
  rm -rf "$work" && mkdir -p "$work/target/classes"
  say "building Apicurio Registry $version from Maven Central (first run only, 1-2 minutes)..."
  local artifact
  for artifact in pom jar; do
    mvn -q -B "$dependency_plugin:copy" -Dartifact="io.apicurio:apicurio-registry-app:$version:$artifact" \
      -DoutputDirectory="$work" >>"$work/mvn.log" 2>&1 \
      || { tail -n 30 "$work/mvn.log" >&2; die "Maven could not fetch io.apicurio:apicurio-registry-app:$version:$artifact (log above)."; }
  done
  # The application's own POM, minus its tests, plus the two adjustments described above.
  python3 - "$work/apicurio-registry-app-$version.pom" "$work/pom.xml" <<'PY' || die "could not adapt the registry's POM."
import re, sys
pom = open(sys.argv[1], encoding="utf-8").read()
pom = re.sub(r"\s*<dependency>(?:(?!</dependency>).)*<scope>test</scope>(?:(?!</dependency>).)*</dependency>",
             "", pom, flags=re.S)
provider = "<artifactId>apicurio-registry-schema-util-provider</artifactId>"
assert provider in pom, "no schema-util-provider dependency"
pom = pom.replace(provider, provider + "<exclusions><exclusion><groupId>com.github.everit-org.json-schema"
                  "</groupId><artifactId>org.everit.json.schema</artifactId></exclusion></exclusions>", 1)
pins = "".join(
    f"<dependency><groupId>io.apicurio</groupId><artifactId>{a}</artifactId><version>0.1.10.Final</version></dependency>"
    for a in ("apicurio-common-app-components-config-index", "apicurio-common-app-components-config-index-deployment"))
everit = ("<dependency><groupId>com.github.erosb</groupId><artifactId>everit-json-schema</artifactId>"
          "<version>1.14.2</version></dependency>")
head, sep, tail = pom.partition("<dependencies>")
assert sep, "no <dependencies>"
pom = f"{head}<dependencyManagement><dependencies>{pins}</dependencies></dependencyManagement>{sep}{everit}{tail}"
open(sys.argv[2], "w", encoding="utf-8").write(pom)
PY
  python3 -m zipfile -e "$work/apicurio-registry-app-$version.jar" "$work/target/classes/" \
    || die "could not unpack the registry jar."
  if ! mvn -q -B -f "$work/pom.xml" "io.quarkus:quarkus-maven-plugin:$quarkus_version:build" \
        -Dquarkus.package.type=fast-jar >>"$work/mvn.log" 2>&1; then
    tail -n 30 "$work/mvn.log" >&2
    die "the Quarkus build of the registry failed (log above; full log: $work/mvn.log)."
  fi
  [[ -f "$work/target/quarkus-app/quarkus-run.jar" ]] || die "the Quarkus build made no quarkus-run.jar (see $work/mvn.log)."
  rm -rf "$cache_dir/$version" && mkdir -p "$cache_dir/$version"
  mv "$work/target/quarkus-app" "$app_dir"
  echo "$version" > "$cache_dir/$version/VERSION"
  rm -rf "$work"
  say "Apicurio Registry $version cached in $cache_dir/$version"
}

# http_ok <url>: exit 0 when a GET answers 200 within 2 s.
http_ok() {
  python3 - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
}

serving() { http_ok "$base_url/health/ready" && http_ok "$api_url/subjects"; }

# shellcheck source=../lib/ports.sh
source "$here/../lib/ports.sh"  # port_in_use, port_owner

free_port() {
  local p=28081
  for _ in $(seq 1 200); do port_in_use "$p" || { echo "$p"; return 0; }; p=$(( p + 1 )); done
  die "no free port found from 28081 on."
}

wait_ready() {
  local deadline=$(( SECONDS + start_timeout_s ))
  while (( SECONDS < deadline )); do
    is_running || { tail -n 40 "$run_dir/logs/registry.log" >&2 2>/dev/null; die "the registry exited during start-up (log above)."; }
    serving && return 0
    sleep 0.5
  done
  die "the registry did not serve $api_url within ${start_timeout_s}s (see $run_dir/logs/registry.log)."
}

up() {
  if is_running; then
    [[ "$(cat "$run_dir/port" 2>/dev/null)" == "$port" ]] \
      || die "the registry of this checkout already runs on port $(cat "$run_dir/port" 2>/dev/null): stop it first (deploy/registry/registry.sh down) or unset REGISTRY_PORT."
    wait_ready
    say "registry already running: $api_url"; return 0
  fi
  if port_in_use "$port"; then
    die "127.0.0.1:$port is taken by $(port_owner "$port"): stop it, or use another port, e.g. REGISTRY_PORT=$(free_port)."
  fi
  fetch
  mkdir -p "$run_dir/logs"
  echo "$port" > "$run_dir/port"
  # shellcheck disable=SC2206 # the heap options are deliberately split into words
  local cmd=(java ${REGISTRY_HEAP_OPTS:--Xms64m -Xmx384m} -XX:+UseSerialGC -XX:ActiveProcessorCount=2
    -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
    -Dquarkus.profile=prod -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port"
    -Dregistry.rules.global.compatibility=BACKWARD
    -Dquarkus.log.category.\"io.apicurio\".level=WARN
    -jar "$app_dir/quarkus-run.jar")
  nohup "${cmd[@]}" >"$run_dir/logs/registry.log" 2>&1 </dev/null &
  echo $! > "$run_dir/registry.pid"
  wait_ready
  say "Apicurio Registry $version ready: $api_url (in-memory; log: $run_dir/logs/registry.log)"
}

down() {
  local pid
  if is_running; then
    pid="$(cat "$run_dir/registry.pid")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$run_dir/registry.pid"
  say "registry stopped"
}

status() {
  if is_running && serving; then echo "registry: up (pid $(cat "$run_dir/registry.pid"), $api_url)"; return 0; fi
  if is_running; then echo "registry: starting (pid $(cat "$run_dir/registry.pid"), $api_url)"; return 1; fi
  echo "registry: down"; return 1
}

cmd="${1:-help}"; shift || true
case "$cmd" in
  fetch) fetch; echo "$version" ;;
  up) up ;;
  down) down ;;
  status) status ;;
  url) echo "$api_url" ;;
  wipe) down; rm -rf "$run_dir"; say "registry logs deleted" ;;
  port-free) is_running && [[ "$(cat "$run_dir/port" 2>/dev/null)" == "$port" ]] && exit 0; port_in_use "$port" && exit 1; exit 0 ;;
  free-port) free_port ;;
  help|-h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$cmd' (try: deploy/registry/registry.sh help)" ;;
esac
