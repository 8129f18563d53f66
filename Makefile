# leadscore — thin, documented targets. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KAFKA := deploy/kafka/kafka.sh
STAMP := $(VENV)/.installed
#: The core's unit tests and the offline scorer's: run again in pure Python by make test-pure.
PURE_TESTS := tests/scoring tests/commands/test_offline.py tests/commands/test_offline_limits.py \
  tests/commands/test_learn_model.py

.PHONY: help venv run test test-unit test-integration test-cluster check lint fmt broker-up broker-down \
        broker-status broker-wipe observe observe-down registry-up registry-down fuzz soak cluster-up cluster-down cluster-status bench-core bench-engine bench bench-scale bench-http bench-recompute clean test-pure

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required (found " + sys.version.split()[0] + ")")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade "pip>=24"
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

# The scoring core compiled with mypyc beside its sources (tools/build_core.py): about 40 s the
# first time, nothing while the sources are unchanged. LEADSCORE_CORE=pure skips it.
venv: $(STAMP) ## create the virtual environment (pyproject.toml + constraints.txt), compile the core
	@$(PY) tools/build_core.py

broker-up: ## start the single-node Kafka broker on 127.0.0.1:9092 (fetches the jars once)
	@$(KAFKA) up

broker-down: ## stop the single-node broker
	@$(KAFKA) down

broker-status: ## is the single-node broker up?
	@$(KAFKA) status

broker-wipe: ## stop the single-node broker and delete its data
	@$(KAFKA) wipe

cluster-up: ## start the three-node KRaft cluster (127.0.0.1:19092-19094)
	@$(KAFKA) cluster-up

cluster-down: ## stop the three-node cluster
	@$(KAFKA) cluster-down

cluster-status: ## status of each cluster node
	@$(KAFKA) cluster-status

lint: venv ## ruff, formatting, mypy (strict on streams/) and the pure-core import contract
	$(VENV)/bin/ruff check streams tests bench tools deploy examples
	$(VENV)/bin/ruff format --check streams tests bench tools deploy examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: venv ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix streams tests bench tools deploy examples
	$(VENV)/bin/ruff format streams tests bench tools deploy examples

test-unit: venv ## the unit tests of the core only (no broker), with the build make venv chose
	$(VENV)/bin/pytest $(PURE_TESTS)

# make test runs everything with the compiled core (LEADSCORE_CORE=compiled unless you set pure),
# then the core's unit tests again in pure Python: compiled code can differ from interpreted.
test test-integration: export LEADSCORE_CORE ?= compiled
test-pure: venv ## the core's unit tests in pure Python (LEADSCORE_CORE=pure)
	LEADSCORE_CORE=pure $(VENV)/bin/pytest -q $(PURE_TESTS)

# The fast developer loop: no broker, no containers (the broker and container tests are under
# tests/integration and tests/deploy/test_containers.py, run by make test).
check: venv ## lint, types, unit and shell tests without a broker (about a minute)
	@$(MAKE) --no-print-directory lint
	$(VENV)/bin/pytest -q --ignore=tests/integration \
	  --ignore=tests/deploy/test_containers.py tests

# Starts the broker only if it is not already up, and stops only what it started. When the
# default ports are taken (say, by another checkout's broker), it starts one of its own on free
# ports; the cluster test likewise.
test: venv ## everything: lint, unit and integration tests against a real broker, make bench-smoke
	@started=0; \
	if ! $(KAFKA) status >/dev/null 2>&1; then \
	  if [ -z "$$KAFKA_PORT" ] && ! $(KAFKA) ports-free; then \
	    KAFKA_PORT=$$($(KAFKA) free-port) || exit 1; export KAFKA_PORT; \
	    echo "make test: 127.0.0.1:9092/9093 are taken: using a broker of its own on 127.0.0.1:$$KAFKA_PORT"; \
	  fi; \
	  $(KAFKA) up || exit 1; started=1; \
	fi; \
	[ -n "$$LEADSCORE_TEST_BOOTSTRAP" ] || export LEADSCORE_TEST_BOOTSTRAP=$$($(KAFKA) bootstrap); \
	if [ -z "$$KAFKA_CLUSTER_PORT" ] && ! $(KAFKA) cluster-ports-free; then \
	  KAFKA_CLUSTER_PORT=$$($(KAFKA) free-cluster-port) || exit 1; export KAFKA_CLUSTER_PORT; \
	  echo "make test: the cluster's default ports are taken: its test uses 127.0.0.1:$$KAFKA_CLUSTER_PORT.."; \
	fi; \
	rc=0; $(MAKE) --no-print-directory lint && $(VENV)/bin/pytest \
	  && $(MAKE) --no-print-directory test-pure && $(MAKE) --no-print-directory bench-smoke \
	  || rc=$$?; \
	if [ $$started = 1 ]; then $(KAFKA) down; fi; \
	exit $$rc

test-integration: venv ## integration tests only (starts the broker if needed, leaves it running)
	@$(KAFKA) up
	$(VENV)/bin/pytest tests/integration

test-cluster: venv ## three-node fault test alone: kill -9 one node, keep producing, bring it back
	$(VENV)/bin/pytest -m cluster tests/integration/test_cluster.py

# Outside CI: about 25-30 minutes. make test runs the same test with 3 kills 4-8 s apart, all down 10 s.
soak-cluster: venv ## broker soak: 50 node kills 10-30 s apart (coordinators included), all three down 30 s
	CLUSTER_CYCLES=$${CLUSTER_CYCLES:-50} CLUSTER_INTERVAL_S=$${CLUSTER_INTERVAL_S:-10,30} \
	CLUSTER_ALL_DOWN_S=$${CLUSTER_ALL_DOWN_S:-30} CLUSTER_EVENTS=$${CLUSTER_EVENTS:-60000} \
	  $(VENV)/bin/pytest -p no:cacheprovider -s -m cluster tests/integration/test_cluster.py \
	  -k all_three --durations=1

test-network: venv ## network faults alone: Toxiproxy (built with go install) between the worker and the cluster
	$(VENV)/bin/pytest -p no:cacheprovider -s -m cluster tests/integration/test_network.py

run: venv ## main job: broker, worker, demo traffic, and what to curl (Ctrl-C stops; broker stays)
	@deploy/run.sh

# Prometheus (Debian's package, unpacked into .cache once) scraping the `make run` worker on
# 127.0.0.1:$(LEADSCORE_WEB_PORT or 6066), with the alert rules; PROMETHEUS_PORT, PROMETHEUS_TARGETS.
observe: venv ## local Prometheus on 127.0.0.1:9090 scraping the make run worker; prints its graph page
	@deploy/prometheus/prometheus.sh up
	@port=$$(cat var/prometheus/port); \
	echo "Prometheus: http://127.0.0.1:$$port  (targets: http://127.0.0.1:$$port/targets, alerts: http://127.0.0.1:$$port/alerts)"; \
	echo "The main panels of the dashboard, on one graph page:"; \
	$(PY) tools/dashboard.py --graph-url http://127.0.0.1:$$port; \
	echo "Stop it with: make observe-down"

observe-down: ## stop the make observe Prometheus
	@deploy/prometheus/prometheus.sh down

registry-up: ## local schema registry (Apicurio 2.4.2, in memory, built from Maven Central) on 127.0.0.1:8081
	@deploy/registry/registry.sh up

registry-down: ## stop the local schema registry (its schemas are lost)
	@deploy/registry/registry.sh down

# Containers (deploy/containers/): podman, or docker where a Docker engine answers. Where
# python:3.11-slim-trixie cannot be pulled, the base is made from Debian packages (base.sh).
# make test runs the compose stack in tests/deploy/test_containers.py, which builds first.
.PHONY: image images test-containers
image: ## the worker image leadscore:local (podman or docker; cached: seconds the second time)
	@deploy/containers/images.sh leadscore

images: ## the compose stack's images: the worker, Kafka (kafka.sh's jars), Prometheus (Debian's)
	@deploy/containers/images.sh all

test-containers: venv ## the compose stack for real: builds the images, runs tests/deploy/test_containers.py
	$(VENV)/bin/pytest -p no:cacheprovider -s tests/deploy/test_containers.py --durations=1

# Outside CI: about 1-2 minutes. make test runs the same test with 5,000 records.
fuzz: venv ## input fuzzing: 100,000 mutated and valid records against a worker (FUZZ_RECORDS=, FUZZ_SEED=)
	@$(KAFKA) up
	FUZZ_RECORDS=$${FUZZ_RECORDS:-100000} $(VENV)/bin/pytest -p no:cacheprovider -s \
	  tests/integration/test_fuzz.py

# Outside CI: about 20-30 minutes. make test runs the same test with 8,000 events, 4 kills, 2 zombies.
soak: venv ## worker soak: 200,000 events, 20,000 contacts, 100 kill -9s, 20 zombies, joins and leaves
	@$(KAFKA) up
	SOAK_EVENTS=$${SOAK_EVENTS:-200000} SOAK_ENTITIES=$${SOAK_ENTITIES:-20000} \
	SOAK_KILLS=$${SOAK_KILLS:-100} SOAK_ZOMBIES=$${SOAK_ZOMBIES:-20} SOAK_JOINS=$${SOAK_JOINS:-10} \
	  $(VENV)/bin/pytest -p no:cacheprovider -s tests/integration/test_soak.py --durations=1

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev,bench]"
	@touch $(BENCH_STAMP)

# BENCH_CORE_ARGS (or the older BENCH_ENGINE_ARGS) passes options to bench/core.py.
bench-core: venv $(BENCH_STAMP) ## scoring core: base commit, pure and compiled side by side (BASE=, EVENTS=); writes bench/results/core-<date>.*
	$(PY) bench/core.py --base $(or $(BASE),2110d38) --events $(or $(EVENTS),200000) --profile \
	  --instructions 5000 $(BENCH_CORE_ARGS) $(BENCH_ENGINE_ARGS)

bench-engine: ## (deprecated: make bench-core)
	@echo "make bench-engine is deprecated: it is make bench-core now (running that)"
	@$(MAKE) --no-print-directory bench-core

#: The commit of make bench's leadscore@<commit> contender: the commit before issue 24.
BENCH_BASE ?= 3f54bb3

# Outside CI: about 15-25 minutes. BENCH_ARGS passes options to bench/run.py (see its --help),
# e.g. a short run of our worker against BENCH_BASE's: BENCH_ARGS="--contenders ours,{base}".
# bench/run.py builds the peers' venvs and the base commit's tree first (once; cached in .cache/bench).
bench: venv $(BENCH_STAMP) ## side-by-side: plain pipes, our worker (reference and second-wave plans) and BENCH_BASE's, the last Faust worker, Quix Streams; writes bench/results/<date>.*
	@$(KAFKA) up
	$(PY) bench/run.py --base "$(BENCH_BASE)" $(BENCH_ARGS)

# About 8-12 minutes on the 2-core machine (the cluster's start included when it is down).
# BENCH_SCALE_ARGS passes options to bench/scale.py (see its --help), e.g. --smoke.
bench-scale: venv $(BENCH_STAMP) ## 1, 2 and 4 workers on the three-node cluster, the pause at joins and leaves; writes bench/results/scale-<date>.*
	$(PY) bench/scale.py $(BENCH_SCALE_ARGS)

# About 1-2 minutes; the first time on a fresh clone also builds the Quix Streams and Faust venvs
# (about 15-20 s each, side by side with the other contenders). make test runs it after the suite,
# against LEADSCORE_TEST_BOOTSTRAP; alone, it starts the broker if needed.
.PHONY: bench-smoke
bench-smoke: venv $(BENCH_STAMP) ## make bench's harness, checked: every contender and phase, tiny counts (tests/bench/bench_smoke.py)
	@if [ -z "$$LEADSCORE_TEST_BOOTSTRAP" ]; then \
	  $(KAFKA) up || exit 1; export LEADSCORE_TEST_BOOTSTRAP=$$($(KAFKA) bootstrap); \
	fi; \
	$(VENV)/bin/pytest -p no:cacheprovider -q tests/bench/bench_smoke.py --durations=1

bench-http: $(BENCH_STAMP) ## processing with and without 100 HTTP requests in flight; writes bench/results/http-<date>.*
	@$(KAFKA) up
	$(PY) bench/http_load.py $(BENCH_HTTP_ARGS)

bench-recompute: $(BENCH_STAMP) ## a tenant's cut-over with a recompute (replay --apply) over 100,000 events; writes bench/results/recompute-<date>.*
	@$(KAFKA) up
	$(PY) bench/recompute.py $(BENCH_RECOMPUTE_ARGS)

# About a minute; no broker. make test runs it with 200 events (tests/bench/test_bench_regex.py).
.PHONY: bench-regex bench-state-bytes
bench-state-bytes: venv ## what the commits write per event as states grow, whole states against sealed segments (1-2 min); writes bench/results/state-bytes-<date>.*
	$(PY) bench/state_bytes.py $(BENCH_STATE_ARGS)

bench-regex: venv ## plan regexes on RE2: 200,000 events, plain plan against catastrophic patterns; writes bench/results/regex-<date>.*
	$(PY) bench/regex.py $(BENCH_REGEX_ARGS)

# Outside CI: about 50 minutes (a calibration run over four passes of 1,000,000 entities, then
# 30 minutes at half load).
memory: $(BENCH_STAMP) ## worker RSS over 30 min at half load, 1,000,000 entities; writes bench/results/memory-<date>.*
	@$(KAFKA) up
	$(PY) bench/memory.py --setting LEADSCORE_CACHE_BYTES=16777216 $(MEMORY_ARGS)

clean: ## remove the virtualenv, the compiled core and caches (keeps the Kafka jar cache and broker data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .cache/core-build
	rm -f streams/scoring/*.so streams/scoring/native.stamp
