"""The alert rules (``deploy/prometheus/alerts.yml``): valid for Prometheus, each alert's unit test
passes (``promtool test rules``), every metric they read is one the worker exports, and every
alert has a runbook in ``docs/operations.md``."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.prometheus_tools import exported_metrics, metrics_in, prometheus_tool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    return prometheus_tool("promtool")


def alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_checks_the_rules(promtool: str) -> None:
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout


def test_every_alert_passes_its_unit_test(promtool: str) -> None:
    done = subprocess.run([promtool, "test", "rules", TESTS.name], cwd=TESTS.parent,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", TESTS.read_text()))
    assert tested == {rule["alert"] for rule in alerts()}


def test_the_rules_read_only_metrics_the_worker_exports() -> None:
    exported = exported_metrics()
    for rule in alerts():
        names = metrics_in(str(rule["expr"]))
        assert names, rule["alert"]
        assert names <= exported, (rule["alert"], names - exported)


def test_every_alert_has_a_runbook() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    for rule in alerts():
        assert f"\n### {rule['alert']}\n" in operations, rule["alert"]
