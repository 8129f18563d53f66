"""Shadow plans through the real service (docs/plans.md, Champion and challenger).

Tenant acme publishes a shadow plan with ``leadscore plan publish --shadow``; its worker is
killed with ``kill -9`` while events arrive. The shadow's changes are on ``score-changed-shadow``
exactly once (seqs 1..n, each change once), carry the shadow's version, and never appear on
``score-changed`` or ``scores``; the active plan's changes are what they would be without it.
Then ``leadscore plan promote`` makes the shadow acme's plan, and its final values equal those of
``leadscore replay --apply`` of the same plan from the same instant on a service that never ran
the shadow.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from streams.wire.codec import Codec, Source
from tests.integration.service import Service, free_port
from tests.integration.test_tenant_plans import (
    ACME,
    DEFAULT,
    GLOBEX,
    TENANT,
    leadscore_plan,
    replay_apply,
    visits,
)
from tests.integration.verify import exactly_once

SHADOW = TENANT.replace("acme-v2", "acme-shadow")
EVERYONE = len(ACME) + len(GLOBEX)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


async def wait_for(service: Service, active: int, shadow: int,
                   timeout_s: float = 120) -> tuple[list[Any], list[Any]]:  # fmt: skip
    """Both topics once they hold at least ``active`` and ``shadow`` changes, and a second
    read a moment later (anything more would be a double)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        changes = await service.changes()
        shadowed = await service.changes(service.changed_shadow)
        if len(changes) >= active and len(shadowed) >= shadow:
            await asyncio.sleep(1.0)
            return await service.changes(), await service.changes(service.changed_shadow)
        await asyncio.sleep(0.3)
    raise AssertionError(f"{len(changes)}/{active} and {len(shadowed)}/{shadow} changes")


def promote(service: Service, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """``leadscore plan promote``: exit code, the statuses it printed (the plan's, then the
    shadow's discard), stderr."""
    env = {**os.environ, **service.env("cli", free_port())}
    done = subprocess.run([sys.executable, "-m", "streams.cli", "plan", "promote", *args],
                          env=env, capture_output=True, text=True, timeout=240,
                          check=False)  # fmt: skip
    decoder, text, statuses = json.JSONDecoder(), done.stdout.strip(), []
    while text:
        status, end = decoder.raw_decode(text)
        statuses.append(status)
        text = text[end:].strip()
    return done.returncode, statuses, done.stderr


def watch_shadow(service: Service, count: int) -> list[dict[str, Any]]:
    """``leadscore watch --shadow --from-beginning --json``: the first ``count`` changes."""
    env = {**os.environ, **service.env("cli", free_port())}
    done = subprocess.run([sys.executable, "-m", "streams.cli", "watch", "--shadow",
                           "--from-beginning", "--json", "--limit", str(count)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def finals(changes: list[dict[str, Any]]) -> dict[tuple[Any, ...], int]:
    return {key: rows[-1]["new_value"] for key, rows in exactly_once(changes).items()}


async def test_a_shadow_is_exactly_once_never_on_score_changed_and_promotes_like_replay_apply(
    bootstrap: str, tmp_path: Path
) -> None:
    default, shadow = tmp_path / "default.yaml", tmp_path / "shadow.yaml"
    default.write_text(DEFAULT)
    shadow.write_text(SHADOW)
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path / "a", plan=default,
                      partitions=3)  # fmt: skip
    (tmp_path / "a").mkdir()
    now = int(time.time() * 1000)
    from_ms = now - 60_000
    worker = service.worker("w1").start()
    try:
        await worker.wait_ready()
        rc, status, err = leadscore_plan(service, "publish", "--tenant", "acme", "--shadow",
                                         str(shadow))  # fmt: skip
        assert rc == 0 and status is not None, err
        assert (status["status"], status["version"], status["shadow"]) == (
            "accepted", "acme-shadow", True)  # fmt: skip
        rc, _, err = leadscore_plan(
            service, "publish", "--tenant", "acme", "--shadow", str(default)
        )  # a second shadow: over the bound of 1
        assert rc == 2 and "LEADSCORE_SHADOWS_PER_TENANT allows 1" in err, err
        await service.produce(visits("b1", now))
        sending = asyncio.create_task(service.produce(visits("b2", now + 10)))
        await asyncio.sleep(0.3)
        worker.kill()  # with transactions open: their shadow changes must not show
        await sending
        worker = service.worker("w2").start()
        await worker.wait_ready()
        changes, shadowed = await wait_for(service, 2 * EVERYONE, 2 * len(ACME))
        status_code, view = worker.get(f"/scores/contact/{ACME[0]}?tenant=acme&plan=shadow")
        watched = watch_shadow(service, 2 * len(ACME))
        scores = [Codec.load().decode(Codec.load().score, r.value)
                  for r in await service.read_all(service.scores)]  # fmt: skip

        # the shadow: exactly once, acme only, its own version and values; never elsewhere
        grouped = exactly_once(shadowed)
        assert {k[0] for k in grouped} == {"acme"} and len(grouped) == len(ACME)
        assert all([c["new_value"] for c in rows] == [25, 50] for rows in grouped.values())
        assert {c["plan_version"] for c in shadowed} == {"acme-shadow"}
        assert status_code == 200 and view["scores"]["engagement"]["value"] == 50, view
        assert sorted(c["change_id"] for c in watched) == sorted(c["change_id"] for c in shadowed)
        assert "acme-shadow" not in {c["plan_version"] for c in changes}
        assert "acme-shadow" not in {s["plan_version"] for s in scores}
        assert set(finals(changes).values()) == {20}  # the active plan as if no shadow ran

        # promote: acme's plan from now on, recomputed from the same instant as replay --apply
        rc, printed, err = promote(service, "--tenant", "acme", "--from-time", str(from_ms))
        assert rc == 0, err
        assert [(s["status"], s["shadow"], s["recompute_from_ms"]) for s in printed] == [
            ("accepted", False, from_ms), ("removed", True, None)]  # fmt: skip
        await service.produce(visits("b3", now + 20))
        promoted, after = await wait_for(service, 3 * EVERYONE + len(ACME), 2 * len(ACME))
        statuses = [json.loads(r.value) for r in await service.read_all(service.plan_status)]
    finally:
        service.stop_all()
    assert len(after) == len(shadowed)  # discarded: the shadow scored nothing more
    assert [(s["status"], s["version"], s["shadow"]) for s in statuses] == [
        ("accepted", "acme-shadow", True),
        ("accepted", "acme-shadow", False),  # the shadow's text, as acme's plan, recomputed
        ("removed", "acme-shadow", True),
    ]

    # the same plan by replay --apply on a service that never ran the shadow
    other = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path / "b", plan=default, partitions=3)
    (tmp_path / "b").mkdir()
    worker = other.worker("w1").start()
    try:
        await worker.wait_ready()
        await other.produce(visits("b1", now) + visits("b2", now + 10))
        await wait_for(other, 2 * EVERYONE, 0)
        replay_apply(other, shadow, default, from_ms, tmp_path / "replay")
        await other.produce(visits("b3", now + 20))
        applied, _ = await wait_for(other, 3 * EVERYONE + len(ACME), 0)
    finally:
        other.stop_all()
    assert finals(promoted) == finals(applied)
    assert {v for k, v in finals(promoted).items() if k[0] == "acme"} == {75}
    print(
        f"shadow: {len(shadowed)} shadow changes once each through a kill -9, none on "
        f"score-changed; promote and replay --apply: {len(finals(promoted))} equal finals"
    )


TIERS = "    tiers: [{name: cold, below: 15}, {name: warm, below: 40}, {name: hot}]\n    rules:"


async def test_calibrate_compare_shadow_sets_both_plans_side_by_side(
    bootstrap: str, tmp_path: Path
) -> None:
    """``calibrate --compare shadow`` reads ``score-changed`` and ``score-changed-shadow``: the
    same acme contacts under both plans, the three that bought after ``--since`` converted under
    both, and every contact's tier differs (20 is warm, 50 hot)."""
    default, shadow = tmp_path / "default.yaml", tmp_path / "shadow.yaml"
    default.write_text(DEFAULT.replace("    rules:", TIERS))
    shadow.write_text(SHADOW.replace("    rules:", TIERS))
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path, plan=default, partitions=2)
    now = int(time.time() * 1000)
    since = now + 60_000
    buyers = ACME[:3]
    purchases = [(Source.PURCHASES, {"event_id": f"p-{c}", "tenant_id": "acme",
                                     "occurred_at": since + 1000, "contact_id": c,
                                     "deal_id": None, "order_id": f"o-{c}",
                                     "amount": Decimal("10"), "currency": "EUR"})
                 for c in buyers]  # fmt: skip
    worker = service.worker("w1").start()
    try:
        await worker.wait_ready()
        rc, _, err = leadscore_plan(service, "publish", "--tenant", "acme", "--shadow",
                                    str(shadow))  # fmt: skip
        assert rc == 0, err
        await service.produce(visits("b1", now) + visits("b2", now + 10) + purchases)
        await wait_for(service, 2 * EVERYONE, 2 * len(ACME))
        env = {**os.environ, **service.env("cli", free_port())}
        done = subprocess.run(
            [sys.executable, "-m", "streams.cli", "calibrate", "--plan", str(default), "--score",
             "engagement", "--tenant", "acme", "--since", str(since), "--until",
             str(since + 86_400_000), "--compare", "shadow", "--out", str(tmp_path / "report")],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    finally:
        service.stop_all()
    assert done.returncode == 0, done.stderr
    assert "tier differs for 12" in done.stdout, done.stdout
    report = json.loads((tmp_path / "report" / "comparison.json").read_text())
    current, candidate = report["current"], report["candidate"]
    assert (current["plan_version"], candidate["plan_version"]) == ("default-v1", "acme-shadow")
    assert current["entities"] == candidate["entities"] == len(ACME)
    assert current["converters"] == candidate["converters"] == len(buyers)
    assert [b["band"] for b in current["bands"] if b["entities"]] == ["warm"]
    assert [b["band"] for b in candidate["bands"] if b["entities"]] == ["hot"]
    assert report["tier_differs_count"] == len(ACME)
    assert {(d["current"]["tier"], d["shadow"]["tier"]) for d in report["tier_differs"]} == {
        ("warm", "hot")
    }
    assert (
        "Entities whose tier differs: 12" in (tmp_path / "report" / "comparison.html").read_text()
    )
