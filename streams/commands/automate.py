"""``leadscore automate``: a webhook bridge from ``score-changed`` to other teams' automations.

A YAML file (:class:`Automations`) names **endpoints** (URL, secret, concurrency, timeout, retry
policy) and **triggers** (a threshold of a score crossed up, down or either way, optionally for
some tenants or one entity kind). For each change a trigger matches, the bridge POSTs one JSON
payload to the trigger's endpoint; when several triggers of one endpoint match one change they
are listed in one delivery, so an endpoint gets each ``change_id`` at most once per attempt.

Each delivery carries:

- ``Idempotency-Key: <change_id>``: the same for every attempt and every redelivery after a
  crash; a receiver that honours it acts on each change once;
- ``X-Leadscore-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` keyed with
  the endpoint's secret (read from the environment variable the file names, never from the file);
- ``X-Leadscore-Delivery: <attempt number>``.

**Delivery**: 2xx is delivered. Timeouts, connection errors, 408, 429 and 5xx are retried with
exponential backoff and full jitter up to ``max_attempts``; other 4xx answers are not retried.
A delivery that fails for good is written to the bridge's dead-letter topic (the payload, the
endpoint, the attempts and the last error) before its change counts as done. Offsets are
committed only for changes whose deliveries are all done (delivered or dead-lettered), in order
per partition, so a crash (``kill -9``) redelivers at least every change not yet committed:
**at least once** to the endpoint, with the idempotency key to drop repeats.

Metrics on ``--port`` (``/metrics``, plus ``/healthz``): deliveries by endpoint and outcome,
attempts, delivery latency, deliveries in flight.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streams.client import ScoreChanged

log = logging.getLogger("leadscore.automate")
NAME = r"^[A-Za-z0-9._-]{1,100}$"
RETRIED_STATUS = frozenset({408, 429})


class AutomationsError(Exception):
    """The automations file is missing or invalid; the message names the file and each field."""


# ----- the file -------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Backoff(_Strict):
    initial_s: float = Field(0.5, gt=0, le=60)
    max_s: float = Field(30.0, gt=0, le=3600)
    multiplier: float = Field(2.0, ge=1, le=10)

    @model_validator(mode="after")
    def _ordered(self) -> Backoff:
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s}) is below initial_s ({self.initial_s})")
        return self


class Endpoint(_Strict):
    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")]
    secret_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
    concurrency: int = Field(4, ge=1, le=256)
    timeout_s: float = Field(10.0, gt=0, le=300)
    max_attempts: int = Field(8, ge=1, le=100)
    backoff: Backoff = Field(default_factory=lambda: Backoff.model_validate({}))


class Trigger(_Strict):
    """Fires on a threshold crossing (``threshold``, ``direction``) or on entering a tier
    (``tier``: the records of cause ``tier`` whose tier after is that one)."""

    name: Annotated[str, Field(pattern=NAME)]
    endpoint: str
    score: str
    threshold: str | None = None
    tier: str | None = None
    direction: Literal["up", "down", "any"] | None = None
    #: tenant ids (null: the default tenant); ``accounts``, the old name, is still read
    tenants: list[str | None] | None = None
    entity: Literal["contact", "deal", "account"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        """``accounts`` is the deprecated old name of ``tenants`` (docs/migration.md)."""
        if not isinstance(data, Mapping) or "accounts" not in data:
            return data
        data = dict(data)
        old = data.pop("accounts")
        if "tenants" in data and data["tenants"] != old:
            raise ValueError("tenants and accounts (its deprecated old name) differ: give "
                             "tenants only")  # fmt: skip
        log.warning("automations: trigger %r: accounts is deprecated, name it tenants",
                    data.get("name"))  # fmt: skip
        data["tenants"] = old
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        if (self.threshold is None) == (self.tier is None):
            raise ValueError("give either threshold or tier")
        if self.tier is not None and self.direction is not None:
            raise ValueError("direction applies to thresholds; a tier trigger fires on entering it")
        return self

    def matches(self, change: ScoreChanged) -> bool:
        if change.score != self.score:
            return False
        if self.entity is not None and change.entity != self.entity:
            return False
        if self.tenants is not None and change.tenant_id not in self.tenants:
            return False
        if self.tier is not None:
            return change.cause == "tier" and change.tier_after == self.tier
        direction = self.direction or "up"
        return change.crossed(self.threshold, None if direction == "any" else direction)


class Automations(_Strict):
    group: Annotated[str, Field(pattern=NAME)] = "leadscore-automate"
    dead_letter_topic: Annotated[str, Field(pattern=NAME)] = "leadscore-automate-dead-letters"
    #: changes read but not yet done, over all partitions; consumption pauses above it
    max_pending: int = Field(1000, ge=1, le=100_000)
    endpoints: dict[Annotated[str, Field(pattern=NAME)], Endpoint] = Field(min_length=1)
    triggers: list[Trigger] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> Automations:
        names = [t.name for t in self.triggers]
        for i, trigger in enumerate(self.triggers):
            if trigger.endpoint not in self.endpoints:
                raise ValueError(
                    f"triggers.{i}.endpoint: {trigger.endpoint!r} is not one of the endpoints "
                    f"{sorted(self.endpoints)}"
                )
            if trigger.name in names[:i]:
                raise ValueError(f"triggers.{i}.name: {trigger.name!r} is used twice")
        return self


def load_automations(
    path: Path, environ: Mapping[str, str] | None = None
) -> tuple[Automations, dict[str, bytes]]:
    """The file, validated, and each endpoint's secret from the environment; a secret variable
    that is unset or empty is an error naming it (the bridge cannot sign without it)."""
    config = read_automations(path)
    secrets, missing = endpoint_secrets(config, environ)
    if missing:
        raise AutomationsError(f"{path}: invalid automations:\n  " + "\n  ".join(missing))
    return config, secrets


def endpoint_secrets(
    config: Automations, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, bytes], list[str]]:
    """Each endpoint's secret from the environment, and a problem per variable unset or empty."""
    environ = os.environ if environ is None else environ
    secrets: dict[str, bytes] = {}
    missing = []
    for name, endpoint in config.endpoints.items():
        secret = environ.get(endpoint.secret_env, "")
        if not secret.strip():
            missing.append(f"endpoints.{name}.secret_env: the variable {endpoint.secret_env} "
                           "is not set (or empty)")  # fmt: skip
        secrets[name] = secret.encode()
    return secrets, missing


def read_automations(path: Path) -> Automations:
    """The file, validated (every mistake at once); secrets are not looked at."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AutomationsError(f"{path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise AutomationsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise AutomationsError(f"{path}: the top level must be a mapping (endpoints, triggers)")
    try:
        config = Automations.model_validate(document)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {message}" if where else message)
        raise AutomationsError(f"{path}: invalid automations:\n  " + "\n  ".join(lines)) from None
    return config


# ----- what is sent ---------------------------------------------------------------------------


def payload(change: ScoreChanged, triggers: list[str]) -> bytes:
    """The JSON body of one delivery: the change and the triggers it matched."""
    body = {
        "triggers": triggers,
        "change_id": change.change_id,
        "tenant_id": change.tenant_id,
        #: deprecated: the old name of tenant_id, the same value (docs/migration.md)
        "account_id": change.tenant_id,
        "entity": change.entity,
        "entity_id": change.entity_id,
        "score": change.score,
        "seq": change.seq,
        "old_value": change.old_value,
        "new_value": change.new_value,
        "cause": change.cause,
        "rule_ids": list(change.rule_ids),
        "thresholds": [{"name": t.name, "direction": t.direction} for t in change.thresholds],
        "occurred_at": change.occurred_at.isoformat().replace("+00:00", "Z"),
        "plan_version": change.plan_version,
        "tier_before": change.tier_before,
        "tier_after": change.tier_after,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: bytes, body: bytes, at: int) -> str:
    """``t=<at>,v1=<hex HMAC-SHA256 of "<at>.<body>">``: what a receiver recomputes and compares
    (constant time), rejecting old ``t`` values to stop replays."""
    mac = hmac.new(secret, f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def backoff_s(policy: Backoff, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Pause after failed attempt ``attempt`` (1-based): full jitter over the exponential cap."""
    cap = min(policy.max_s, policy.initial_s * policy.multiplier ** (attempt - 1))
    return cap * rand()


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    retry: bool
    error: str
    status: int | None = None


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> Attempt:
    # http(s) only: the file's URL pattern refuses any other scheme
    request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:  # noqa: S310
            answer.read()
            return Attempt(True, False, "", answer.status)
    except urllib.error.HTTPError as exc:
        retry = exc.code in RETRIED_STATUS or exc.code >= 500
        return Attempt(False, retry, f"HTTP {exc.code} {exc.reason}", exc.code)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Attempt(False, True, f"{type(exc).__name__}: {reason}"[:500])


# ----- the bridge -----------------------------------------------------------------------------


@dataclass
class _Pending:
    """One change read from Kafka: done when all its deliveries are done."""

    partition: int
    offset: int
    left: int


@dataclass
class Bridge:
    """The loop: read changes, deliver them concurrently, commit what is done, in order."""

    config: Automations
    secrets: dict[str, bytes]
    bootstrap_servers: str
    topic: str
    kafka_config: Mapping[str, Any] = field(default_factory=dict)
    #: the consumer's own settings besides ``kafka_config`` (its session timeout)
    consumer_config: Mapping[str, Any] = field(default_factory=dict)
    metrics: Any = None
    codec: Any = None  #: plain Avro unless given (the registry framing: streams.wire.registry)
    sleep: Callable[[float], None] = time.sleep
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: per partition, the offsets read and not yet committed, in order
    _open: dict[int, list[_Pending]] = field(default_factory=dict)
    _pending: int = 0

    def stop(self) -> None:
        self._stop.set()

    def run(self, *, idle_exit_s: float | None = None) -> None:
        from confluent_kafka import Consumer, Producer

        consumer = Consumer({
            "bootstrap.servers": self.bootstrap_servers, "group.id": self.config.group,
            "isolation.level": "read_committed", "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "partition.assignment.strategy": "cooperative-sticky",
            "log_level": 3, **self.kafka_config, **self.consumer_config,
        })  # fmt: skip
        producer = Producer({
            "bootstrap.servers": self.bootstrap_servers, "acks": "all",
            "enable.idempotence": True, "log_level": 3, **self.kafka_config,
        })  # fmt: skip
        pools = {
            name: ThreadPoolExecutor(max_workers=ep.concurrency, thread_name_prefix=f"ep-{name}")
            for name, ep in self.config.endpoints.items()
        }
        from streams.wire.codec import Codec

        codec = self.codec if self.codec is not None else Codec.load()
        consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                           on_lost=self._on_revoke)  # fmt: skip
        paused = False
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                self._commit(consumer)
                with self._lock:
                    pending = self._pending
                if not paused and pending >= self.config.max_pending:
                    consumer.pause(consumer.assignment())
                    paused = True
                elif paused and pending < self.config.max_pending // 2 + 1:
                    consumer.resume(consumer.assignment())
                    paused = False
                msg = consumer.poll(0.1)
                if msg is None:
                    if (idle_exit_s is not None and pending == 0
                            and time.monotonic() - idle_since >= idle_exit_s):  # fmt: skip
                        break
                    continue
                error = msg.error()
                if error is not None:
                    if error.fatal():
                        raise RuntimeError(f"reading {self.topic}: {error}")
                    continue
                idle_since = time.monotonic()
                self._take(msg, codec, pools, producer)
        finally:
            for pool in pools.values():
                pool.shutdown(wait=not self._stop.is_set(), cancel_futures=True)
            with contextlib.suppress(Exception):
                self._commit(consumer)
            producer.flush(10)
            consumer.close()

    # one change: which endpoints, then a delivery per endpoint in its pool
    def _take(self, msg: Any, codec: Any, pools: dict[str, ThreadPoolExecutor],
              producer: Any) -> None:  # fmt: skip
        partition, offset = msg.partition() or 0, msg.offset() or 0
        by_endpoint: dict[str, list[str]] = {}
        try:
            change = ScoreChanged.from_record(self._decode(codec, msg.value() or b""))
        except Exception as exc:  # not a score change: nothing to deliver, never a crash
            log.warning("skipping %s[%d]@%d: not a score change (%s)", self.topic, partition,
                        offset, exc)  # fmt: skip
        else:
            for trigger in self.config.triggers:
                if trigger.matches(change):
                    by_endpoint.setdefault(trigger.endpoint, []).append(trigger.name)
        with self._lock:
            item = _Pending(partition, offset, len(by_endpoint))
            self._open.setdefault(partition, []).append(item)
            self._pending += 1
        for endpoint, triggers in by_endpoint.items():
            pools[endpoint].submit(self._deliver, item, endpoint, change, payload(change, triggers),
                                   producer)  # fmt: skip

    def _decode(self, codec: Any, value: bytes) -> dict[str, Any]:
        """While the registry cannot be asked for a writer schema, wait and ask again."""
        from streams.wire.codec import RegistryError

        while True:
            try:
                record: dict[str, Any] = codec.decode(codec.score_changed, value)
                return record
            except RegistryError as exc:
                if self._stop.is_set():
                    raise
                log.warning("schema registry: %s: retrying in 1 s", exc)
                self._stop.wait(1.0)

    def _deliver(self, item: _Pending, endpoint_name: str, change: ScoreChanged, body: bytes,
                 producer: Any) -> None:  # fmt: skip
        endpoint = self.config.endpoints[endpoint_name]
        attempt, last = 0, Attempt(False, True, "not attempted")
        started = time.monotonic()
        while not self._stop.is_set() and attempt < endpoint.max_attempts:
            attempt += 1
            at = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": change.change_id,
                "X-Leadscore-Signature": signature(self.secrets[endpoint_name], body, at),
                "X-Leadscore-Delivery": str(attempt),
                "User-Agent": "leadscore-automate",
            }
            if self.metrics is not None:
                self.metrics.in_flight.labels(endpoint_name).inc()
            try:
                last = post(endpoint.url, body, headers, endpoint.timeout_s)
            finally:
                if self.metrics is not None:
                    self.metrics.in_flight.labels(endpoint_name).dec()
                    self.metrics.attempts.labels(endpoint_name).inc()
            if last.ok or not last.retry:
                break
            if attempt < endpoint.max_attempts:
                self._stop.wait(backoff_s(endpoint.backoff, attempt))
        if self._stop.is_set() and not last.ok:
            return  # stopping: not done, so not committed; delivered again after a restart
        outcome = "delivered" if last.ok else "dead_lettered"
        if not last.ok:
            letter = {"endpoint": endpoint_name, "url": endpoint.url, "attempts": attempt,
                      "error": last.error, "payload": json.loads(body)}  # fmt: skip
            producer.produce(
                self.config.dead_letter_topic, json.dumps(letter).encode(),
                key=change.change_id.encode(),
                headers=[("leadscore.error.reason", last.error.encode()),
                         ("leadscore.endpoint", endpoint_name.encode())],
            )  # fmt: skip
            if producer.flush(30) != 0:
                log.error("dead letter of %s for %s not acknowledged: not committing it",
                          change.change_id, endpoint_name)  # fmt: skip
                return
            log.warning("delivery of %s to %s failed after %d attempt(s): %s; dead-lettered",
                        change.change_id, endpoint_name, attempt, last.error)  # fmt: skip
        if self.metrics is not None:
            self.metrics.deliveries.labels(endpoint_name, outcome).inc()
            self.metrics.seconds.labels(endpoint_name).observe(time.monotonic() - started)
        self._done(item)

    def _done(self, item: _Pending) -> None:
        with self._lock:
            item.left = max(0, item.left - 1)

    def _commit(self, consumer: Any) -> None:
        """Commit, per partition, the offset after the last change of an unbroken done prefix."""
        from confluent_kafka import TopicPartition

        offsets = []
        with self._lock:
            for partition, items in self._open.items():
                done = 0
                while done < len(items) and items[done].left == 0:
                    done += 1
                if done:
                    offsets.append(
                        TopicPartition(self.topic, partition, items[done - 1].offset + 1)
                    )
                    del items[:done]
                    self._pending -= done
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as exc:  # a rebalance under way: the new owner redelivers
                log.info("commit skipped: %s", exc)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        log.info("assigned %s", sorted(tp.partition for tp in partitions))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """Partitions leave: commit their done prefix; forget the rest (redelivered elsewhere)."""
        self._commit(consumer)
        with self._lock:
            for tp in partitions:
                items = self._open.pop(tp.partition, [])
                self._pending -= len(items)


# ----- the command ----------------------------------------------------------------------------


@dataclass
class BridgeMetrics:
    registry: Any
    deliveries: Any
    attempts: Any
    seconds: Any
    in_flight: Any

    @classmethod
    def create(cls) -> BridgeMetrics:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        r = CollectorRegistry()
        return cls(
            registry=r,
            deliveries=Counter("leadscore_automate_deliveries",
                               "Deliveries done by endpoint and outcome (delivered, dead_lettered)",
                               ["endpoint", "outcome"], registry=r),
            attempts=Counter("leadscore_automate_attempts", "HTTP attempts, by endpoint",
                             ["endpoint"], registry=r),
            seconds=Histogram("leadscore_automate_delivery_seconds",
                              "From the first attempt to done (delivered or dead-lettered)",
                              ["endpoint"], registry=r,
                              buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)),
            in_flight=Gauge("leadscore_automate_in_flight", "HTTP requests in flight",
                            ["endpoint"], registry=r),
        )  # fmt: skip


def _serve(metrics: BridgeMetrics, host: str, port: int) -> Any:
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client import make_wsgi_app

    metrics_app = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == "/healthz":
            start("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        return metrics_app(environ, start)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = make_server(host, port, app, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()
    return server


def cmd_automate_check(path: str, environ: Mapping[str, str] | None = None) -> int:
    """``--check``: the file is checked (exit 2 on any mistake); a secret variable that is not
    set here only gets a warning, since the check may run where the secrets are not (CI, a
    laptop), while ``leadscore automate`` itself refuses to start without them."""
    try:
        config = read_automations(Path(path))
    except AutomationsError as exc:
        print(f"leadscore automate: {exc}", file=sys.stderr)
        return 2
    _, missing = endpoint_secrets(config, environ)
    for problem in missing:
        print(f"leadscore automate: warning: {path}: {problem}; running the bridge needs it",
              file=sys.stderr)  # fmt: skip
    print(f"{path}: OK: {len(config.triggers)} trigger(s), {len(config.endpoints)} endpoint(s)")
    return 0


def cmd_automate(path: str, *, port: int | None, idle_exit_s: float | None) -> int:
    from streams.engine.kafka import client_base_config, session_config
    from streams.errors import LeadscoreError
    from streams.settings import load_settings

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings()
        config, secrets = load_automations(Path(path))
    except (LeadscoreError, AutomationsError) as exc:
        print(f"leadscore automate: {exc}", file=sys.stderr)
        return 2
    from streams.wire.topics import TopicSpec, ensure_topics

    min_isr = "2" if settings.replication_factor >= 3 else "1"
    try:
        ensure_topics(settings, [TopicSpec(config.dead_letter_topic, settings.partitions,
                                           {"min.insync.replicas": min_isr})])  # fmt: skip
    except LeadscoreError as exc:
        print(f"leadscore automate: {exc}", file=sys.stderr)
        return 2
    from streams.wire.registry import registered_codec

    try:  # plain Avro, or the registry's wire format (nothing registered: the bridge only reads)
        codec = registered_codec(settings, outputs=False)
    except LeadscoreError as exc:
        print(f"leadscore automate: {exc}", file=sys.stderr)
        return 2
    metrics = BridgeMetrics.create()
    if port is not None:
        try:
            _serve(metrics, settings.web_host, port)
        except OSError as exc:
            print(f"leadscore automate: cannot serve metrics on {settings.web_host}:{port}: "
                  f"{exc.strerror}", file=sys.stderr)  # fmt: skip
            return 2
    kafka = {k: v for k, v in client_base_config(settings).items() if k != "bootstrap.servers"}
    bridge = Bridge(config, secrets, settings.bootstrap_servers, settings.topic_score_changed,
                    kafka_config={**kafka, "client.id": f"automate-{uuid.uuid4().hex[:8]}"},
                    consumer_config=session_config(settings),
                    metrics=metrics, codec=codec)  # fmt: skip
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: bridge.stop())
    print(f"leadscore automate: {len(config.triggers)} trigger(s) to {len(config.endpoints)} "
          f"endpoint(s), group {config.group}, reading {settings.topic_score_changed}",
          file=sys.stderr)  # fmt: skip
    try:
        bridge.run(idle_exit_s=idle_exit_s)
    except RuntimeError as exc:
        print(f"leadscore automate: {exc}", file=sys.stderr)
        return 1
    return 0


__all__ = [
    "Automations", "AutomationsError", "Bridge", "cmd_automate", "cmd_automate_check",
    "endpoint_secrets", "load_automations", "read_automations",
]  # fmt: skip
