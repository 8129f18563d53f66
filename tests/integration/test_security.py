"""The service over SASL_SSL (SCRAM-SHA-512 over TLS) against the secure broker that
``deploy/kafka/kafka.sh secure-up`` starts (certificates and users made by the script, the
StandardAuthorizer with ``allow.everyone.if.no.acl.found=false``).

- End to end: the worker, as user ``leadscore`` with ACLs on exactly its own topics, group and
  transactional ids, scores visits and publishes its changes.
- The same user cannot read a topic it has no ACL for.
- A wrong password stops the worker at start-up within seconds, with one line naming the
  settings to fix; so does a missing ACL, naming the principal and what it needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from streams.settings import Settings
from streams.wire.codec import Codec, Source
from streams.wire.topics import required_topics
from tests.integration.service import REPO, Service

KAFKA = REPO / "deploy" / "kafka" / "kafka.sh"


def kafka_sh(*args: str, env: dict[str, str] | None = None,
             timeout: float = 240) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run([str(KAFKA), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def secure() -> Iterator[dict[str, dict[str, str]]]:
    """The LEADSCORE_* settings of users admin and leadscore on the secure broker (started here,
    on free ports if 9192/9193 are taken, and stopped after, unless it was running)."""
    env: dict[str, str] = {}
    started = kafka_sh("secure-status").returncode != 0
    if started:
        if kafka_sh("secure-ports-free").returncode != 0:
            env["KAFKA_SECURE_PORT"] = kafka_sh("free-secure-port").stdout.strip()
        up = kafka_sh("secure-up", env=env)
        assert up.returncode == 0, up.stderr
    try:
        yield {user: settings_of(kafka_sh("secure-env", user, env=env).stdout)
               for user in ("admin", "leadscore")}  # fmt: skip
    finally:
        if started:
            kafka_sh("secure-down", env=env)


def settings_of(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.split())


def client_config(env: dict[str, str]) -> dict[str, Any]:
    return {"bootstrap.servers": env["LEADSCORE_BOOTSTRAP_SERVERS"],
            "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": env["LEADSCORE_KAFKA_SASL_USERNAME"],
            "sasl.password": env["LEADSCORE_KAFKA_SASL_PASSWORD"],
            "ssl.ca.location": env["LEADSCORE_KAFKA_SSL_CA_LOCATION"], "log_level": 2}  # fmt: skip


def grant(admin_env: dict[str, str], service: Service) -> list[str]:
    """ACLs for User:leadscore on exactly this deployment: its topics, its groups (app id
    prefix), its transactional ids (app id prefix). Returns the topic names."""
    settings = Settings(**{k.removeprefix("LEADSCORE_").lower(): v
                           for k, v in service.env("w1", 1).items()})  # fmt: skip
    topics = [spec.name for spec in required_topics(settings)]
    principal, host = "User:leadscore", "*"
    allow = AclPermissionType.ALLOW
    bindings = [AclBinding(ResourceType.TOPIC, name, ResourcePatternType.LITERAL, principal, host,
                           AclOperation.ALL, allow) for name in topics]  # fmt: skip
    for kind in (ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID):
        bindings.append(AclBinding(kind, service.app_id, ResourcePatternType.PREFIXED, principal,
                                   host, AclOperation.ALL, allow))  # fmt: skip
    admin = AdminClient(client_config(admin_env))
    for future in admin.create_acls(bindings, request_timeout=30).values():
        future.result()
    return topics


def ready(worker: Any) -> bool:
    try:
        return bool(worker.get("/readyz")[0] == 200)
    except OSError:
        return False


def test_the_service_end_to_end_over_sasl_ssl(secure: dict[str, dict[str, str]],
                                              tmp_path: Path) -> None:  # fmt: skip
    admin_env, user_env = secure["admin"], secure["leadscore"]
    service = Service(admin_env["LEADSCORE_BOOTSTRAP_SERVERS"], uuid.uuid4().hex[:12], tmp_path,
                      partitions=2)  # fmt: skip
    grant(admin_env, service)
    worker = service.worker()
    worker.env = {**worker.env, **user_env}
    worker.start()
    codec = Codec.load()
    try:
        # the worker creates its topics itself: it may, on exactly those
        deadline = time.monotonic() + 90
        while not ready(worker):
            worker.assert_alive()
            assert time.monotonic() < deadline, worker.tail()
            time.sleep(0.5)
        producer = Producer(client_config(admin_env))
        now = int(time.time() * 1000)
        for i in range(20):
            record = {"event_id": f"s{i}", "occurred_at": now + i, "tenant_id": None,
                      "contact_id": f"c-{i % 4}", "deal_id": None,
                      "url": "https://x.io/pricing"}  # fmt: skip
            producer.produce(service.topic(Source.PAGE_VISITS),
                             codec.encode(codec.inputs[Source.PAGE_VISITS], record))  # fmt: skip
        assert producer.flush(30) == 0
        consumer = Consumer({**client_config(admin_env), "group.id": f"check-{service.unique}",
                             "auto.offset.reset": "earliest",
                             "isolation.level": "read_committed"})  # fmt: skip
        consumer.subscribe([service.changed])
        changes: list[dict[str, Any]] = []
        deadline = time.monotonic() + 90
        while len(changes) < 20 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                changes.append(codec.decode(codec.score_changed, msg.value() or b""))
        consumer.close()
        worker.assert_alive()
    finally:
        service.stop_all()
    # 5 visits per contact: pricing 30 once (capped per day) + 1 per visit = 35 each
    finals: dict[str, int] = {}
    for change in changes:
        if change["score"] == "engagement":
            finals[change["entity_id"]] = change["new_value"]
    assert finals == {f"c-{i}": 35 for i in range(4)}


def test_the_worker_user_cannot_read_other_topics(secure: dict[str, dict[str, str]]) -> None:
    admin_env, user_env = secure["admin"], secure["leadscore"]
    secret = f"not-yours-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(client_config(admin_env))
    admin.create_topics([NewTopic(secret, 1, 1)])[secret].result(30)
    producer = Producer(client_config(admin_env))
    producer.produce(secret, b"payroll")
    assert producer.flush(30) == 0
    consumer = Consumer({**client_config(user_env), "group.id": f"ls-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([secret])
    errors: list[int] = []
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        assert msg is None or msg.error() is not None, "the worker user read a foreign topic"
        if msg is not None:
            errors.append(msg.error().code())
    consumer.close()
    assert errors and errors[0] in (KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                    KafkaError.GROUP_AUTHORIZATION_FAILED)  # fmt: skip


def run_worker(
    env: dict[str, str], tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], float]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("LEADSCORE_")}
    env = {**clean, **env, "LEADSCORE_DATA_DIR": str(tmp_path / "w")}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "streams.cli", "worker"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    return done, time.monotonic() - started


def test_a_wrong_password_stops_the_worker_at_once(secure: dict[str, dict[str, str]],
                                                   tmp_path: Path) -> None:  # fmt: skip
    env = {**secure["leadscore"], "LEADSCORE_KAFKA_SASL_PASSWORD": "not-the-password",
           "LEADSCORE_APP_ID": f"ls-{uuid.uuid4().hex[:8]}"}  # fmt: skip
    done, took_s = run_worker(env, tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("leadscore worker:")]
    assert "refused the connection as User:leadscore" in line
    assert "Authentication failed" in line and "LEADSCORE_KAFKA_SASL_PASSWORD" in line
    assert "not-the-password" not in done.stderr + done.stdout
    print(f"wrong password: the worker stopped after {took_s:.1f} s")


def test_a_missing_acl_stops_the_worker_naming_what_it_needs(secure: dict[str, dict[str, str]],
                                                             tmp_path: Path) -> None:  # fmt: skip
    env = {**secure["leadscore"], "LEADSCORE_APP_ID": f"ls-{uuid.uuid4().hex[:8]}",
           "LEADSCORE_TOPIC_PAGE_VISITS": f"pv-{uuid.uuid4().hex[:8]}"}  # fmt: skip
    done, _ = run_worker(env, tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("leadscore worker:")]
    assert "Authorization failed" in line
    assert "the principal User:leadscore needs an ACL that allows CREATE and DESCRIBE" in line
