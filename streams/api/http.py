"""HTTP on every worker (docs/operations.md, HTTP API): scores, explanations, health, readiness,
metrics. Read-only.

Served by waitress (a maintained, pure-Python WSGI server) on threads of its own, so a slow
client never stalls the processing loop. Reads see committed state only: the partition stores,
which the loop writes after each transaction commits.

Any worker answers for any entity. The entity's partition (murmur2 of its key, as the loop routes
it) is owned by one member of the consumer group; each member's client id carries its advertised
URL (``leadscore@http://host:port``), so the group description that the admin client returns
(members, their client ids and their assigned partitions: Kafka's own group metadata) says
where to forward. The map is cached for a few seconds and refreshed on a miss. A forwarded
request carries ``X-Leadscore-Forwarded``; a worker that gets one for a partition it does not
hold answers 503 rather than forwarding again.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar
from wsgiref.types import StartResponse, WSGIEnvironment

from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from waitress.server import create_server

from streams.api.history import MAX_N as MAX_HISTORY_N
from streams.api.history import answer as history_answer
from streams.api.history import read_older, score_names
from streams.api.topview import ENTITY_KINDS, TopFeed, top_answer
from streams.engine import shadows
from streams.engine.kafka import client_base_config
from streams.engine.tenants import TenantPlans
from streams.metrics import Metrics
from streams.scoring import EntityKey, EntityState, Plan, explain
from streams.scoring.matrix import cells
from streams.settings import Settings
from streams.state import history
from streams.state.history import entity_prefix as entity_history_prefix
from streams.state.store import PartitionStore, stored_state
from streams.wire import records
from streams.wire.codec import Codec
from streams.wire.publish import score_view

log = logging.getLogger(__name__)
CLIENT_ID_PREFIX = "leadscore@"
FORWARDED = "X-Leadscore-Forwarded"
OWNERS_TTL_S = 5.0
#: Longest read of ``score-changed`` for a history's older changes, s.
HISTORY_READ_S = 20.0
T = TypeVar("T")


def client_id(settings: Settings) -> str:
    """The consumer's client id: it advertises this worker's HTTP URL to the group."""
    return CLIENT_ID_PREFIX + settings.advertised_url


def scores_view(plan: Plan, key: EntityKey, state: EntityState) -> dict[str, Any]:
    """Every score of an entity, each in the one score view
    (``streams.wire.publish.score_view``)."""
    scores = {score.name: score_view(score, state) for score in plan.by_kind.get(key.kind, ())}
    view: dict[str, Any] = {
        "tenant_id": key.tenant_id,
        "entity": key.kind,
        "entity_id": key.entity_id,
        "plan_version": plan.version,
        "scores": scores,
    }
    if plan.matrices_by_kind.get(key.kind):
        view["matrices"] = cells(plan, key.kind, state)
    return view


class StoreSource(Protocol):
    """Reads of the committed partition stores (``streams.engine.rebalance.Rebalance``)."""

    def read_store(
        self, partition: int, read: Callable[[PartitionStore], T]
    ) -> tuple[str, T | None]: ...


class StateSource(Protocol):
    """What the HTTP side needs of the engine."""

    @property
    def ready(self) -> bool: ...
    def read_state(self, key: bytes) -> tuple[str, EntityState | None]: ...
    def entity_partition(self, key: bytes) -> int: ...
    @property
    def entity_partitions(self) -> int: ...


class Owners:
    """Entity partition -> the advertised URL of the group member that holds it."""

    def __init__(self, settings: Settings, entity_topic: str) -> None:
        self.group = settings.app_id
        self.topic = entity_topic
        self.admin = AdminClient(client_base_config(settings))
        self.urls: dict[int, str] = {}
        self.stable = False
        self.fetched = 0.0
        self.lock = threading.Lock()

    def settled(self, partitions: int) -> bool:
        """The group is stable and every entity partition has an owner (no rebalance under way).

        A worker that joins gets nothing in the first round of a cooperative rebalance; the
        partitions others give up come in a second round. Until then no worker could answer
        for them, so no worker reports ready.
        """
        with self.lock:
            if not self._settled(partitions) or time.monotonic() - self.fetched > OWNERS_TTL_S:
                self._refresh()
            return self._settled(partitions)

    def _settled(self, partitions: int) -> bool:
        return self.stable and len(self.urls) == partitions

    def url_of(self, partition: int) -> str | None:
        with self.lock:
            if time.monotonic() - self.fetched > OWNERS_TTL_S or partition not in self.urls:
                self._refresh()
            return self.urls.get(partition)

    def _refresh(self) -> None:
        self.fetched = time.monotonic()
        try:
            described = self.admin.describe_consumer_groups([self.group], request_timeout=5)
            group = described[self.group].result()
        except Exception as exc:
            log.warning("cannot describe consumer group %s: %s", self.group, exc)
            return
        urls: dict[int, str] = {}
        self.stable = group.state == ConsumerGroupState.STABLE
        for member in group.members:
            if not member.client_id.startswith(CLIENT_ID_PREFIX) or member.assignment is None:
                continue
            url = member.client_id[len(CLIENT_ID_PREFIX) :]
            for tp in member.assignment.topic_partitions:
                if tp.topic == self.topic:
                    urls[tp.partition] = url
        self.urls = urls


Response = tuple[int, dict[str, str], bytes]
#: The principal that reads every tenant: no token configured, or ``LEADSCORE_API_TOKEN``.
ALL = "\x00all tenants"  # not a tenant id: the API takes them from a query string
#: How old the /metrics text may be, s (see ``Api._exposition``).
METRICS_MAX_AGE_S = 1.0


def _json(status: int, body: Any) -> Response:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def tenant_param(query: dict[str, list[str]]) -> tuple[str | None, str | None]:
    """(the tenant, None) of ``?tenant=`` (missing or empty: the default tenant, None), or
    (None, the reason for a 400). ``?account=`` is its deprecated old name, still read; both
    given and different is refused, naming both (docs/migration.md)."""
    tenant = (query.get("tenant") or [""])[0] or None
    old = (query.get("account") or [""])[0] or None
    if tenant is not None and old is not None and tenant != old:
        return None, (f"?tenant={tenant!r} and ?account={old!r} differ: account is the "
                      "deprecated old name of tenant; give tenant only")  # fmt: skip
    return tenant if tenant is not None else old, None


class Api:
    """The WSGI application."""

    def __init__(self, settings: Settings, plan: Plan, engine: StateSource, metrics: Metrics,
                 owners: Owners | None, top_feed: TopFeed | None = None,
                 tenants: TenantPlans | None = None, stores: StoreSource | None = None,
                 codec: Codec | None = None) -> None:  # fmt: skip
        self.settings, self.plan, self.engine, self.metrics = settings, plan, engine, metrics
        #: the committed stores (score history) and the codec of ``score-changed`` (older changes)
        self.stores, self.codec = stores, codec
        #: the plan of every tenant on each partition the engine holds (``streams.engine.tenants``)
        self.tenants = tenants if tenants is not None else TenantPlans(plan)
        self.owners = owners
        self.top_feed = top_feed
        self.top_view = top_feed.view if top_feed is not None else None
        self.own_url = settings.advertised_url
        self.token = settings.api_token.get_secret_value().encode() if settings.api_token else None
        self.tenant_tokens = [(t.encode(), a) for t, a in settings.tenants_by_token.items()]
        self._metrics_cache: tuple[float, bytes] = (0.0, b"")

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, headers, body = self.route(environ)
        except Exception:  # never a traceback to the client, never a dead server thread
            log.exception("HTTP %s failed", environ.get("PATH_INFO"))
            status, headers, body = _json(500, {"error": "internal error (see the worker log)"})
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                  405: "Method Not Allowed", 500: "Internal Server Error", 502: "Bad Gateway",
                  503: "Service Unavailable"}.get(status, "")  # fmt: skip
        start_response(f"{status} {reason}", [*headers.items(), ("Content-Length", str(len(body)))])
        return [body]

    def _exposition(self) -> bytes:
        """The metrics text, rendered at most once a second: rendering every series costs
        milliseconds of the processing loop's interpreter, and scrapes come every few seconds;
        a client hammering /metrics gets the same text again."""
        now = time.monotonic()
        cached_at, body = self._metrics_cache
        if now - cached_at >= METRICS_MAX_AGE_S or not body:
            body = generate_latest(self.metrics.registry)
            self._metrics_cache = (now, body)
        return body

    def _principal(self, environ: WSGIEnvironment) -> str | None:
        """Who calls: ``ALL`` (no token configured, or the API token: every tenant), a tenant
        (its tenant token: that tenant only), or None (no valid token).

        Every configured token is compared, in constant time, whatever matches: the time taken
        tells nothing about which token, or how much of one, was right."""
        if self.token is None and not self.tenant_tokens:
            return ALL
        given = environ.get("HTTP_AUTHORIZATION", "")
        if not given.startswith("Bearer "):
            return None
        offered = given[7:].encode()
        who = None
        if self.token is not None and hmac.compare_digest(offered, self.token):
            who = ALL
        for token, tenant in self.tenant_tokens:
            if hmac.compare_digest(offered, token):
                who = tenant
        return who

    def route(self, environ: WSGIEnvironment) -> Response:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _json(405, {"error": "only GET is served"})
        path: str = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return _json(200, {"status": "ok"})
        if path == "/readyz":
            ready = self.engine.ready and (
                self.owners is None or self.owners.settled(self.engine.entity_partitions)
            )
            self.metrics.ready.set(1 if ready else 0)
            return _json(200 if ready else 503, {"ready": ready})
        # With a token set, everything but the probes needs it (metrics: by their own setting),
        # checked first: an unauthenticated caller learns nothing, not even which paths exist.
        open_path = path == "/metrics" and not self.settings.metrics_require_token
        who = ALL if open_path else self._principal(environ)
        if who is None:
            return _json(401, {"error": "missing or wrong bearer token"})
        if path == "/metrics":
            if who is not ALL:  # the service's own figures: for operators, not for tenants
                return _json(404, {"error": f"no such path {path!r}"})
            return 200, {"Content-Type": CONTENT_TYPE_LATEST}, self._exposition()
        parts = path.strip("/").split("/")
        if (
            len(parts) in (3, 4)
            and parts[0] == "scores"
            and (len(parts) == 3 or parts[3] in ("explain", "history"))
        ):
            query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
            tenant, refused = tenant_param(query)
            if refused is not None:
                return _json(400, {"error": refused})
            if who is not ALL:  # a tenant: its own tenant, and no other one exists for it
                if tenant not in (None, who):
                    return _json(404, {"error": "no state for this entity"})
                tenant = who
            if len(parts) == 4 and parts[3] == "history":
                return self.history(environ, parts[1], parts[2], tenant, query)
            return self.scores(environ, parts[1], parts[2], tenant, query,
                               explain_it=len(parts) == 4)  # fmt: skip
        if path == "/plans":  # which plan each tenant runs on this worker's partitions
            return _json(200, self.plans_view(who))
        if len(parts) == 2 and parts[0] == "top":
            query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
            tenant, refused = tenant_param(query)
            if refused is not None:
                return _json(400, {"error": refused})
            foreign = who is not ALL and tenant not in (None, who)
            if who is not ALL and not foreign:
                tenant = who
            return _json(*self.top(parts[1], query, tenant, foreign=foreign))
        return _json(404, {"error": f"no such path {path!r}"})

    def plans_view(self, who: str) -> dict[str, Any]:
        """``/plans``: the default plan, and per tenant with a plan of its own each version this
        worker's partitions run, with those partitions (two versions only while a new one is
        reaching the partitions). A tenant's token sees its own tenant only."""
        tenants: dict[str, list[dict[str, Any]]] = {}
        for tenant, versions in self.tenants.running().items():
            if who is not ALL and tenant != who:
                continue
            for partitions in versions.values():
                plan = self.tenants.plan_for(partitions[0], tenant)
                view = {**_plan_view(plan, "plans topic"), "partitions": partitions}
                tenants.setdefault(tenant, []).append(view)
        shadowed: dict[str, list[dict[str, Any]]] = {}
        for tenant, versions in self.tenants.running_shadows().items():
            if who is not ALL and tenant != who:
                continue
            for version, partitions in versions.items():
                challenger = self.tenants.shadow_plan(partitions[0], tenant, version)
                if challenger is not None:
                    view = {**_plan_view(challenger, "plans topic, shadow"),
                            "partitions": partitions}  # fmt: skip
                    shadowed.setdefault(tenant, []).append(view)
        return {"default": _plan_view(self.plan, str(self.settings.plan_path)),
                "tenants": tenants, "shadows": shadowed}  # fmt: skip

    def top(self, entity: str, query: dict[str, list[str]], tenant: str | None, *,
            foreign: bool = False) -> tuple[int, Any]:  # fmt: skip
        """A tenant asking for another tenant's list gets an empty one (as for a tenant that
        does not exist): nothing of the other tenant shows, not even that it exists."""
        if self.top_feed is not None and self.top_feed.failed is not None:
            return 503, {"error": f"the top view stopped: {self.top_feed.failed}"}
        view = None if foreign else self.top_view
        answer = top_answer(view, entity, query, tenant, self.tenants.tenant_plan(tenant))
        if "error" in answer:
            return 400, answer
        answer["caught_up"] = self.top_feed is None or self.top_feed.caught_up.is_set()
        return 200, answer

    def scores(self, environ: WSGIEnvironment, entity: str, entity_id: str, tenant: str | None,
               query: dict[str, list[str]], *, explain_it: bool) -> Response:  # fmt: skip
        if entity not in ENTITY_KINDS:
            return _json(400, {"error": f"entity must be one of {ENTITY_KINDS}"})
        name = (query.get("score") or [""])[0]
        key = EntityKey(tenant, entity, entity_id)  # type: ignore[arg-type]
        key_bytes = records.entity_key_bytes(key)
        which = (query.get("plan") or ["active"])[0]
        if which != "active":
            return self.shadow_scores(environ, key, key_bytes, which, name, explain_it=explain_it)
        where, state = self.engine.read_state(key_bytes)
        if where == "restoring":
            return _json(503, {"error": "the entity's partition is restoring; retry shortly"})
        if where == "elsewhere":
            return self.forward(environ, key_bytes)
        plan = self.tenants.plan_for(self.engine.entity_partition(key_bytes), tenant)
        if explain_it:
            score = plan.by_name.get(name)
            if score is None or score.entity != entity:
                known = [s.name for s in plan.by_kind.get(entity, ())]
                return _json(400, {"error": f"score must be one of {known}"})
        if state is None:
            return _json(404, {"error": "no state for this entity"})
        if explain_it:
            answer = explain(state, plan, name).to_dict()
            answer["history"] = history_path(key, name)
            return _json(200, answer)
        return _json(200, scores_view(plan, key, state))

    def shadow_scores(self, environ: WSGIEnvironment, key: EntityKey, key_bytes: bytes,
                      which: str, name: str, *, explain_it: bool) -> Response:  # fmt: skip
        """``?plan=shadow`` (``shadow:VERSION`` when the tenant runs several): the entity under
        the tenant's shadow plan, from the shadow's own state."""
        kind, sep, wanted = which.partition(":")
        if kind != "shadow" or (sep and not wanted):
            return _json(400, {"error": "plan must be active, shadow or shadow:VERSION"})
        if self.stores is None:
            return _json(503, {"error": "this worker keeps no stores"})
        partition = self.engine.entity_partition(key_bytes)

        def read(store: PartitionStore) -> tuple[list[str], Plan | None, EntityState | None]:
            running = self.tenants.shadows_for(partition, key.tenant_id)
            chosen = [(v, p) for v, p in running if wanted in ("", v)]
            if len(chosen) != 1:
                return [v for v, _ in running], None, None
            version, plan = chosen[0]
            return [version], plan, stored_state(store, shadows.state_key(version, key_bytes))

        where, found = self.stores.read_store(partition, read)
        if where == "restoring":
            return _json(503, {"error": "the entity's partition is restoring; retry shortly"})
        if where == "elsewhere" or found is None:
            return self.forward(environ, key_bytes)
        versions, plan, state = found
        if plan is None:
            if not versions or wanted:
                return _json(404, {"error": f"tenant {key.tenant_id!r} runs no shadow plan "
                                            f"{wanted or ''}".rstrip()})  # fmt: skip
            several = (f"tenant {key.tenant_id!r} runs several shadow plans: give "
                       f"plan=shadow:VERSION, one of {versions}")  # fmt: skip
            return _json(400, {"error": several})
        score = plan.by_name.get(name)
        if explain_it and (score is None or score.entity != key.kind):
            known = [s.name for s in plan.by_kind.get(key.kind, ())]
            return _json(400, {"error": f"score must be one of {known}"})
        if state is None:
            return _json(404, {"error": "no state for this entity under the shadow plan"})
        if explain_it:
            return _json(200, {**explain(state, plan, name).to_dict(), "plan": "shadow"})
        return _json(200, {**scores_view(plan, key, state), "plan": "shadow"})

    def history(self, environ: WSGIEnvironment, entity: str, entity_id: str, tenant: str | None,
                query: dict[str, list[str]]) -> Response:  # fmt: skip
        """The last changes of each score (or of ``?score=``), newest first, from the store;
        with ``?before=SEQ`` (and a score), the ones before that seq from ``score-changed``."""
        if entity not in ENTITY_KINDS:
            return _json(400, {"error": f"entity must be one of {ENTITY_KINDS}"})
        bound = self.settings.history_per_score
        args, refused = _history_args(query, bound)
        if refused is not None:
            return _json(400, {"error": refused})
        name, n, before = args
        if (query.get("plan") or ["active"])[0] != "active":
            return _json(400, {"error": "history is kept for the active plan; a shadow plan's "
                                        "changes are on its own topic, "
                                        f"{self.settings.topic_score_changed_shadow}"})  # fmt: skip
        key = EntityKey(tenant, entity, entity_id)  # type: ignore[arg-type]
        key_bytes = records.entity_key_bytes(key)
        if self.stores is None:
            return _json(503, {"error": "this worker keeps no stores"})
        partition = self.engine.entity_partition(key_bytes)
        prefix = entity_history_prefix(key_bytes)
        where, found = self.stores.read_store(
            partition, lambda store: (stored_state(store, key_bytes), store.scan(prefix))
        )
        if where == "restoring":
            return _json(503, {"error": "the entity's partition is restoring; retry shortly"})
        if where == "elsewhere":
            return self.forward(environ, key_bytes)
        plan = self.tenants.plan_for(partition, tenant)
        names = score_names(plan, entity)
        if name and name not in names:
            return _json(400, {"error": f"score must be one of {names}"})
        if found is None or found[0] is None:
            return _json(404, {"error": "no state for this entity"})
        if before is not None:
            return self.older(key, name, before, n)
        state = found[0]
        body = history_answer(key, plan, state, found[1], key_bytes, [name] if name else names,
                              n, bound)  # fmt: skip
        return _json(200, body)

    def older(self, key: EntityKey, name: str, before: int, n: int) -> Response:
        """``?before=``: from ``score-changed`` (a read of one partition to its end)."""
        if self.codec is None:
            return _json(503, {"error": "this worker cannot read score-changed"})
        changes, why = read_older(self.settings, self.codec, key, name, before=before, n=n,
                                  timeout_s=HISTORY_READ_S)  # fmt: skip
        return _json(200, {"tenant_id": key.tenant_id, "entity": key.kind,
                           "entity_id": key.entity_id, "score": name, "before": before,
                           "source": self.settings.topic_score_changed, "changes": changes,
                           "complete": why is None, "incomplete_because": why})  # fmt: skip

    def forward(self, environ: WSGIEnvironment, key_bytes: bytes) -> Response:
        partition = self.engine.entity_partition(key_bytes)
        url = self.owners.url_of(partition) if self.owners is not None else None
        if environ.get("HTTP_X_LEADSCORE_FORWARDED") or url is None or url == self.own_url:
            return _json(503, {"error": f"partition {partition} has no owner right now "
                                        "(a rebalance); retry shortly"})  # fmt: skip
        target = url + environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
        headers = {FORWARDED: "1"}
        if environ.get("HTTP_AUTHORIZATION"):
            headers["Authorization"] = environ["HTTP_AUTHORIZATION"]
        request = urllib.request.Request(target, headers=headers)  # noqa: S310 - a peer's URL
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310
                return reply.status, {"Content-Type": "application/json"}, reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, {"Content-Type": "application/json"}, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            return _json(502, {"error": f"the owner of partition {partition} ({url}) did not "
                                        f"answer: {exc}"})  # fmt: skip


def history_path(key: EntityKey, score: str) -> str:
    """Where an entity's score history is served (``explain`` answers point to it)."""
    path = f"/scores/{key.kind}/{urllib.parse.quote(key.entity_id, safe='')}/history"
    query = {"score": score, **({"tenant": key.tenant_id} if key.tenant_id else {})}
    return f"{path}?{urllib.parse.urlencode(query)}"


def _history_args(query: dict[str, list[str]],
                  bound: int) -> tuple[tuple[str, int, int | None], str | None]:  # fmt: skip
    """(score, n, before) of a history request, or the reason for a 400."""
    name = (query.get("score") or [""])[0]
    raw_n, raw_before = (query.get("n") or [""])[0], (query.get("before") or [""])[0]
    limit = MAX_HISTORY_N if raw_before else max(bound, 1)
    n = min(history.DEFAULT_PER_SCORE, limit)
    if raw_n:
        if not raw_n.isdigit() or not 1 <= int(raw_n) <= limit:
            return ("", 0, None), f"n must be a whole number from 1 to {limit}"
        n = int(raw_n)
    if not raw_before:
        return (name, n, None), None
    if not name:
        return ("", 0, None), "before needs a score: ?score=NAME&before=SEQ"
    if not raw_before.isdigit() or len(raw_before) > 18:
        return ("", 0, None), "before must be a seq (a whole number)"
    return (name, n, int(raw_before)), None


def _plan_view(plan: Plan, source: str) -> dict[str, Any]:
    return {"version": plan.version, "source": source,
            "scores": [{"name": s.name, "entity": s.entity} for s in plan.scores],
            "matrices": [m.name for m in plan.matrices]}  # fmt: skip


class HttpServer:
    """waitress on a thread of its own; ``stop`` closes it."""

    def __init__(self, app: Callable[..., Iterable[bytes]], host: str, port: int,
                 threads: int = 2) -> None:  # fmt: skip
        self.server = create_server(app, host=host, port=port, threads=threads, ident="leadscore",
                                    clear_untrusted_proxy_headers=True)  # fmt: skip
        self.thread = threading.Thread(target=self.server.run, name="http", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.close()
