"""What the tests of the alert rules, the dashboard and the Prometheus end-to-end run share: the
Prometheus tools (from the PATH or Debian's package, see ``deploy/prometheus/promtool.sh``) and
the names of the metrics a worker exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from streams.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]
#: A metric name in PromQL: followed by a selector, a range or an operator, never by ``(``.
METRIC = re.compile(r"\b((?:leadscore|process)_[a-z_]+|up)\b(?!\s*\()")


def prometheus_tool(name: str = "promtool") -> str:
    """The path of ``promtool`` or ``prometheus``; the test fails with the one-line reason."""
    found = subprocess.run([str(ROOT / "deploy" / "prometheus" / "promtool.sh"), name],
                           capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    if found.returncode != 0:
        pytest.fail(found.stderr.strip(), pytrace=False)
    return found.stdout.strip()


def exported_metrics() -> set[str]:
    """Every series name a worker's ``/metrics`` can show (``up`` is Prometheus's own)."""
    exported = {"up"}
    for family in Metrics.create().registry.collect():  # (labelled ones have no samples yet)
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        exported.update(family.name + s for s in suffixes.get(family.type, ("",)))
        exported.update(sample.name for sample in family.samples)
    return exported


def metrics_in(expr: str) -> set[str]:
    return set(METRIC.findall(expr))
