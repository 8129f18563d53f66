"""Who may call what on the HTTP API (``streams.api.http.Api``), with a fake engine: with a token
set, everything but ``/healthz`` and ``/readyz`` needs it (``/metrics`` only by its own setting),
checked before anything else; without one, everything is open."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streams.api.http import Api
from streams.errors import SettingsError
from streams.metrics import Metrics
from streams.scoring import EntityState, load_plan
from streams.settings import Settings, load_settings

PLAN = load_plan("scores: [{name: s, entity: contact, rules: []}]", source="t.yaml")
TOKEN = "t0ken"  # noqa: S105 - a test token


class FakeEngine:
    ready = True
    entity_partitions = 1

    def read_state(self, key: bytes) -> tuple[str, EntityState | None]:
        return "local", None

    def entity_partition(self, key: bytes) -> int:
        return 0


def call(api: Api, path: str, token: str | None = None) -> int:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": ""}
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    statuses: list[str] = []
    api(environ, lambda status, headers: statuses.append(status))  # type: ignore[arg-type,return-value]
    return int(statuses[0].split()[0])


def api(**settings: Any) -> Api:
    return Api(Settings(**settings), PLAN, FakeEngine(), Metrics.create(), None)


PATHS = ["/healthz", "/readyz", "/metrics", "/scores/contact/c-1", "/scores/contact/c-1/explain",
         "/nowhere", "/scores/planet/p-1", "/plans", "/top/contact"]  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "without", "with_token"),
    [
        # (an entity without state answers 404; explain and top without ?score= answer 400)
        ({}, [200, 200, 200, 404, 400, 404, 400, 200, 400],
         [200, 200, 200, 404, 400, 404, 400, 200, 400]),
        ({"api_token": TOKEN}, [200, 200, 200, 401, 401, 401, 401, 401, 401],
         [200, 200, 200, 404, 400, 404, 400, 200, 400]),
        ({"api_token": TOKEN, "metrics_require_token": True},
         [200, 200, 401, 401, 401, 401, 401, 401, 401],
         [200, 200, 200, 404, 400, 404, 400, 200, 400]),
    ],
)  # fmt: skip
def test_access(settings: dict[str, Any], without: list[int], with_token: list[int]) -> None:
    server = api(**settings)
    assert [call(server, p) for p in PATHS] == without
    assert [call(server, p, TOKEN) for p in PATHS] == with_token
    if "api_token" in settings:
        assert [call(server, p, TOKEN + "x") for p in PATHS] == without  # a wrong token


def test_metrics_token_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSCORE_METRICS_REQUIRE_TOKEN", "true")
    with pytest.raises(SettingsError, match="needs LEADSCORE_API_TOKEN"):
        load_settings()


class RecordingEngine(FakeEngine):
    """Remembers the tenant of every entity it is asked for."""

    def __init__(self) -> None:
        self.asked: list[str | None] = []

    def read_state(self, key: bytes) -> tuple[str, EntityState | None]:
        from streams.wire.records import entity_key_from_bytes

        self.asked.append(entity_key_from_bytes(key).tenant_id)
        return "local", None


ACME, GLOBEX = "acme-t0ken", "globex-t0ken"
TENANTS = f"acme={ACME}, globex={GLOBEX}"


@pytest.mark.parametrize(
    ("token", "query", "status", "asked"),
    [
        (ACME, "", 404, ["acme"]),  # a tenant's own tenant by default
        (ACME, "tenant=acme", 404, ["acme"]),
        (ACME, "tenant=globex", 404, []),  # another tenant: as if it did not exist; not read
        (ACME, "tenant=", 404, ["acme"]),
        (GLOBEX, "tenant=acme", 404, []),
        (TOKEN, "tenant=globex", 404, ["globex"]),  # the API token reads every tenant
        (TOKEN, "", 404, [None]),
        (ACME + "x", "tenant=acme", 401, []),
        (None, "tenant=acme", 401, []),
        # ?account=, the deprecated old name of ?tenant= (docs/migration.md), still works
        (ACME, "account=acme", 404, ["acme"]),
        (ACME, "account=globex", 404, []),
        (GLOBEX, "account=acme", 404, []),
        (TOKEN, "account=globex", 404, ["globex"]),
        (TOKEN, "tenant=globex&account=globex", 404, ["globex"]),  # both, the same: fine
        (TOKEN, "tenant=globex&account=", 404, ["globex"]),
    ],
)
def test_a_tenant_token_reads_its_own_tenant_only(
    token: str | None, query: str, status: int, asked: list[str | None]
) -> None:
    engine = RecordingEngine()
    server = Api(Settings(api_token=TOKEN, tenant_tokens=TENANTS), PLAN, engine,
                 Metrics.create(), None)  # fmt: skip
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/scores/contact/c-1",
                               "QUERY_STRING": query}  # fmt: skip
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    statuses: list[str] = []
    body = b"".join(server(environ, lambda s, h: statuses.append(s)))  # type: ignore[arg-type,return-value]
    assert int(statuses[0].split()[0]) == status
    assert engine.asked == asked
    assert b"globex" not in body and b"acme" not in body  # not even the name of another tenant


@pytest.mark.parametrize("path", ["/scores/contact/c-1", "/scores/contact/c-1/explain",
                                  "/top/contact"])  # fmt: skip
@pytest.mark.parametrize("token", [TOKEN, ACME])
def test_tenant_and_its_old_name_account_differing_is_a_bad_request(path: str, token: str) -> None:
    engine = RecordingEngine()
    server = Api(Settings(api_token=TOKEN, tenant_tokens=TENANTS), PLAN, engine,
                 Metrics.create(), None)  # fmt: skip
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": path,
                               "QUERY_STRING": "score=engagement&tenant=acme&account=initech",
                               "HTTP_AUTHORIZATION": f"Bearer {token}"}  # fmt: skip
    statuses: list[str] = []
    body = b"".join(server(environ, lambda s, h: statuses.append(s)))  # type: ignore[arg-type,return-value]
    assert statuses[0].startswith("400 ")
    assert json.loads(body) == {
        "error": "?tenant='acme' and ?account='initech' differ: account "
        "is the deprecated old name of tenant; give tenant only"
    }
    assert engine.asked == []


def test_tenant_tokens_without_an_api_token_still_guard_everything() -> None:
    server = Api(Settings(tenant_tokens=TENANTS, metrics_require_token=False), PLAN,
                 RecordingEngine(), Metrics.create(), None)  # fmt: skip
    assert [call(server, p) for p in PATHS] == [200, 200, 200, 401, 401, 401, 401, 401, 401]
    assert [call(server, p, ACME) for p in PATHS] == [200, 200, 200, 404, 400, 404, 400, 200, 400]


def test_metrics_behind_the_token_are_for_the_operator_not_for_tenants() -> None:
    server = api(api_token=TOKEN, tenant_tokens=TENANTS, metrics_require_token=True)
    assert call(server, "/metrics", TOKEN) == 200
    assert call(server, "/metrics", ACME) == 404


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("acme", "pair 1 must be tenant=token"),
        ("acme=a1,=b2", "pair 2 must be tenant=token"),
        ("acme=", "pair 1 must be tenant=token"),
        ("acme=a1,acme=b2", "tenant 'acme' is given twice"),
        ("acme=a1,globex=a1", "tenant 'globex' has the token of tenant 'acme'"),
        (f"acme={TOKEN}", "equals LEADSCORE_API_TOKEN"),
    ],
)
def test_bad_tenant_tokens_fail_at_start_up_without_showing_a_token(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("LEADSCORE_API_TOKEN", TOKEN)
    monkeypatch.setenv("LEADSCORE_TENANT_TOKENS", value)
    with pytest.raises(SettingsError, match=message) as caught:
        load_settings()
    text = str(caught.value)
    assert "LEADSCORE_TENANT_TOKENS" in text
    assert "a1" not in text.replace("acme", "") and "b2" not in text and TOKEN not in text


def test_plans_names_the_plan_every_tenant_runs() -> None:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/plans", "QUERY_STRING": ""}
    status, _, body = api().route(environ)  # type: ignore[arg-type]
    view = json.loads(body)
    assert status == 200 and view["tenants"] == {}
    assert view["default"]["version"] == PLAN.version
    assert view["default"]["scores"] == [{"name": s.name, "entity": s.entity} for s in PLAN.scores]
