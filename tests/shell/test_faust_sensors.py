"""``LEADSCORE_FAUST_SENSORS``: Faust's Prometheus sensors join our registry only when asked for.

Building the app opens no connection, so this runs without a broker.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from faust.sensors.prometheus import PrometheusMonitor

from streams.app import create_app
from streams.scoring import load_plan
from streams.settings import Settings

PLAN = Path(__file__).resolve().parents[2] / "plans" / "reference.yaml"


@pytest.mark.parametrize("enabled", [False, True])
def test_faust_sensors_follow_the_setting(enabled: bool, tmp_path: Path) -> None:
    plan = load_plan(PLAN.read_text(), source=str(PLAN))
    app = create_app(Settings(faust_sensors=enabled, data_dir=tmp_path), plan)
    assert isinstance(app.monitor, PrometheusMonitor) is enabled
