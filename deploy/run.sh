#!/usr/bin/env bash
# `make run`: the broker, a worker, demo traffic, and what to curl. Ctrl-C stops the worker and the
# demo traffic (the broker keeps running: `make broker-down`).
set -euo pipefail
cd "$(dirname "$0")/.."
port="${LEADSCORE_WEB_PORT:-6066}"
mkdir -p var
deploy/kafka/kafka.sh up
.venv/bin/leadscore worker > var/worker.log 2>&1 &
worker=$!
demo=""
trap 'kill $demo $worker 2>/dev/null || true; wait $worker 2>/dev/null || true' EXIT INT TERM
printf 'leadscore: waiting for the worker (log: var/worker.log) ...\n'
for _ in $(seq 1 120); do
  kill -0 "$worker" 2>/dev/null || { tail -n 30 var/worker.log; echo "leadscore: the worker exited" >&2; exit 1; }
  curl -fs "127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
.venv/bin/leadscore demo --events "${DEMO_EVENTS:-20000}" --rate "${DEMO_RATE:-50}" --contacts 200 \
  > var/demo.log 2>&1 &
demo=$!
cat <<EOT

leadscore is running: worker on 127.0.0.1:$port, demo traffic at ${DEMO_RATE:-50} records/s.
Watch a score change and its explanation:

  curl -s 127.0.0.1:$port/scores/contact/c-0
  curl -s '127.0.0.1:$port/scores/contact/c-0/explain?score=engagement'
  curl -s '127.0.0.1:$port/scores/contact/c-1?tenant=acme'
  curl -s 127.0.0.1:$port/metrics | grep '^leadscore_'

Every change is also on the score-changed topic. Ctrl-C stops the worker and the traffic.
EOT
wait "$worker"
