"""Tenant isolation (docs/operations.md, Security): two tenants, the same entity ids, one worker.

No HTTP answer, topic record or metric label lets one tenant read the other's scores:

- every record of ``score-changed`` and ``scores`` has a key and a ``tenant_id`` that agree,
  and names (``source_event_id``) only events of that tenant; the two tenants' entities with
  the same ids keep their own values (each equal to the offline scorer: :func:`check_run`);
- with tenant tokens, each tenant reads its own scores and explanations; asking for the other
  tenant answers like an unknown entity; the operator's token reads both;
- ``/metrics`` has no label holding a tenant, an entity id or an event id.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

from streams.commands.traffic import TrafficShape, generate
from tests.integration.service import PLAN, Service
from tests.integration.verify import check_run

EVENTS = 3000
TOKENS = {"acme": "acme-0123456789", "globex": "globex-9876543210"}  # test tokens
ADMIN = "operator-0123456789"


def get(port: int, path: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310 (http only)
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def strings(value: Any) -> list[str]:
    """Every string anywhere in a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


async def test_two_tenants_with_the_same_ids_never_see_each_other(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    now = int(time.time() * 1000)
    shape = replace(TrafficShape(), contacts=150, deals=30, tenants=("acme", "globex"),
                    step_ms=50, start_ms=now - EVENTS * 50)  # fmt: skip
    records = list(generate(EVENTS, seed=11, shape=shape))
    for i, (_, record) in enumerate(records):  # half each, over the same entity ids
        record["tenant_id"] = ("acme", "globex")[i % 2]
    account_of = {r.get("event_id") or r["command_id"]: r["tenant_id"] for _, r in records}
    tenants = ",".join(f"{a}={t}" for a, t in TOKENS.items())
    service = Service(bootstrap, unique, tmp_path,
                      extra={"LEADSCORE_API_TOKEN": ADMIN,
                             "LEADSCORE_TENANT_TOKENS": tenants})  # fmt: skip
    worker = service.worker()
    try:
        worker.start()
        await worker.wait_ready()
        await service.produce(records)
        await service.wait_drained(timeout_s=120)
        published = await service.changes()
        order = await service.applied_order()
        changed_raw = await service.read_all(service.changed)
        scores_raw = await service.read_all(service.scores)
        finals = check_run(PLAN, records, published, order, tmp_path)
        shared = sorted({(e, i) for (a, e, i, _) in finals if a == "acme"}
                        & {(e, i) for (a, e, i, _) in finals if a == "globex"})  # fmt: skip
        assert len(shared) >= 20, "the test needs entity ids present in both tenants"
        answers = []
        for entity, entity_id in shared[:20]:
            path = f"/scores/{entity}/{entity_id}"
            for tenant, token in TOKENS.items():
                other = "globex" if tenant == "acme" else "acme"
                answers.append(
                    (
                        tenant,
                        entity,
                        entity_id,
                        get(worker.port, path, token),
                        get(worker.port, f"{path}?tenant={other}", token),
                        get(worker.port, f"{path}?account={tenant}", ADMIN),  # the old name
                        get(worker.port, f"{path}/explain?score=engagement", token),
                    )
                )
        metrics = worker.get_text("/metrics")
    finally:
        service.stop_all()

    from streams.wire.codec import Codec

    codec = Codec.load()
    for raw in changed_raw:  # topic records: key and content are one tenant's
        change = codec.decode(codec.score_changed, raw.value)
        assert json.loads(raw.key)[0] == change["tenant_id"]
        if change["source_event_id"] is not None:
            assert account_of[change["source_event_id"]] == change["tenant_id"], change
    for raw in scores_raw:
        score = codec.decode(codec.score, raw.value)
        assert json.loads(raw.key)[0] == score["tenant_id"]

    for tenant, entity, entity_id, own, other, admin, explained in answers:
        assert own[0] == 200 and own[1]["tenant_id"] == tenant
        values = {name: view["value"] for name, view in own[1]["scores"].items()}
        for name, value in values.items():
            assert value == finals.get((tenant, entity, entity_id, name), 0)
        assert own == admin  # the operator's token sees the same through ?account= (old name)
        assert other == (404, {"error": "no state for this entity"})
        if entity == "contact":
            assert explained[0] == 200
            for text in strings(explained[1]):
                if text in account_of:  # an event id: only this tenant's
                    assert account_of[text] == tenant, (tenant, text)

    labels = re.findall(r"\{([^}]*)\}", metrics)
    values = {v for group in labels for v in re.findall(r'="([^"]*)"', group)}
    leaked = {v for v in values if v in TOKENS or v in account_of or re.fullmatch(r"[cd]-\d+", v)}
    assert not leaked, f"metric labels name tenants, entities or events: {sorted(leaked)[:10]}"
