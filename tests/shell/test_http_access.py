"""Who may call what on the HTTP API (``streams.queries.Api``), with a fake engine: with a token
set, everything but ``/healthz`` and ``/readyz`` needs it (``/metrics`` only by its own setting),
checked before anything else; without one, everything is open."""

from __future__ import annotations

from typing import Any

import pytest

from streams.errors import SettingsError
from streams.metrics import Metrics
from streams.queries import Api
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
         "/nowhere", "/scores/planet/p-1"]  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "without", "with_token"),
    [
        # (an entity without state answers 404; explain without ?score= answers 400)
        ({}, [200, 200, 200, 404, 400, 404, 400], [200, 200, 200, 404, 400, 404, 400]),
        ({"api_token": TOKEN}, [200, 200, 200, 401, 401, 401, 401],
         [200, 200, 200, 404, 400, 404, 400]),
        ({"api_token": TOKEN, "metrics_require_token": True},
         [200, 200, 401, 401, 401, 401, 401], [200, 200, 200, 404, 400, 404, 400]),
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
