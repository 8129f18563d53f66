"""Exactly once (docs/operations.md) under network faults: Toxiproxy between the worker and every
broker of the cluster.

Toxiproxy (built from the Go module proxy by ``deploy/toxiproxy/toxiproxy.sh build``) is started
by this test, with one proxy in front of each node's PROXIED listener (``kafka.sh proxy-map``).
The worker bootstraps through the proxies, and the brokers advertise the proxies on that
listener, so every connection of the worker crosses them; the test's own producer, checks and
concurrent ``read_committed`` reader use the direct listener. While traffic flows:

1. **latency with jitter** on every link, both ways;
2. a **black hole** (data dropped, connections left open) longer than the transaction timeout;
3. **connections reset** again and again while the worker commits every 100 ms;
4. a **slow link only to the transaction coordinator** of the worker.

Then the same verdicts as every fault run (:func:`check_run`), with fenced exits restarted as a
supervisor would. ``NETWORK_EVENTS`` scales the traffic; ``make test-network`` runs this alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from streams.commands.traffic import TrafficShape, generate
from tests.integration.conftest import coordinator_of, kafka_sh
from tests.integration.service import PLAN, Service, free_port
from tests.integration.verify import LiveReader, check_run

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]
EVENTS = int(os.environ.get("NETWORK_EVENTS", "8000"))
TXN_TIMEOUT_S = 10.0  # the worker's default transaction timeout


@dataclass
class Toxiproxy:
    """A running toxiproxy-server and its HTTP API (https://github.com/Shopify/toxiproxy)."""

    proc: subprocess.Popen[bytes]
    port: int  # of the API, on 127.0.0.1
    proxies: dict[int, str]  # node id -> proxy name

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (http only)
            text, kind = response.read(), response.headers.get("Content-Type", "")
        return json.loads(text) if text and "json" in kind else text

    def add(self, nodes: list[int], toxic: str, kind: str, **attributes: int) -> None:
        """The toxic on the links to ``nodes``, both ways."""
        for node in nodes:
            for stream in ("upstream", "downstream"):
                self.call("POST", f"/proxies/{self.proxies[node]}/toxics", {
                    "name": f"{toxic}-{stream}", "type": kind, "stream": stream,
                    "toxicity": 1.0, "attributes": attributes,
                })  # fmt: skip

    def bytes_from_clients(self) -> dict[int, int]:
        """Per node: bytes its proxy received from clients (``-proxy-metrics``)."""
        out = dict.fromkeys(self.proxies, 0)
        node_of = {name: node for node, name in self.proxies.items()}
        for line in bytes(self.call("GET", "/metrics")).decode().splitlines():
            upstream = 'direction="upstream"' in line  # from the client towards the broker
            if line.startswith("toxiproxy_proxy_received_bytes_total{") and upstream:
                name = line.split('proxy="', 1)[1].split('"', 1)[0]
                out[node_of[name]] += int(float(line.rsplit(" ", 1)[1]))
        return out

    def remove(self, nodes: list[int], toxic: str) -> None:
        for node in nodes:
            for stream in ("upstream", "downstream"):
                self.call("DELETE", f"/proxies/{self.proxies[node]}/toxics/{toxic}-{stream}")


@pytest.fixture(scope="module")
def toxiproxy(cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toxiproxy]:
    built = subprocess.run(["bash", str(REPO / "deploy" / "toxiproxy" / "toxiproxy.sh"), "build"],
                           capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert built.returncode == 0, built.stderr
    port = free_port()
    log = tmp_path_factory.mktemp("toxiproxy") / "toxiproxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([built.stdout.strip(), "-host", "127.0.0.1", "-port", str(port),
                                 "-proxy-metrics"],
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    toxi = Toxiproxy(proc, port, {})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                toxi.call("GET", "/version")
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        for line in kafka_sh("proxy-map").splitlines():  # "<node> <listen> <upstream>"
            node, listen, upstream = line.split()
            name = f"node-{node}"
            toxi.call("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream,
                                           "enabled": True})  # fmt: skip
            toxi.proxies[int(node)] = name
        yield toxi
    finally:
        proc.terminate()
        proc.wait(10)


async def test_latency_black_hole_resets_and_a_slow_coordinator_lose_and_double_nothing(
    cluster: str, toxiproxy: Toxiproxy, unique: str, tmp_path: Path
) -> None:
    rng = random.Random(unique)
    now = int(time.time() * 1000)
    shape = replace(TrafficShape(), contacts=max(100, EVENTS // 10), deals=max(20, EVENTS // 50),
                    step_ms=50, start_ms=now - EVENTS * 50)  # fmt: skip
    records = list(generate(EVENTS, seed=rng.randrange(1000), shape=shape))
    service = Service(cluster, unique, tmp_path, partitions=3,
                      worker_bootstrap=kafka_sh("bootstrap", "proxied").strip(),
                      extra={"LEADSCORE_REPLICATION_FACTOR": "3",
                             "LEADSCORE_INSTANCE_ID": "net"})  # fmt: skip
    worker = service.worker()
    nodes = sorted(toxiproxy.proxies)
    done: list[str] = []
    coordinators: list[int] = []
    live: LiveReader | None = None
    share = -(-len(records) // 5)

    async def during(k: int, fault: Any) -> None:
        """Round k of the traffic arrives while ``fault`` runs."""
        sending = asyncio.create_task(service.produce(records[k * share : (k + 1) * share]))
        await asyncio.sleep(0.3)
        await fault()
        await sending
        await service.supervise()

    async def latency() -> None:
        toxiproxy.add(nodes, "lag", "latency", latency=150, jitter=100)
        await asyncio.sleep(10)
        toxiproxy.remove(nodes, "lag")
        done.append("latency 150 ms ± 100 ms, 10 s")

    async def black_hole() -> None:
        toxiproxy.add(nodes, "hole", "timeout", timeout=0)  # 0: drop everything, never close
        await asyncio.sleep(TXN_TIMEOUT_S + 5)
        toxiproxy.remove(nodes, "hole")
        done.append(f"black hole {TXN_TIMEOUT_S + 5:.0f} s")

    async def resets() -> None:
        for _ in range(6):
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            toxiproxy.add(nodes, "reset", "reset_peer", timeout=0)  # TCP RST on the next data
            await asyncio.sleep(0.3)
            toxiproxy.remove(nodes, "reset")
        done.append("6 bursts of connection resets")

    async def slow_coordinator() -> None:
        coordinator = await coordinator_of(cluster, transactional_id=f"{service.app_id}-net")
        assert coordinator in toxiproxy.proxies, f"no transaction coordinator found: {coordinator}"
        toxiproxy.add([coordinator], "slow", "latency", latency=1500, jitter=500)
        await asyncio.sleep(12)
        toxiproxy.remove([coordinator], "slow")
        done.append(f"latency 1.5 s ± 0.5 s to the coordinator (node {coordinator}) only, 12 s")
        coordinators.append(coordinator)

    try:
        worker.start()
        await worker.wait_ready(timeout_s=120)
        live = LiveReader(cluster, service.changed).start()  # direct: never behind a toxic
        for k, fault in enumerate((latency, black_hole, resets, slow_coordinator)):
            await during(k, fault)
        await service.produce(records[4 * share :])
        seen_live, published, order = await service.settle(live, timeout_s=240)
    finally:
        service.shut(live)
    through = toxiproxy.bytes_from_clients()  # the worker's traffic did cross the proxies
    assert through[coordinators[0]] > 0, f"nothing reached the coordinator by its proxy: {through}"
    check_run(PLAN, records, published, order, tmp_path)
    assert len(order) >= EVENTS
    print(
        f"network faults: {'; '.join(done)}. {EVENTS} events, {len(published)} changes, 0 lost, "
        f"0 duplicated; a concurrent read_committed reader saw {seen_live}, none aborted; worker "
        f"restarts after exit 70: {service.restarts}; bytes from the worker per proxied node: "
        f"{through}"
    )
