"""HTTP on every worker (SPEC §7): scores, explanations, health, readiness. Read-only.

Any worker answers for any entity: a request for an entity whose partition another worker owns is
forwarded to that worker (Faust's router, by the same murmur2 partitioning the tables use).
``/metrics`` serves our Prometheus registry (with Faust's sensors in it when they are enabled).
"""

from __future__ import annotations

import hmac
from typing import Any

import faust
from faust.exceptions import SameNode
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams import records
from streams.entity_stage import Store
from streams.metrics import Metrics
from streams.scoring import EntityKey, Plan, category_values, explain, loads, reached
from streams.settings import Settings

ENTITY_KINDS = ("contact", "deal")


def is_ready(app: faust.App) -> bool:
    recovery = app.tables.recovery
    return bool(
        app.started
        and not app.should_stop
        and recovery.completed.is_set()
        and not app.rebalancing
        and not app.in_recovery
    )


def scores_view(plan: Plan, key: EntityKey, blob: bytes) -> dict[str, Any]:
    state = loads(blob)
    scores: dict[str, Any] = {}
    for score in plan.by_kind.get(key.kind, ()):
        ledger = state.scores.get(score.name)
        value = ledger.total if ledger is not None else 0
        sums = ledger.sums if ledger is not None else {}
        scores[score.name] = {
            "value": value,
            "seq": ledger.seq if ledger is not None else 0,
            "categories": category_values(score, sums),
            "thresholds_reached": list(reached(score, value)),
        }
    return {
        "account_id": key.account_id,
        "entity": key.kind,
        "entity_id": key.entity_id,
        "plan_version": plan.version,
        "scores": scores,
    }


def register_views(
    app: faust.App, settings: Settings, plan: Plan, store: Store, metrics: Metrics
) -> None:
    token = settings.api_token.get_secret_value().encode() if settings.api_token else None

    def refuse(view: View, request: Request) -> Response | None:
        if token is None:
            return None
        given = request.headers.get("Authorization", "")
        if given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token):
            return None
        return view.json({"error": "missing or wrong bearer token"}, status=401)

    async def locate(
        view: View, request: Request, entity: str, entity_id: str
    ) -> tuple[Response | None, EntityKey, bytes | None]:
        """Check the request, forward it if another worker owns the entity, else load it."""
        key = EntityKey(request.query.get("account") or None, entity, entity_id)  # type: ignore[arg-type]
        denied = refuse(view, request)
        if denied is not None:
            return denied, key, None
        if entity not in ENTITY_KINDS:
            return (
                view.json({"error": f"entity must be one of {ENTITY_KINDS}"}, status=400),
                key,
                None,
            )
        key_bytes = records.entity_key_bytes(key)
        try:
            return await app.router.route_req("entities", key_bytes, view.web, request), key, None
        except SameNode:
            pass
        blob = store.get_state(key_bytes)
        if blob is None:
            return view.json({"error": "no state for this entity"}, status=404), key, None
        return None, key, blob

    @app.page("/scores/{entity}/{entity_id}")
    class ScoresView(View):
        async def get(self, request: Request, entity: str, entity_id: str) -> Response:
            early, key, blob = await locate(self, request, entity, entity_id)
            if early is not None or blob is None:
                return early
            return self.json(scores_view(plan, key, blob))

    @app.page("/scores/{entity}/{entity_id}/explain")
    class ExplainView(View):
        async def get(self, request: Request, entity: str, entity_id: str) -> Response:
            denied = refuse(self, request)  # the token first: errors must not reveal the plan
            if denied is not None:
                return denied
            name = request.query.get("score", "")
            score = plan.by_name.get(name)
            if score is None or score.entity != entity:
                known = [s.name for s in plan.by_kind.get(entity, ())]
                return self.json({"error": f"score must be one of {known}"}, status=400)
            early, _, blob = await locate(self, request, entity, entity_id)
            if early is not None or blob is None:
                return early
            return self.json(explain(loads(blob), plan, name).to_dict())

    @app.page("/metrics")
    class Exposition(View):
        async def get(self, request: Request) -> Response:
            body = generate_latest(metrics.registry)
            return self.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    class Healthz(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Readyz(View):
        async def get(self, request: Request) -> Response:
            ready = is_ready(app)
            metrics.ready.set(1 if ready else 0)
            return self.json({"ready": ready}, status=200 if ready else 503)
