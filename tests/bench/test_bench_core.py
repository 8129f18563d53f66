"""``bench/core.py`` (``make bench-core``) still runs, with its predicted-score variant: a
tiny run of the pure build writes its results files. No timing is judged here, only that the
harness works and the variant scores the predicted scores it adds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.bench import bench_module

ROOT = Path(__file__).resolve().parents[2]


def tiny_run(tmp_path: Path, variants: str) -> dict[str, Any]:
    """A run of 300 events, one round, no baseline: its results."""
    done = subprocess.run(
        [sys.executable, "bench/core.py", "--events", "300", "--rounds", "1", "--base", "",
         "--variants", variants, "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    [json_path] = tmp_path.glob("core-*.json")
    result: dict[str, Any] = json.loads(json_path.read_text())
    return result


def test_a_tiny_run_writes_the_plain_and_predicted_figures(tmp_path: Path) -> None:
    result = tiny_run(tmp_path, "pure,pure-predicted")
    [md_path] = tmp_path.glob("core-*.md")
    plain, predicted = (result["variants"][v]["figures"] for v in ("pure", "pure-predicted"))
    for figures in (plain, predicted):
        assert figures["memory_events_per_s"] > 0
        assert figures["entities"] == plain["entities"]
        # the collector's share of the in-memory pass, and what it tracks after it
        assert 0 <= figures["memory_gc_share"] < 1
        assert figures["tracked_objects"] > figures["entities"]
    # the same events; the predicted scores add their own changes (a first value per entity)
    assert predicted["changes"] > plain["changes"]
    assert result["benchmark"] == "core"
    assert "name: conversion" in result["workload"]["predicted_scores"]
    assert "| figure | pure | pure-predicted |" in md_path.read_text()


def test_the_second_wave_variant_times_decay_evaluate_alone(tmp_path: Path) -> None:
    result = tiny_run(tmp_path, "pure,pure-wave2")
    plain, wave2 = (result["variants"][v]["figures"] for v in ("pure", "pure-wave2"))
    # the reference plan has no decay: no figure (a dash in the table); the second plan's
    # half-life rules are timed on ledgers of 5 and 200 contributions
    assert not any(name.startswith("decay_evaluate_") for name in plain)
    small, large = wave2["decay_evaluate_us_per_call_5"], wave2["decay_evaluate_us_per_call_200"]
    assert 0 < small < large
    assert wave2["decay_evaluate_ns_per_contribution"] == pytest.approx(large * 1e3 / 200, rel=0.01)
    # and the same calls answered from the ledger's memo (``decay_memo``)
    assert wave2["decay_evaluate_memo_us_per_call_5"] > 0
    assert wave2["decay_evaluate_memo_us_per_call_200"] > 0
    [md_path] = tmp_path.glob("core-*.md")
    assert "| decay_evaluate_ns_per_contribution | - | " in md_path.read_text()


def test_the_shadow_variant_scores_a_second_plan_beside_the_first(tmp_path: Path) -> None:
    result = tiny_run(tmp_path, "pure,pure-shadow")
    plain, shadow = (result["variants"][v]["figures"] for v in ("pure", "pure-shadow"))
    assert shadow["entities"] == plain["entities"]  # the first plan's states, as without it
    # the changes of both plans: the shadow's doubled points move about as often (caps and
    # thresholds are reached at other events, so not exactly as often)
    assert plain["changes"] < shadow["changes"] <= 2 * plain["changes"]


def test_the_profile_charges_compiled_frames_to_the_core_and_leaves_waiting_out(
    tmp_path: Path,
) -> None:
    """``bench/profile.py`` on a ``py-spy --native`` profile: the compiled core's C functions
    count as the core (its state codec apart), a thread blocked in libc counts as waiting."""
    profile = bench_module("profile")
    shell = "run (streams/engine/loop.py:10);ScoreStage._core (streams/engine/score.py:92)"
    raw = tmp_path / "native.txt"
    raw.write_text(
        f"{shell};CPyPy_scorer___apply (native__mypyc.so);CPyDef_emit___emit (native__mypyc.so) 6\n"
        f"{shell};CPyDef_serialize___dumps (native__mypyc.so);msgpack_pack (msgspec.so) 2\n"
        f"{shell};PyDict_GetItem (libpython3.11.so.1.0) 2\n"
        "wait (threading.py:327);0x7fa833ea3f16 (libc.so.6) 5\n"
    )
    layers = profile.summarise(raw)
    assert layers == {
        "scoring core": 0.6,
        "state encode/decode (msgpack)": 0.2,
        "loop and client calls": 0.2,
        "samples": 10,
        "waiting_samples": 5,
    }
