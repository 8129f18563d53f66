"""The schema registry: a small client of the Confluent-compatible REST API, and the start-up step.

Off unless ``LEADSCORE_SCHEMA_REGISTRY_URL`` is set. The URL is the base of the Confluent API:
``http://host:8081`` for Confluent Schema Registry or Karapace, ``http://host:8080/apis/ccompat/v6``
(or ``v7``) for Apicurio Registry. Two calls are used, each with the timeout
``LEADSCORE_SCHEMA_REGISTRY_TIMEOUT_S``:

- ``POST /subjects/<subject>/versions`` registers our schemas at start-up (outputs for the worker,
  inputs for ``leadscore demo``), subject ``<topic>-value`` (TopicNameStrategy);
- ``GET /schemas/ids/<id>`` fetches the writer schema of an input, once per id (cached).

Start-up stops with one line naming the variable and the URL when the registry is unreachable or
refuses a schema (:func:`registered_codec`).
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any

from streams.errors import StartupError
from streams.settings import Settings
from streams.wire.codec import Codec, RegistryError, SchemaNotFound, Source
from streams.wire.topics import input_topics

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class HttpRegistry:
    """The Confluent-compatible REST API over ``urllib``; every call has a timeout."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._auth: str | None = None
        if username is not None and password is not None:
            token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            self._auth = f"Basic {token}"

    def register(self, subject: str, schema: str) -> int:
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
        answer = self._call("POST", path, {"schema": schema})
        schema_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(schema_id, int):
            raise RegistryError(f"POST {self.shown(path)} answered without an id: {answer!r}"[:300])
        return schema_id

    def schema(self, schema_id: int) -> tuple[str, str]:
        answer = self._call("GET", f"/schemas/ids/{schema_id}")
        text = answer.get("schema") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise RegistryError(f"schema id {schema_id}: no schema in the answer: {answer!r}"[:300])
        return str(answer.get("schemaType") or "AVRO"), text

    def subjects(self) -> list[str]:
        answer = self._call("GET", "/subjects")
        return [str(s) for s in answer] if isinstance(answer, list) else []

    def _call(self, method: str, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        # The scheme is http or https: the setting's pattern allows nothing else.
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        request.add_header("Accept", f"{CONTENT_TYPE}, application/json")
        if data is not None:
            request.add_header("Content-Type", CONTENT_TYPE)
        if self._auth is not None:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            if exc.code == 404 and path.startswith("/schemas/ids/"):
                raise SchemaNotFound(f"{method} {self.shown(path)}: {detail}") from None
            raise RegistryError(f"{method} {self.shown(path)}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            # refused, reset, timed out, a broken HTTP answer, not JSON
            reason = getattr(exc, "reason", exc)
            raise RegistryError(f"{method} {self.shown(path)}: {reason}") from None

    def shown(self, path: str = "") -> str:
        """The URL without user info (a password in the URL is never printed)."""
        parts = urllib.parse.urlsplit(self.url + path)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        return exc.reason if isinstance(exc.reason, str) else str(exc.reason)
    if isinstance(body, dict) and body.get("message"):
        code = body.get("error_code")
        return f"{body['message']}" + (f" (error_code {code})" if code else "")
    return str(exc.reason)


def client(settings: Settings, url: str) -> HttpRegistry:
    password = settings.schema_registry_password
    return HttpRegistry(
        url,
        timeout_s=settings.schema_registry_timeout_s,
        username=settings.schema_registry_username,
        password=password.get_secret_value() if password is not None else None,
    )


def subject(topic: str) -> str:
    """TopicNameStrategy: the subject of a topic's values."""
    return f"{topic}-value"


def registered_codec(settings: Settings, *, outputs: bool = True, inputs: bool = False) -> Codec:
    """The codec the settings ask for: plain Avro, or the registry framing with our schemas
    registered (the outputs for a worker, the Avro inputs for the demo producer).

    Raises :class:`StartupError` with one line naming ``LEADSCORE_SCHEMA_REGISTRY_URL`` when the
    registry cannot be reached or refuses a schema.
    """
    codec = Codec.load()
    if settings.schema_registry_url is None:
        return codec
    registry = client(settings, settings.schema_registry_url)
    subjects: dict[str, Any] = {}
    if outputs:
        subjects[subject(settings.topic_score_changed)] = codec.score_changed
        subjects[subject(settings.topic_scores)] = codec.score
    if inputs:
        subjects.update(_input_subjects(settings, codec, input_topics(settings).items()))
    try:
        if not subjects:
            registry.subjects()  # reachable at least
        return codec.registered(registry, subjects)
    except RegistryError as exc:
        raise StartupError(
            f"LEADSCORE_SCHEMA_REGISTRY_URL: the schema registry at {registry.shown()} "
            f"cannot be used: {exc}"
        ) from None


def _input_subjects(
    settings: Settings, codec: Codec, topics: Iterable[tuple[str, Source]]
) -> dict[str, Any]:
    return {
        subject(topic): codec.inputs[source]
        for topic, source in topics
        if settings.input_format(topic) == "avro"
    }
