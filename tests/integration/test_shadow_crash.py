"""A shadow plan through ``kill -9``s at random points while traffic flows (as ``test_crash``):
a concurrent ``read_committed`` reader of ``score-changed-shadow`` never sees an aborted change;
the shadow's changes are exactly once and equal, change for change, the pure core's run of the
shadow plan over the order the service applied the tenant's items, and its finals the offline
scorer's; the active plan's changes pass the same checks under the active plan, and no shadow
change is on ``score-changed``."""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

from tests.integration.service import PLAN, Service, crash_traffic, produce_with_kills
from tests.integration.test_tenant_plans import leadscore_plan
from tests.integration.verify import LiveReader, check_run, finish_live

EVENTS = 6000
KILLS = 3


async def test_a_shadow_through_kill_9s_is_exactly_once_and_equals_the_core(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    """``kill -9``s with the local state kept through the first two thirds of the events; then
    the worker is killed and its data directory deleted: it restores every state, the shadow's
    and its plan text included, from the state changelog, and the shadow goes on where it was.
    (One run covers both restarts: a run of kills alone added 40 s to ``make test`` and nothing
    this one does not check.)"""
    rng = random.Random(unique)
    shadow_plan = tmp_path / "shadow.yaml"
    text = PLAN.read_text().replace("version: service-test-1", "version: service-shadow-1")
    shadow_plan.write_text(re.sub(r"points: ([0-9]+)", lambda m: f"points: {int(m[1]) + 3}", text))
    records = crash_traffic(EVENTS, 600, rng)
    service = Service(bootstrap, unique, tmp_path)
    worker = service.worker()
    try:
        worker.start()
        await worker.wait_ready()
        rc, status, err = leadscore_plan(service, "publish", "--tenant", "acme", "--shadow",
                                         str(shadow_plan))  # fmt: skip
        assert rc == 0 and status is not None and status["shadow"], err
        live = LiveReader(bootstrap, service.changed_shadow).start()
        cut = len(records) * 2 // 3
        await produce_with_kills(service, worker, records[:cut], KILLS, rng)
        await service.wait_drained(timeout_s=240)
        worker.kill()
        shutil.rmtree(tmp_path / worker.name)
        worker.start()
        await worker.wait_ready()
        await service.produce(records[cut:])
        await service.wait_drained(timeout_s=240)
        seen = await finish_live(live, service)
        shadowed = await service.changes(service.changed_shadow)
        published = await service.changes()
        order = await service.applied_order()
    finally:
        service.stop_all()

    assert seen == len(shadowed) > 0
    assert {c["tenant_id"] for c in shadowed} == {"acme"}
    assert {c["plan_version"] for c in shadowed} == {"service-shadow-1"}
    assert "service-shadow-1" not in {c["plan_version"] for c in published}
    acme = [(s, r) for s, r in records if r.get("tenant_id") == "acme"]
    acme_order = [o for o in order if o[0].tenant_id == "acme"]
    for work in ("shadow", "active"):
        (tmp_path / work).mkdir()
    check_run(shadow_plan, acme, shadowed, acme_order, tmp_path / "shadow")
    check_run(PLAN, records, published, order, tmp_path / "active")
    print(
        f"shadow crash: {EVENTS} events, {KILLS} kill -9s and one with the state lost, "
        f"{len(shadowed)} shadow changes "
        f"and {len(published)} active ones, each once and equal to the core's"
    )
