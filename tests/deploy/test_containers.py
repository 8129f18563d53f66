"""The compose stack for real: the images built (``deploy/containers/images.sh all``, cached) and
``docker-compose.yml`` with ``docker-compose.local.yml`` run by podman-compose: the broker, two
workers, demo traffic and Prometheus, each in its container.

- both workers become ready and serve scores over HTTP, each for every entity (forwarding);
- a ``read_committed`` reader sees every change exactly once while one worker's process is
  killed with ``kill -9`` mid-traffic and its restart policy brings it back, and the published
  changes equal the core's replay and the offline scorer's finals (``verify.check_run``);
- Prometheus in the stack scrapes both workers (``up`` = 2) and has loaded the alert rules;
- the leadscore containers run as uid 10001 with a read-only root filesystem, no capabilities;
- the healthchecks (the broker's in the compose file, the image's for the workers) pass;
- ``compose stop`` ends each worker with exit 0 within its ``stop_grace_period``.

Isolation: a project name of its own (containers, volumes, network), host ports picked free at
run time (never 9092/9093 or the cluster's), traffic only to 127.0.0.1 and the stack's own
container network; ``down -v`` and a sweep by the project's label remove everything, whatever
happened. Bounded: 6,000 demo records at 250 a second, and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.wire.codec import Codec, Source
from tests.integration.service import REPO, SOURCES, Service, free_port
from tests.integration.verify import LiveReader, check_run

CONTAINERS = REPO / "deploy" / "containers"
COMPOSE = CONTAINERS / "compose.sh"
PLAN = REPO / "plans" / "reference.yaml"
PROJECT_LABEL = "io.podman.compose.project"
SERVICE_LABEL = "io.podman.compose.service"
PROJECT_PREFIX = "leadscore-test-"
STALE_S = 3600  # a stack of this test older than that was left by a run that was killed
DEMO_EVENTS, DEMO_RATE = 6000, 250
BUILD_TIMEOUT_S = 1800  # a cold build here: the Debian base, the three images (about 5 minutes)
ALERTS = {
    rule["alert"]
    for group in yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text())[
        "groups"
    ]
    for rule in group["rules"]
}
GRACE_S = 75  # docker-compose.yml's stop_grace_period of the workers
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def podman_env() -> dict[str, str]:
    """The runner's environment without LEADSCORE_* (the compose file passes LEADSCORE_API_TOKEN
    on from the shell), with the project's podman settings."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LEADSCORE_")}
    env["CONTAINER_ENGINE"] = "podman"
    env["CONTAINERS_CONF"] = str(CONTAINERS / "containers.conf")
    return env


def podman(*args: str, timeout: float = 120, check: bool = True) -> str:
    done = subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip
    if check:
        assert done.returncode == 0, f"podman {' '.join(args)}: {done.stderr}"
    return done.stdout


@dataclass
class Stack(Service):
    """The compose stack seen from the host: the service's default names (no suffix), the
    broker through its HOST listener, the workers through their published ports."""

    project: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    log: Path = Path()

    def topic(self, source: Source) -> str:
        return SOURCES[source]

    @property
    def app_id(self) -> str:
        return "leadscore"

    @property
    def changed(self) -> str:
        return "score-changed"

    @property
    def scores(self) -> str:
        return "scores"

    @property
    def dead(self) -> str:
        return "leadscore-dead-letters"

    def compose(self, *args: str, timeout: float = 300) -> str:
        env = {**podman_env(), "DEMO_EVENTS": str(DEMO_EVENTS), "DEMO_RATE": str(DEMO_RATE)}
        env |= {name: str(port) for name, port in self.ports.items()}
        with self.log.open("a") as out:
            out.write(f"$ compose.sh -p {self.project} {' '.join(args)}\n")
            out.flush()
            done = subprocess.run([str(COMPOSE), "-p", self.project, *args], env=env, cwd=REPO,
                                  stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                                  check=False)  # fmt: skip
        assert done.returncode == 0, f"compose {' '.join(args)} failed:\n{self.tail_log()}"
        return self.project

    def tail_log(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def containers(self) -> dict[str, str]:
        """service -> container name, of this project's containers (running or not)."""
        out = podman("ps", "-a", "--filter", f"label={PROJECT_LABEL}={self.project}",
                     "--format", "json")  # fmt: skip
        return {c["Labels"][SERVICE_LABEL]: c["Names"][0] for c in json.loads(out or "[]")}

    def inspect(self, service: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(podman("inspect", self.containers()[service]))
        return found[0]

    def logs(self, service: str, lines: int = 30) -> str:
        name = self.containers().get(service)
        if name is None:
            return f"(no container for {service})"
        done = subprocess.run(["podman", "logs", "--tail", str(lines), name], env=podman_env(),
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        return done.stdout + done.stderr

    def http(self, worker: str, path: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.ports[worker]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    async def wait_worker_ready(self, service: str, port_name: str, timeout_s: float = 150) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.http(port_name, "/readyz")[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                pass
            await asyncio.sleep(0.5)
        raise AssertionError(f"{service} not ready within {timeout_s}s:\n{self.logs(service)}")

    async def inputs(self) -> list[tuple[Source, dict[str, Any]]]:
        """What the demo published, decoded as the workers decode it (timestamps in ms)."""
        codec = Codec.load()
        out = []
        for source in SOURCES:
            for rec in await self.read_all(self.topic(source)):
                record = codec.decode(codec.inputs[source], rec.value)
                for name, value in record.items():
                    if isinstance(value, dt.datetime):
                        record[name] = (value - EPOCH) // dt.timedelta(milliseconds=1)
                out.append((source, record))
        return out


def sweep(project: str) -> None:
    """Remove whatever of the project is left: containers, pod, volumes, network."""
    label = f"label={PROJECT_LABEL}={project}"
    ids = podman("ps", "-aq", "--filter", label, check=False).split()
    if ids:
        podman("rm", "-f", "-t", "5", *ids, timeout=180, check=False)
    podman("pod", "rm", "-f", f"pod_{project}", check=False)
    volumes = podman("volume", "ls", "-q", "--filter", label, check=False).split()
    if volumes:
        podman("volume", "rm", "-f", *volumes, check=False)
    podman("network", "rm", "-f", f"{project}_default", check=False)


def sweep_stale() -> None:
    """Stacks of this test that a killed run left behind (its ``finally`` never ran): removed
    once they are older than any run of the test could be."""
    out = podman("ps", "-a", "--filter", f"label={PROJECT_LABEL}", "--format", "json", check=False)
    now = time.time()
    stale = {
        c["Labels"][PROJECT_LABEL]
        for c in json.loads(out or "[]")
        if c["Labels"][PROJECT_LABEL].startswith(PROJECT_PREFIX) and now - c["Created"] > STALE_S
    }
    for project in stale:
        sweep(project)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("containers")
    started = time.monotonic()
    built = subprocess.run([str(CONTAINERS / "images.sh"), "all"], env=podman_env(), cwd=REPO,
                           capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                           check=False)  # fmt: skip
    if built.returncode != 0:
        pytest.fail(f"building the images failed:\n{built.stderr[-4000:]}", pytrace=False)
    print(f"\nimages: {time.monotonic() - started:.0f} s\n{built.stderr.strip()}")
    ports = {"WORKER_1_PORT": free_port(), "WORKER_2_PORT": free_port(),
             "PROMETHEUS_PORT": free_port(), "KAFKA_HOST_PORT": free_port()}  # fmt: skip
    assert len(set(ports.values())) == 4
    sweep_stale()
    project = f"{PROJECT_PREFIX}{uuid.uuid4().hex[:8]}"
    svc = Stack(f"127.0.0.1:{ports['KAFKA_HOST_PORT']}", "", root, plan=PLAN, partitions=8,
                project=project, ports=ports, log=root / "compose.log")  # fmt: skip
    try:
        # everything but the demo traffic, which starts once both workers are ready (podman 4.3
        # runs no healthcheck without systemd, so depends_on: service_healthy does not wait)
        svc.compose("up", "-d", "kafka", "leadscore-1", "leadscore-2", "prometheus")
        yield svc
    finally:
        try:
            svc.compose("down", "-v", "-t", "30", timeout=300)
        finally:
            sweep(project)
            left = podman("ps", "-aq", "--filter", f"label={PROJECT_LABEL}={project}", check=False)
            assert not left.split(), f"containers of {project} left behind: {left}"


async def test_exactly_once_through_a_worker_killed_and_restarted(stack: Stack) -> None:
    started = time.monotonic()
    await stack.wait_worker_ready("leadscore-1", "WORKER_1_PORT")
    await stack.wait_worker_ready("leadscore-2", "WORKER_2_PORT")
    ready_s = time.monotonic() - started
    live = LiveReader(stack.bootstrap, stack.changed).start()
    try:
        stack.compose("up", "-d", "--no-deps", "demo")
        # kill -9 the second worker's process (as the kernel's OOM killer would) a third of the
        # way through the traffic, once changes flow
        kill_at = time.monotonic() + DEMO_EVENTS / DEMO_RATE / 3
        deadline = time.monotonic() + 90
        while time.monotonic() < kill_at or not live.seen:
            assert time.monotonic() < deadline, f"no change within 90 s:\n{stack.logs('demo')}"
            await asyncio.sleep(0.2)
        seen_at_kill = sum(len(v) for v in live.seen.values())
        assert stack.inspect("demo")["State"]["Status"] == "running", stack.logs("demo")
        before = stack.inspect("leadscore-2")
        assert before["State"]["Status"] == "running"
        os.kill(before["State"]["Pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        # the restart policy (unless-stopped) brings it back by itself
        deadline = time.monotonic() + 60
        after = before
        while time.monotonic() < deadline:
            after = stack.inspect("leadscore-2")
            if after["RestartCount"] > before["RestartCount"] and after["State"]["Pid"]:
                break
            await asyncio.sleep(0.5)
        assert after["RestartCount"] == before["RestartCount"] + 1, after["State"]
        await stack.wait_worker_ready("leadscore-2", "WORKER_2_PORT")
        back_s = time.monotonic() - killed_at
        # the demo publishes everything and exits 0
        deadline = time.monotonic() + DEMO_EVENTS / DEMO_RATE + 120
        while stack.inspect("demo")["State"]["Status"] != "exited":
            assert time.monotonic() < deadline, stack.logs("demo")
            await asyncio.sleep(1)
        assert stack.inspect("demo")["State"]["ExitCode"] == 0, stack.logs("demo")
        seen, changes, order = await stack.settle(live, timeout_s=180)
        live = None
    finally:
        if live is not None:
            live.close()
    records = await stack.inputs()
    assert len(records) == DEMO_EVENTS
    finals = check_run(PLAN, records, changes, order, stack.root)
    assert seen == len(changes) > seen_at_kill  # (the kill came mid-stream)

    # both workers serve every entity's scores over HTTP: their own, and the other's (forwarded)
    entities = sorted({k[:3] for k in finals}, key=str)
    sample = entities[:: max(1, len(entities) // 40)]
    for account, entity, entity_id in sample:
        query = f"?tenant={urllib.parse.quote(account)}" if account else ""
        for port in ("WORKER_1_PORT", "WORKER_2_PORT"):
            status, body = stack.http(port, f"/scores/{entity}/{entity_id}{query}")
            assert status == 200, (port, entity_id, body)
            for (a, e, i, score), value in finals.items():
                if (a, e, i) == (account, entity, entity_id):
                    assert body["scores"][score]["value"] == value, (port, entity_id, score, body)
    restarts = stack.inspect("leadscore-2")["RestartCount"]
    print(
        f"\nexactly once: {len(records)} records in, {len(changes)} changes of {len(finals)} "
        f"scores out, each seen once by a read_committed reader during the run "
        f"({seen_at_kill} before the kill -9, {len(changes) - seen_at_kill} after); the core's "
        f"replay and the offline scorer agree; workers ready in {ready_s:.0f} s, the killed "
        f"one restarted by its policy ({restarts} restart) and ready again in {back_s:.0f} s"
    )


def test_prometheus_scrapes_both_workers_and_loads_the_alert_rules(stack: Stack) -> None:
    base = f"http://127.0.0.1:{stack.ports['PROMETHEUS_PORT']}/api/v1"

    def api(path: str, **params: str) -> Any:
        url = f"{base}/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our http URL
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    up: list[Any] = []
    rules: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120  # the compose config scrapes and evaluates every 15 s
    while time.monotonic() < deadline:
        try:
            up = api("query", query='sum(up{job="leadscore"})')["result"]
            rules = [r for g in api("rules")["groups"] for r in g["rules"]]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if up and float(up[0]["value"][1]) == 2 and all(r.get("lastEvaluation", "") > "2000"
                                                          for r in rules) and rules:  # fmt: skip
            break
        time.sleep(1)
    assert up and float(up[0]["value"][1]) == 2, (up, stack.logs("prometheus"))
    targets = {t["labels"]["instance"] for t in api("targets")["activeTargets"]
               if t["labels"]["job"] == "leadscore" and t["health"] == "up"}  # fmt: skip
    assert targets == {"leadscore-1:6066", "leadscore-2:6066"}
    assert {r["name"] for r in rules} == ALERTS
    for rule in rules:
        assert (rule["health"], rule.get("lastError", "")) == ("ok", ""), rule


def test_containers_run_as_non_root_on_a_read_only_root(stack: Stack) -> None:
    containers = stack.containers()
    for service in ("leadscore-1", "leadscore-2", "demo"):
        config = stack.inspect(service)
        assert config["Config"]["User"] == "10001:10001", service
        assert config["HostConfig"]["ReadonlyRootfs"] is True, service
        assert config["HostConfig"]["CapAdd"] in (None, []), service
    for service in ("leadscore-1", "leadscore-2"):
        name = containers[service]
        assert podman("exec", name, "id", "-u").strip() == "10001"
        # no capability at all in the worker's process
        status = podman("exec", name, "cat", "/proc/1/status")
        assert "CapEff:\t0000000000000000" in status, status
        denied = subprocess.run(["podman", "exec", name, "touch", "/app/written"],
                                env=podman_env(), capture_output=True, text=True, timeout=60,
                                check=False)  # fmt: skip
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr
        # the data volume and /tmp are the only places it writes
        podman("exec", name, "touch", "/var/lib/leadscore/probe", "/tmp/probe")
    for service in ("kafka", "prometheus"):
        uid = podman("exec", containers[service], "id", "-u").strip()
        assert uid not in ("", "0"), (service, uid)


def test_the_healthchecks_pass_when_run(stack: Stack) -> None:
    """podman 4.3 schedules healthchecks with systemd timers only, so here they run when asked:
    the broker's compose healthcheck and the image's HEALTHCHECK of each worker pass."""
    containers = stack.containers()
    for service in ("kafka", "leadscore-1", "leadscore-2"):
        done = subprocess.run(["podman", "healthcheck", "run", containers[service]],
                              env=podman_env(), capture_output=True, text=True, timeout=60,
                              check=False)  # fmt: skip
        assert done.returncode == 0, (service, done.stdout, done.stderr)


def test_a_stop_ends_each_worker_cleanly_within_its_grace_period(stack: Stack) -> None:
    started = time.monotonic()
    stack.compose("stop", "leadscore-1", "leadscore-2", timeout=GRACE_S + 60)
    took = time.monotonic() - started
    for service in ("leadscore-1", "leadscore-2"):
        state = stack.inspect(service)["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 0), stack.logs(service)
        assert "committing and stopping" in stack.logs(service, lines=200), service
    assert took < GRACE_S, f"the stop took {took:.0f} s, the grace period is {GRACE_S} s"
    print(f"\nstop: both workers exited 0 in {took:.1f} s (grace {GRACE_S} s)")
