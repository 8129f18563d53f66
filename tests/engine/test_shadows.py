"""Shadow plans on the loop's fakes (``streams.engine.shadows``): a tenant's challenger plan is
scored beside its active plan, its changes exactly once on ``score-changed-shadow`` and nowhere
else, the active plan's output untouched; a discard drops its states; the bound per tenant; a
shadow whose core raises never costs the active plan an item."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streams.engine import entities as entities_module
from streams.engine import shadows
from streams.scoring import EntityKey
from streams.state import history
from streams.wire import records
from tests.engine.test_history import abort_one_commit, api_of, call
from tests.engine.test_loop import CODEC, PLAN, T0, TENANT_PLAN, World, publish_plan, visits

SHADOW_PLAN = TENANT_PLAN.replace("loop-2", "challenger-1")
ACME = visits(40, seed=5, tenant="acme")


def shadow_world(root: Path, **extra: Any) -> World:
    world = World(root, **extra)
    world.cluster.partitions[world.settings.topic_score_changed_shadow] = 1
    return world.start()


def publish_shadow(world: World, text: str | None, version: str = "challenger-1") -> None:
    world.cluster.append(world.settings.topic_plans, 0, shadows.plans_key("acme", version),
                         None if text is None else text.encode())  # fmt: skip


def running(root: Path, text: str = SHADOW_PLAN, rows: list[dict[str, Any]] = ACME, *,
            shadow: bool = True) -> World:  # fmt: skip
    """A world whose tenant acme runs ``text`` as its shadow (or, ``shadow`` False, as its own
    plan: the reference), with ``rows`` scored."""
    world = shadow_world(root)
    (publish_shadow if shadow else publish_plan)(world, text)
    world.drain()
    world.send(rows)
    world.drain()
    return world


def topic(world: World, name: str) -> Counter[tuple[bytes | None, bytes | None]]:
    return Counter((r.key, r.value) for r in world.cluster.values(name))


def decoded(world: World, name: str) -> list[dict[str, Any]]:
    return [CODEC.decode(CODEC.score_changed, r.value or b"") for r in world.cluster.values(name)]


def as_active(root: Path, text: str, rows: list[dict[str, Any]]) -> World:
    """The reference: ``text`` as the tenant's own plan from the start."""
    return running(root, text, rows, shadow=False)


def test_a_shadow_is_scored_beside_the_active_plan_exactly_once(tmp_path: Path) -> None:
    world = running(tmp_path / "run")
    s = world.settings
    shadow_out = topic(world, s.topic_score_changed_shadow)
    assert shadow_out and max(shadow_out.values()) == 1
    # the shadow's changes: what the challenger gives as the tenant's own plan, record for record
    challenger = as_active(tmp_path / "challenger", SHADOW_PLAN, ACME)
    assert shadow_out == topic(challenger, s.topic_score_changed)
    # the active side: as if there were no shadow; no shadow version on score-changed or scores
    assert topic(world, s.topic_score_changed) == topic(
        as_active(tmp_path / "plain", PLAN, ACME), s.topic_score_changed
    )
    assert {c["plan_version"] for c in decoded(world, s.topic_score_changed)} == {"loop-1"}
    assert {c["plan_version"] for c in decoded(world, s.topic_score_changed_shadow)} == {
        "challenger-1"
    }
    scores = [
        CODEC.decode(CODEC.score, r.value or b"") for r in world.cluster.values(s.topic_scores)
    ]
    assert scores and {r["plan_version"] for r in scores} == {"loop-1"}
    statuses = [json.loads(r.value or b"") for r in world.cluster.values(s.topic_plan_status)]
    assert statuses[-1]["shadow"] is True and statuses[-1]["status"] == "accepted"
    # the score history keeps the active plan's changes only
    kept = [history.decode(v) for held in world.loop.partitions.held.values()
            for _, v in held.store.scan(history.HISTORY)]  # fmt: skip
    assert kept and {c["plan_version"] for c in kept} == {"loop-1"}


def test_an_aborted_transaction_drops_the_shadows_work_too(tmp_path: Path) -> None:
    world = shadow_world(tmp_path / "run")
    publish_shadow(world, SHADOW_PLAN)
    world.drain()
    world.send(ACME)
    abort_one_commit(world, steps=4)
    s = world.settings
    challenger = as_active(tmp_path / "challenger", SHADOW_PLAN, ACME)
    assert topic(world, s.topic_score_changed_shadow) == topic(challenger, s.topic_score_changed)


def stored_shadow_keys(world: World, version: str = "challenger-1") -> list[bytes]:
    prefix = shadows.tenant_prefix(version, "acme")
    return [k for held in world.loop.partitions.held.values() for k in held.store.scan_keys(prefix)]


def test_a_discard_drops_the_shadows_states_and_its_scoring(tmp_path: Path) -> None:
    world = running(tmp_path)
    assert stored_shadow_keys(world)
    entities = sum(h.store.entities for h in world.loop.partitions.held.values())
    published = len(world.cluster.values(world.settings.topic_score_changed_shadow))
    labels = {"tenant": "acme", "version": "challenger-1"}
    assert world.sample("leadscore_shadow_plan", labels) == 2  # both partitions
    assert world.sample("leadscore_shadow_changes_total") == published  # (no abort here)
    publish_shadow(world, None)
    world.drain()
    assert stored_shadow_keys(world) == []
    assert world.metrics.registry.get_sample_value("leadscore_shadow_plan", labels) is None
    assert sum(h.store.entities for h in world.loop.partitions.held.values()) < entities
    assert not any(k[:1] == shadows.SHADOW for k in world.loop.cache.entries)
    world.send(visits(10, seed=6, tenant="acme"))
    world.drain()
    assert len(world.cluster.values(world.settings.topic_score_changed_shadow)) == published
    # the tombstones reached the changelog: a restored store has no shadow state either
    changelog = {r.key: r.value for r in world.cluster.values(world.changelog)}
    assert not any(k is not None and k[:1] == shadows.SHADOW and v is not None
                   for k, v in changelog.items())  # fmt: skip


@pytest.mark.parametrize("bound", [0, 1])
def test_shadows_beyond_the_bound_are_refused(tmp_path: Path, bound: int) -> None:
    world = shadow_world(tmp_path, shadows_per_tenant=bound)
    publish_shadow(world, SHADOW_PLAN)
    publish_shadow(world, TENANT_PLAN.replace("loop-2", "challenger-2"), "challenger-2")
    world.drain()
    tenants = world.loop.stage.tenants
    running = ["challenger-1"] if bound else []
    assert [[v for v, _ in tenants.shadows_for(p, "acme")] for p in (0, 1)] == [running] * 2
    letters = world.dead_letters()
    assert len(letters) == 2 * (2 - bound) and all(
        h["leadscore.error.class"] == b"ShadowRejected" for h in letters
    ), letters


def test_a_shadow_key_naming_another_version_is_rejected(tmp_path: Path) -> None:
    world = shadow_world(tmp_path)
    publish_shadow(world, SHADOW_PLAN, "not-its-version")
    world.drain()
    statuses = [
        json.loads(r.value or b"") for r in world.cluster.values(world.settings.topic_plan_status)
    ]
    assert statuses[-1]["status"] == "rejected" and "version" in statuses[-1]["errors"][0]
    assert not world.loop.stage.tenants.running_shadows()


def test_a_shadow_that_raises_costs_the_active_plan_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = entities_module.apply
    raised: list[str] = []

    def apply(state: Any, key: Any, item: Any, plan: Any, *, now_ms: int) -> Any:
        if plan.version == "challenger-1" and item.event_id == ACME[7]["event_id"]:
            raised.append(item.event_id)
            raise ZeroDivisionError("a bug of the shadow's")
        return real(state, key, item, plan, now_ms=now_ms)

    monkeypatch.setattr(entities_module, "apply", apply)
    world = shadow_world(tmp_path / "run")
    publish_shadow(world, SHADOW_PLAN)
    world.drain()
    world.send(ACME)
    world.drain()
    monkeypatch.setattr(entities_module, "apply", real)
    s = world.settings
    assert raised == [ACME[7]["event_id"]]  # once: scored again without the shadow
    assert world.dead_letters() == []
    assert topic(world, s.topic_score_changed) == topic(
        as_active(tmp_path / "plain", PLAN, ACME), s.topic_score_changed
    )
    missing = [r for r in ACME if r["event_id"] != ACME[7]["event_id"]]
    assert topic(world, s.topic_score_changed_shadow) == topic(
        as_active(tmp_path / "challenger", SHADOW_PLAN, missing), s.topic_score_changed
    )


def test_http_answers_for_the_shadow_with_plan_shadow(tmp_path: Path) -> None:
    world = running(tmp_path)
    loop, api = world.loop, api_of(world)
    contact = ACME[0]["contact_id"]
    path = f"/scores/contact/{contact}"
    status, active = call(api, path, "tenant=acme")
    assert status == 200 and active["plan_version"] == "loop-1"
    status, shadow = call(api, path, "tenant=acme&plan=shadow")
    assert status == 200 and shadow["plan_version"] == "challenger-1" and shadow["plan"] == "shadow"
    expected = sum(23 if "pricing" in r["url"] else 3 for r in ACME if r["contact_id"] == contact)
    assert shadow["scores"]["engagement"]["value"] == expected
    assert call(api, path, "tenant=acme&plan=shadow:challenger-1")[1] == shadow
    assert call(api, path + "/explain", "tenant=acme&plan=shadow&score=engagement")[0] == 200
    assert call(api, path, "tenant=acme&plan=shadow:other")[0] == 404
    assert call(api, path, "plan=shadow")[0] == 404  # the default tenant runs no shadow
    assert call(api, path, "tenant=acme&plan=bogus")[0] == 400
    assert call(api, path + "/history", "tenant=acme&plan=shadow")[0] == 400
    status, plans = call(api, "/plans", "")
    assert [v["version"] for v in plans["shadows"]["acme"]] == ["challenger-1"]
    key = records.entity_key_bytes(EntityKey("acme", "contact", contact))
    assert loop.read_state(key)[1] is not None  # the entity's own state is where it was


ROLLUP_PLAN = """
version: rollup-1
scores:
  - name: engagement
    entity: contact
    rules:
      - {id: pricing, on: page_visit, where: {url: {contains: pricing}}, points: 10,
         expires_after: 1h}
      - {id: any-page, on: page_visit, points: 1, expires_after: 2h}
  - name: deal-engagement
    entity: deal
    rollup: {from: engagement, aggregate: sum}
"""
ROLLUP_SHADOW = ROLLUP_PLAN.replace("rollup-1", "rollup-2").replace("points: 10", "points: 40")


def on_deals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "deal_id": f"d{int(r['contact_id'][1:]) % 2}"} for r in rows]


def later(world: World, hours: int) -> None:
    """Move the due work's clock ``hours`` on and drain: the expiries run."""
    world.loop.due.clock = lambda: T0 / 1000 + hours * 3600
    world.loop.last_due = 0.0
    world.drain()
    world.loop.last_due = 0.0
    world.loop.step()
    world.drain()


def test_a_shadows_expiries_and_roll_ups_run_on_its_own_states(tmp_path: Path) -> None:
    rows = on_deals(visits(30, seed=8, tenant="acme"))
    runs = {}
    for name, text, shadow in (("shadow", ROLLUP_SHADOW, True), ("active", ROLLUP_SHADOW, False)):
        world = shadow_world(tmp_path / name)
        publish_plan(world, ROLLUP_PLAN)  # acme's own plan; the shadow beside it, or instead
        world.drain()
        if shadow:
            publish_shadow(world, text, "rollup-2")
        else:
            publish_plan(world, text)
        world.drain()
        world.send(rows)
        world.drain()
        later(world, 3)
        runs[name] = world
    s = runs["shadow"].settings
    shadowed = decoded(runs["shadow"], s.topic_score_changed_shadow)
    assert {c["cause"] for c in shadowed} >= {"rule", "expiry", "rollup"}, shadowed
    assert {c["entity"] for c in shadowed} == {"contact", "deal"}
    # the challenger as acme's own plan from the same point gives the same changes
    assert topic(runs["shadow"], s.topic_score_changed_shadow) == Counter(
        (r.key, r.value)
        for r in runs["active"].cluster.values(s.topic_score_changed)
        if CODEC.decode(CODEC.score_changed, r.value or b"")["plan_version"] == "rollup-2"
    )
    # every score back to 0 after the expiries, on the shadow's own states
    finals = {(c["entity_id"], c["score"]): c["new_value"] for c in shadowed}
    assert set(finals.values()) == {0}
    # the discard takes the shadow's due times with its states: nothing is due for it any more
    world = runs["shadow"]
    publish_shadow(world, None, "rollup-2")
    world.drain()
    prefix = shadows.tenant_prefix("rollup-2", "acme")
    for held in world.loop.partitions.held.values():
        assert held.store.scan_keys(prefix) == []
        assert not [k for k in held.store.due_keys(2**62, 10_000) if k.startswith(prefix)]
