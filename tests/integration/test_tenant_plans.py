"""Tenant plans hot-reloaded through the real service (docs/plans.md, Tenant plans).

Two workers share four entity-events partitions. ``leadscore plan publish`` sends tenant acme an
invalid plan (rejected with its errors: acme keeps the default plan), then a valid one; a worker
is killed with ``kill -9`` while the next events are scored; ``plan remove`` returns acme to the
default. Every change is published exactly once; every acme change made before a partition's
copy of a plan record carries the old version and every one after it the new one (the switch
is an offset of each partition, the same for every worker, after aborted transactions and after
the crash); the other
tenant never moves off the default; HTTP, metrics and the plan-status topic tell the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from streams.wire.codec import Source
from streams.wire.records import ItemRecord, PlanRecord, decode
from tests.integration.service import Service, free_port
from tests.integration.verify import exactly_once, metric_sum

DEFAULT = """
version: default-v1
scores:
  - name: engagement
    entity: contact
    rules:
      - {id: visit, on: page_visit, points: 10}
"""
TENANT = DEFAULT.replace("default-v1", "acme-v2").replace("points: 10", "points: 25")
BROKEN = TENANT.replace("points: 25", "points: lots")

ACME = [f"a{i}" for i in range(12)]
GLOBEX = [f"g{i}" for i in range(4)]


def visits(batch: str, t: int) -> list[tuple[Source, dict[str, Any]]]:
    return [
        (
            Source.PAGE_VISITS,
            {
                "event_id": f"{batch}-{contact}",
                "tenant_id": tenant,
                "occurred_at": t + n,
                "contact_id": contact,
                "deal_id": None,
                "url": "/pricing",
            },
        )
        for tenant, contacts in (("acme", ACME), ("globex", GLOBEX))
        for n, contact in enumerate(contacts)
    ]


def leadscore_plan(service: Service, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    """``leadscore plan ...`` as an operator runs it: exit code, printed status, stderr."""
    env = {**os.environ, **service.env("cli", free_port())}
    done = subprocess.run([sys.executable, "-m", "streams.cli", "plan", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    status = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, status, done.stderr


def replay_apply(service: Service, plan: Path, current: Path, from_ms: int, out: Path) -> None:
    """``leadscore replay --apply`` for acme, as an operator runs it."""
    env = {**os.environ, **service.env("cli", free_port())}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", "--plan", str(plan), "--current",
         str(current), "--from-time", str(from_ms), "--tenant", "acme", "--apply", "--quiet",
         "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


async def wait_changes(service: Service, count: int, timeout_s: float = 90) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    changes: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        changes = await service.changes()
        if len(changes) >= count:
            return changes
        time.sleep(0.3)
    raise AssertionError(f"{len(changes)} changes after {timeout_s} s, expected {count}")


async def test_a_tenant_plan_switches_every_partition_at_its_copy(
    bootstrap: str, tmp_path: Path
) -> None:
    default, tenant, broken = (tmp_path / n for n in ("default.yaml", "acme.yaml", "bad.yaml"))
    default.write_text(DEFAULT)
    tenant.write_text(TENANT)
    broken.write_text(BROKEN)
    # every 4th commit of each worker aborts (a fault drill): plan switches are undone and
    # redone too
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path, plan=default, partitions=4,
                      extra={"LEADSCORE_FAULT_ABORT_EVERY": "4"})  # fmt: skip
    now = int(time.time() * 1000)
    everyone = len(ACME) + len(GLOBEX)
    w1, w2 = service.worker("w1").start(), service.worker("w2").start()
    try:
        await w1.wait_ready()
        await w2.wait_ready()
        await service.produce(visits("b1", now))
        await wait_changes(service, everyone)
        # an invalid plan is refused by the CLI before anything is sent
        # --account: the deprecated old name of --tenant, still taken
        rc, _, err = leadscore_plan(service, "publish", "--account", "acme", str(broken))
        assert rc == 2 and "points" in err and "nothing published" in err, err
        # ... and by the worker when it comes on the topic some other way
        await service.produce_raw(service.plans, b"acme", BROKEN.encode())
        rc, status, err = leadscore_plan(service, "publish", "--tenant", "acme", str(tenant))
        assert rc == 0, err
        assert status is not None and status["status"] == "accepted", status
        assert status["tenant"] == "acme" and "account" not in status
        assert status["version"] == "acme-v2" and status["source"]["offset"] == 1
        await service.produce(visits("b2", now + 1000))
        time.sleep(0.5)
        w1.kill()  # kill -9 while the second batch is scored, maybe mid-transaction
        w3 = service.worker("w3").start()
        await w3.wait_ready()
        await wait_changes(service, 2 * everyone)
        plans_view = w3.get("/plans")
        scores = w3.get("/scores/contact/a0?tenant=acme")
        gauges = sum(
            metric_sum(w.get_text("/metrics"), "leadscore_tenant_plan", tenant="acme",
                       version="acme-v2") for w in (w2, w3)
        )  # fmt: skip
        rc, status, err = leadscore_plan(service, "remove", "--tenant", "acme")
        assert rc == 0 and status is not None and status["status"] == "removed", (status, err)
        await service.produce(visits("b3", now + 2000))
        changes = await wait_changes(service, 3 * everyone)
        log = await service.read_all(service.entity_events)
        statuses = [json.loads(r.value) for r in await service.read_all(service.plan_status)]
    finally:
        service.stop_all()

    grouped = exactly_once(changes)
    assert len(changes) == 3 * everyone
    for (tenant, _, contact, _), rows in grouped.items():
        got = [(c["source_event_id"], c["delta"], c["plan_version"]) for c in rows]
        if tenant == "acme":  # default, then acme's own plan, then the default again
            assert got == [(f"b1-{contact}", 10, "default-v1"), (f"b2-{contact}", 25, "acme-v2"),
                           (f"b3-{contact}", 10, "default-v1")], got  # fmt: skip
        else:
            assert got == [(f"b{n}-{contact}", 10, "default-v1") for n in (1, 2, 3)], got

    # the switch point is an offset of each partition: one copy per partition per plan record
    switches: dict[int, list[tuple[int, str | None]]] = defaultdict(list)
    offset_of: dict[str, tuple[int, int]] = {}
    for rec in log:
        item = decode(rec.value)
        if isinstance(item, PlanRecord):
            switches[rec.partition].append((rec.offset, item.version))
        elif isinstance(item, ItemRecord):
            offset_of.setdefault(item.record["event_id"], (rec.partition, rec.offset))
    assert {p: [v for _, v in s] for p, s in switches.items()} == {
        p: ["acme-v2", None] for p in range(4)
    }
    for change in changes:
        if change["tenant_id"] != "acme":
            continue
        partition, offset = offset_of[change["source_event_id"]]
        (on, _), (off, _) = switches[partition]
        expected = "acme-v2" if on < offset < off else "default-v1"
        assert change["plan_version"] == expected, (change, switches[partition], offset)

    assert [(s["status"], s["source"]["offset"]) for s in statuses] == [
        ("rejected", 0), ("accepted", 1), ("removed", 2),
    ]  # fmt: skip
    assert any("points" in e for e in statuses[0]["errors"]), statuses[0]
    assert statuses[1]["version"] == "acme-v2" and statuses[1]["errors"] == []

    status_code, view = plans_view
    assert status_code == 200 and view["default"]["version"] == "default-v1"
    assert [v["version"] for v in view["tenants"]["acme"]] == ["acme-v2"]
    assert "globex" not in view["tenants"]
    assert scores[0] == 200 and scores[1]["plan_version"] == "acme-v2"
    assert scores[1]["scores"]["engagement"]["value"] == 35
    assert gauges == 4  # every partition, on the two live workers together


@pytest.mark.parametrize("kill", [True, False], ids=["kill-9", "no-fault"])
async def test_replay_apply_recomputes_once_across_a_kill_during_the_cut_over(
    bootstrap: str, tmp_path: Path, kill: bool
) -> None:
    """``replay --apply``: the dry-run report, then the tenant's new plan with a recompute from
    ``--from-time``. Each partition rebuilds acme's contacts from its retained items at its copy
    of the plan record and publishes one ``recompute`` change per contact; the worker is killed
    with ``kill -9`` during the cut-over while new events arrive. Nothing is counted twice: each
    contact ends at the new plan's value of all its visits, and globex is untouched."""
    default, tenant = tmp_path / "default.yaml", tmp_path / "acme.yaml"
    default.write_text(DEFAULT)
    tenant.write_text(TENANT)
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path, plan=default, partitions=3)
    now = int(time.time() * 1000)
    everyone = len(ACME) + len(GLOBEX)
    worker = service.worker("w1").start()
    try:
        await worker.wait_ready()
        await service.produce(visits("b1", now) + visits("b2", now + 10))
        await wait_changes(service, 2 * everyone)
        replay_apply(service, tenant, default, now - 60_000, tmp_path / "replay")
        await service.produce(visits("b3", now + 20))  # arriving during the cut-over
        if kill:
            worker.kill()
            worker = service.worker("w2").start()
            await worker.wait_ready()
        changes = await wait_changes(service, 3 * everyone + len(ACME))
        time.sleep(1.0)  # anything more would be a double count: read again
        changes = await service.changes()
        statuses = [json.loads(r.value) for r in await service.read_all(service.plan_status)]
    finally:
        service.stop_all()

    report = json.loads((tmp_path / "replay" / "replay.json").read_text())
    assert report["dry_run"] is False and report["scores_changed"] == len(ACME)
    assert {e["delta"] for e in report["entities"]} == {30}  # 2 visits: 20 -> 50
    assert [(s["status"], s["version"], s["recompute_from_ms"]) for s in statuses] == [
        ("accepted", "acme-v2", now - 60_000)
    ]
    grouped = exactly_once(changes)
    for (tenant, *_), rows in grouped.items():
        causes = [c["cause"] for c in rows]
        if tenant == "acme":
            assert causes.count("recompute") == 1, rows
            (redo,) = [c for c in rows if c["cause"] == "recompute"]
            assert (redo["plan_version"], redo["source_event_id"]) == (
                "acme-v2",
                "recompute:acme-v2",
            )
            assert rows[-1]["new_value"] == 75, rows  # 3 visits at 25, whatever b3's side
        else:
            assert causes == ["rule"] * 3 and rows[-1]["new_value"] == 30, rows
    assert len(changes) == 3 * everyone + len(ACME)


async def test_a_recompute_over_the_history_bound_is_refused_and_the_plan_switches(
    bootstrap: str, tmp_path: Path
) -> None:
    """``LEADSCORE_RECOMPUTE_MAX_ITEMS`` bounds the history a recompute holds: with a bound of 10
    and 24 items of acme on the one partition, the recompute is refused there, the plan
    switches without it (its copy dead-lettered, a ``recompute-refused`` plan-status record),
    the worker goes on in the same process, and the next events score under the new plan."""
    default, tenant = tmp_path / "default.yaml", tmp_path / "acme.yaml"
    default.write_text(DEFAULT)
    tenant.write_text(TENANT)
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path, plan=default, partitions=1,
                      extra={"LEADSCORE_RECOMPUTE_MAX_ITEMS": "10"})  # fmt: skip
    now = int(time.time() * 1000)
    everyone = len(ACME) + len(GLOBEX)
    worker = service.worker("w1").start()
    try:
        await worker.wait_ready()
        await service.produce(visits("b1", now) + visits("b2", now + 10))
        await wait_changes(service, 2 * everyone)
        replay_apply(service, tenant, default, now - 60_000, tmp_path / "replay")
        deadline = time.monotonic() + 60
        statuses: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(statuses) < 2:
            statuses = [json.loads(r.value) for r in await service.read_all(service.plan_status)]
            time.sleep(0.3)
        await service.produce(visits("b3", now + 20))
        changes = await wait_changes(service, 3 * everyone)
        time.sleep(1.0)  # a recompute change now would be a defect: read again
        changes = await service.changes()
        dead = await service.read_all(service.dead)
        worker.assert_alive()  # refused in the process: no restart
    finally:
        service.stop_all()
    assert [(s["status"], s["version"]) for s in statuses] == [
        ("accepted", "acme-v2"), ("recompute-refused", "acme-v2")
    ]  # fmt: skip
    refused = statuses[1]
    assert refused["partition"] == 0 and refused["recompute_from_ms"] == now - 60_000
    assert "more than 10 items" in refused["errors"][0], refused
    letters = [{n: v.decode() for n, v in d.headers} for d in dead]
    assert [h["leadscore.error.class"] for h in letters] == ["RecomputeRefused:HistoryTooLarge"]
    assert "LEADSCORE_RECOMPUTE_MAX_ITEMS" in letters[0]["leadscore.error.reason"]
    grouped = exactly_once(changes)
    assert not [c for c in changes if c["cause"] == "recompute"]
    for (tenant, *_), rows in grouped.items():
        if tenant == "acme":  # 10 + 10 under the default, then 25 under acme-v2
            assert [(c["new_value"], c["plan_version"]) for c in rows] == [
                (10, "default-v1"), (20, "default-v1"), (45, "acme-v2")
            ], rows  # fmt: skip
        else:
            assert rows[-1]["new_value"] == 30, rows
