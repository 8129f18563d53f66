"""``make bench``'s harness still works: ``bench/run.py --smoke`` runs every default contender
through every phase (throughput, latency at its own load and at the common rate, our worker's
profile and restart) with tiny counts against the test broker, and its results are checked;
``ours-wave2`` (our worker on the second-wave plan) must have rolled contacts up into deals and
accounts.
No timing is judged here, only that each contender produced results and each phase ran.

Run by ``make bench-smoke``, which ``make test`` runs after the suite, against the broker of
``LEADSCORE_TEST_BOOTSTRAP``. The file name does not start with ``test_``, so a bare ``pytest``
(``make check``, which has no broker) does not collect it; given by name, pytest runs it.
The first run on a fresh clone also builds the Quix Streams and faust-baseline venvs
(``bench/quix_venv.sh``, ``bench/faust_venv.sh``) and exports the base commit's tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from tests.bench import bench_module
from tests.integration.conftest import _reachable

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("LEADSCORE_TEST_BOOTSTRAP", "127.0.0.1:9092")
PIPES = ("pipe-aiokafka", "pipe-confluent", "pipe-confluent-txn")


@pytest.fixture(scope="module")
def run_module() -> Any:
    return bench_module("run")


def test_every_contender_runs_every_phase(tmp_path: Path, run_module: Any) -> None:
    if not _reachable(BOOTSTRAP):
        pytest.fail(f"no Kafka broker at {BOOTSTRAP}: make bench-smoke starts one", pytrace=False)
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--bootstrap", BOOTSTRAP,
         "--out", str(tmp_path), "--work", str(tmp_path / "work"), "--keep-logs"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    [json_path] = tmp_path.glob("smoke-*.json")
    result = json.loads(json_path.read_text())
    assert json_path.with_suffix(".png").stat().st_size > 0
    table = json_path.with_suffix(".md").read_text()

    smoke = run_module.SMOKE
    expected = run_module.arguments(["--smoke"]).contenders.split(",")
    assert len(expected) == 9 and "ours" in expected and "quix-eos" in expected
    assert "ours-wave2" in expected
    assert list(result["contenders"]) == expected
    for name, figures in result["contenders"].items():
        tput = figures["throughput"]
        assert tput["events"] == smoke["events"], name
        assert tput["input_lag_at_end"] == 0, name
        assert tput["events_per_s"] > 0 and tput["peak_rss_mib"] > 0, name
        if name in PIPES:  # one output per input
            assert tput["outputs"] == smoke["events"], name
        elif name == "ours-wave2":  # besides, the roll-ups' changes: checked below
            assert smoke["events"] // 3 < tput["outputs"], (name, tput)
        else:  # score changes: about two in three inputs change a score
            assert smoke["events"] // 3 < tput["outputs"] < smoke["events"], (name, tput)
        for phase in ("latency", "latency_common"):
            lat = figures[phase]
            assert lat["samples"] > 0 and lat["input_lag_at_end"] == 0, (name, phase, lat)
            assert 0 <= lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"], (name, phase, lat)
        assert figures["latency_common"]["target_rate_per_s"] == smoke["latency_rate"], name
        own = figures["latency"]["target_rate_per_s"]
        assert 0 < own <= smoke["latency_max_rate"], name
        assert f"| {name} | {tput['events_per_s']:,} |" in table
    # the workers say which core they ran: the base commit's pure (the smoke builds nothing)
    assert result["contenders"]["leadscore@3f54bb3"]["throughput"]["core"] == "pure"
    assert result["contenders"]["ours"]["throughput"]["core"] in ("pure", "compiled")
    # the second plan on the same build and inputs: its roll-ups scored deals and accounts too
    ours, wave2 = (result["contenders"][n]["throughput"] for n in ("ours", "ours-wave2"))
    assert wave2["core"] == ours["core"]
    assert result["commits"]["ours-wave2"] == result["commits"]["ours"]
    assert result["plans"]["ours-wave2"].startswith("plans/reference-second-wave.yaml (version ")
    assert "ours-wave2: plans/reference-second-wave.yaml" in table
    assert set(ours["outputs_by_entity"]) == {"contact", "deal"}  # no account scores
    assert wave2["outputs_by_entity"]["account"] > 0
    assert wave2["outputs_by_entity"]["deal"] > ours["outputs_by_entity"]["deal"]
    assert wave2["outputs"] > ours["outputs"]
    assert "- ours-wave2 score changes by entity (throughput): account " in table
    assert result["common_rate"] == {
        "events_per_s": smoke["latency_rate"],
        "from": "--latency-rate",
    }
    assert f"Common latency rate: {smoke['latency_rate']:,} events/s" in table

    found = result["profile_ours"]["layers"]
    assert found["samples"] > 0  # py-spy sampled the worker
    layers = {name: share for name, share in found.items() if not name.endswith("samples")}
    assert "scoring core" in layers and abs(sum(layers.values()) - 1) < 0.01
    assert (tmp_path / result["profile_ours"]["raw_profile"]).stat().st_size > 0
    restart = result["restart"]
    assert restart["entities"] == smoke["restart_entities"]
    assert restart["rebuild_checked"] == restart["warm_checked"] == 20  # states read back equal
    assert restart["rebuild_ready_s"] > 0 and restart["warm_ready_s"] > 0

    assert "throughput ours/quix-alo" in result["ratios"]
    assert "throughput ours/ours-wave2" in result["ratios"]
    assert "p99 at the common rate ours/pipe-confluent-txn" in result["ratios"]
    assert set(result["latency_goals"]) == {"p99_ms_at_common_rate", "p99_own_load_over_pipe_txn"}
    assert set(result["prepare_s"]) == set(expected)
    assert result["cpu_s"]["harness"] > 0 and result["cpu_s"]["children"] > 0
    # every topic the run made is gone again
    topics = AdminClient({"bootstrap.servers": BOOTSTRAP}).list_topics(timeout=30).topics
    run_id = result["settings"]["run"]
    assert not [name for name in topics if run_id in name]
