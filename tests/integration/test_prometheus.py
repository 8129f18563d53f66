"""A real Prometheus (Debian's package, started by ``deploy/prometheus/prometheus.sh`` as
``make observe`` starts it) scrapes two real workers under demo traffic, with the alert rules
loaded. Every query of every dashboard panel must return data, every alert rule must evaluate
without error, and ``promtool check metrics`` must accept each worker's ``/metrics``.

The traffic is ``leadscore demo`` (the command ``make run`` uses) against the reference plan, plus
a few undecodable records so the dead-letter panel has a series. Bounded: 3,000 demo records at
300 a second, and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.wire.codec import Source
from tests.integration.service import REPO, Service, free_port
from tests.prometheus_tools import prometheus_tool
from tools import dashboard

SCRIPT = REPO / "deploy" / "prometheus" / "prometheus.sh"
ALERTS = {
    rule["alert"]
    for group in yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text())[
        "groups"
    ]
    for rule in group["rules"]
}
DEADLINE_S = 120


@pytest.fixture
def service(bootstrap: str, tmp_path: Path) -> Iterator[Service]:
    svc = Service(
        bootstrap, uuid.uuid4().hex[:12], tmp_path, plan=REPO / "plans" / "reference.yaml"
    )
    try:
        yield svc
    finally:
        svc.stop_all()


@pytest.fixture
def prometheus(service: Service, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The URL of a Prometheus scraping the service's two (not yet started) workers every second."""
    workers = [service.worker("w1"), service.worker("w2")]
    env = {
        **os.environ,
        "PROMETHEUS_PORT": str(free_port()),
        "PROMETHEUS_TARGETS": ",".join(f"127.0.0.1:{w.port}" for w in workers),
        "PROMETHEUS_SCRAPE_INTERVAL": "1s",
        "LEADSCORE_VAR_DIR": str(tmp_path / "var"),
    }
    prometheus_tool("prometheus")  # fetched once; a one-line failure if it cannot be
    up = subprocess.run([str(SCRIPT), "up"], env=env, capture_output=True, text=True,
                        timeout=120, check=False)  # fmt: skip
    assert up.returncode == 0, up.stderr
    try:
        yield f"http://127.0.0.1:{env['PROMETHEUS_PORT']}", env
    finally:
        subprocess.run([str(SCRIPT), "down"], env=env, timeout=60, check=False)


def api(base: str, path: str, **params: str) -> Any:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our http URL
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def query(base: str, expr: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = api(base, "query", query=expr)["result"]
    return result


async def test_every_panel_and_alert_against_a_real_prometheus(
    service: Service, prometheus: tuple[str, dict[str, str]]
) -> None:
    base, _ = prometheus
    for worker in service.workers:
        worker.start()
    for worker in service.workers:
        await worker.wait_ready()  # asks /readyz, which sets leadscore_ready
    demo_env = {**service.env("demo", 1), "PATH": os.environ.get("PATH", "")}
    demo_log = service.root / "demo.log"
    with demo_log.open("wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "demo", "--events", "3000", "--rate", "300",
             "--contacts", "200", "--deals", "20"],
            cwd=REPO, env=demo_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    await service.produce([(Source.PAGE_VISITS, b"\x00not avro at all")] * 3)

    # 1. every panel's every query returns at least one series
    queries = [
        (panel.title, dashboard.resolve(expr, job="leadscore", rate_interval="30s"))
        for panel in dashboard.panels()
        for expr, _ in panel.targets
    ]
    empty = queries
    deadline = time.monotonic() + DEADLINE_S
    while empty and time.monotonic() < deadline:
        for worker in service.workers:
            worker.assert_alive()
        assert demo.poll() in (None, 0), demo_log.read_text()
        empty = [(title, expr) for title, expr in empty if not query(base, expr)]
        await asyncio.sleep(1)
    assert demo.wait(timeout=60) == 0, demo_log.read_text()
    assert not empty, f"panels without data after {DEADLINE_S}s: {empty}"

    # the numbers behind them are real: both workers scraped, events flowed, dead letters counted
    assert float(query(base, 'sum(up{job="leadscore"})')[0]["value"][1]) == 2
    events = query(base, 'sum(leadscore_events_total{job="leadscore"})')
    assert float(events[0]["value"][1]) > 0
    dead = query(base, 'sum(leadscore_dead_letters_total{job="leadscore"})')
    assert float(dead[0]["value"][1]) == 3

    # 2. every alert rule has been evaluated, without error
    rules: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rules = [r for g in api(base, "rules")["groups"] for r in g["rules"]]
        if rules and all(r["lastEvaluation"] > "2000" for r in rules):
            break
        await asyncio.sleep(1)
    assert {r["name"] for r in rules} == ALERTS
    for rule in rules:
        assert (rule["health"], rule.get("lastError", "")) == ("ok", ""), rule
    firing = {r["name"] for r in rules if r["state"] == "firing"}
    assert not firing, firing  # a healthy pair of workers under light load alerts nothing

    # 3. promtool accepts what the workers expose
    promtool = prometheus_tool("promtool")
    for worker in service.workers:
        exposition = worker.get_text("/metrics")
        checked = subprocess.run([promtool, "check", "metrics"], input=exposition,
                                 capture_output=True, text=True, timeout=30)  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
