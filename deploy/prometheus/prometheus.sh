#!/usr/bin/env bash
# A local Prometheus (Debian's package, see promtool.sh) scraping leadscore workers, with the
# alert rules loaded. Used by `make observe` and by tests/integration/test_prometheus.py.
#
#   deploy/prometheus/prometheus.sh up       start it (nothing if it already runs), print its URLs
#   deploy/prometheus/prometheus.sh down     stop it
#   deploy/prometheus/prometheus.sh status   is it up?
#
# Environment (all optional):
#   PROMETHEUS_PORT=9090                 where it listens (127.0.0.1 only)
#   PROMETHEUS_TARGETS=127.0.0.1:6066    comma-separated host:port of the workers' HTTP APIs
#   PROMETHEUS_SCRAPE_INTERVAL=5s        scrape and rule evaluation interval
#   LEADSCORE_VAR_DIR                    where its config, data and log live (default <repo>/var)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="${LEADSCORE_VAR_DIR:-$repo/var}/prometheus"
port="${PROMETHEUS_PORT:-9090}"
targets="${PROMETHEUS_TARGETS:-127.0.0.1:${LEADSCORE_WEB_PORT:-6066}}"
interval="${PROMETHEUS_SCRAPE_INTERVAL:-5s}"
# shellcheck source=../lib/ports.sh
source "$here/../lib/ports.sh"  # port_in_use, port_owner
say() { echo "prometheus.sh: $*" >&2; }
die() { say "$*"; exit 1; }

running() { [[ -f "$dir/prometheus.pid" ]] && kill -0 "$(cat "$dir/prometheus.pid")" 2>/dev/null; }

up() {
  if running; then say "already running on 127.0.0.1:$(cat "$dir/port") (pid $(cat "$dir/prometheus.pid"))"; return 0; fi
  [[ "$targets" =~ ^[A-Za-z0-9._-]+:[0-9]+(,[A-Za-z0-9._-]+:[0-9]+)*$ ]] \
    || die "PROMETHEUS_TARGETS must be host:port[,host:port...], got '$targets'"
  port_in_use "$port" && die "127.0.0.1:$port is taken by $(port_owner "$port"): stop it or set PROMETHEUS_PORT"
  local prometheus
  prometheus="$("$here/promtool.sh" prometheus)" || exit 1
  mkdir -p "$dir/data"
  cp "$here/alerts.yml" "$dir/alerts.yml"
  {
    echo "global: {scrape_interval: $interval, evaluation_interval: $interval}"
    echo "rule_files: [alerts.yml]"
    echo "scrape_configs:"
    echo "  - job_name: leadscore"
    echo "    static_configs:"
    echo "      - targets: [$(sed 's/,/, /g' <<<"$targets")]"
  } > "$dir/prometheus.yml"
  "$(dirname "$prometheus")/promtool" check config "$dir/prometheus.yml" >/dev/null \
    || die "the generated $dir/prometheus.yml is invalid"
  # Debian's build serves its web UI from files; point it at the ones beside the binary.
  local assets=(); [[ -d "$(dirname "$prometheus")/../share/prometheus/web" ]] \
    && assets=(--web.local-assets="$(cd "$(dirname "$prometheus")/../share/prometheus/web" && pwd)/")
  nohup "$prometheus" "${assets[@]}" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$port" --storage.tsdb.retention.time=2d \
    > "$dir/prometheus.log" 2>&1 &
  echo $! > "$dir/prometheus.pid"
  echo "$port" > "$dir/port"
  for _ in $(seq 1 60); do
    running || { tail -n 20 "$dir/prometheus.log" >&2; die "Prometheus exited during start-up (log above)"; }
    curl -fs "127.0.0.1:$port/-/ready" >/dev/null 2>&1 && { say "up on 127.0.0.1:$port, scraping $targets"; return 0; }
    sleep 0.5
  done
  die "Prometheus not ready within 30 s (log: $dir/prometheus.log)"
}

down() {
  if running; then
    local pid; pid="$(cat "$dir/prometheus.pid")"
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    say "stopped"
  fi
  rm -f "$dir/prometheus.pid"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) if running; then echo "Prometheus up on 127.0.0.1:$(cat "$dir/port")"; else echo "Prometheus down"; exit 1; fi ;;
  *) die "usage: prometheus.sh up|down|status" ;;
esac
