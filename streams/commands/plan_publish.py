"""``leadscore plan publish --tenant T FILE`` and ``leadscore plan remove --tenant T``.

``publish`` validates the file here first (every mistake is printed and nothing is sent), then
writes its text to the ``plans`` topic keyed by the tenant; ``remove`` writes a tombstone (the
tenant goes back to the default plan). Both then wait (``--wait``, default 60 s) for the worker's
``plan-status`` record of that very publication and print it: ``accepted``, ``rejected`` with its
errors, or ``removed``. ``--account`` is the deprecated old name of ``--tenant``; a status
record's ``tenant`` was ``account`` before (both are read). Exit codes: 0 accepted or removed,
1 rejected or no status in time, 2 a bad file or bad settings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from streams.engine.kafka import client_base_config
from streams.engine.tenants import source_name
from streams.errors import LeadscoreError
from streams.scoring import PlanError, load_plan
from streams.scoring.plan.reader import MAX_PLAN_BYTES, plan_size_problem
from streams.settings import Settings, load_settings


def cmd_plan_publish(args: argparse.Namespace) -> int:
    prepared = prepare(args)
    if isinstance(prepared, int):
        return prepared
    settings, value = prepared
    return publish(settings, args.tenant, value, wait_s=args.wait)


def prepare(args: argparse.Namespace) -> tuple[Settings, bytes | None] | int:
    """What every ``plan`` command but ``check`` starts with: the tenant checked, the plan file
    (of ``publish``, or its ``--shadow``) read and checked, the settings loaded; else the exit
    code, the reason printed."""
    tenant: str = args.tenant
    if not tenant.strip() or len(tenant) > 200:
        print("leadscore plan: --tenant must name the tenant (1-200 characters)",
              file=sys.stderr)  # fmt: skip
        return 2
    value: bytes | None = None
    if args.plan_command == "publish":
        shadow = getattr(args, "shadow", None)
        if (args.file is None) == (shadow is None):
            print("leadscore plan publish: give the plan FILE, or --shadow FILE (not both)",
                  file=sys.stderr)  # fmt: skip
            return 2
        value = read_plan(Path(shadow or args.file), tenant)
        if value is None:
            return 2
    try:
        return load_settings(), value
    except LeadscoreError as exc:
        print(f"leadscore plan: {exc}", file=sys.stderr)
        return 2


def publish(settings: Settings, tenant: str, value: bytes | None, *, wait_s: float,
            headers: list[tuple[str, bytes]] | None = None,
            key: bytes | None = None) -> int:  # fmt: skip
    """Write one ``plans`` record (keyed by the tenant, or ``key``) and print the worker's
    status of it (the exit code)."""
    status_reader = None
    try:
        status_reader = StatusReader(settings) if wait_s > 0 else None
        partition, offset = _produce(settings, key or tenant.encode(), value, headers)
        where = f"{settings.topic_plans}[{partition}]@{offset}"
        print(f"published to {where}", file=sys.stderr)
        if status_reader is None:
            return 0
        status = status_reader.wait((settings.topic_plans, partition, offset), wait_s)
    except (RuntimeError, KafkaException) as exc:
        print(f"leadscore plan: {exc}", file=sys.stderr)
        return 1
    finally:
        if status_reader is not None:
            status_reader.close()
    if status is None:
        print(f"leadscore plan: no plan-status for {where} within {wait_s:g} s (is a worker "
              "running?)", file=sys.stderr)  # fmt: skip
        return 1
    print(json.dumps(status, indent=2))
    return 0 if status["status"] in ("accepted", "removed") else 1


def read_plan(path: Path, tenant: str) -> bytes | None:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_PLAN_BYTES + 1)  # no further: a larger plan is refused
            size = max(len(raw), os.fstat(handle.fileno()).st_size)
    except OSError as exc:
        print(f"leadscore plan: cannot read {path} ({exc.strerror})", file=sys.stderr)
        return None
    too_big = plan_size_problem(size)  # the limit of plan check, the topic and the worker
    if too_big is not None:
        print(f"invalid plan (nothing published): {path}: {too_big}", file=sys.stderr)
        return None
    try:
        plan = load_plan(raw.decode(), source=str(path))
    except UnicodeDecodeError as exc:
        print(f"invalid plan: {path}: not UTF-8 text ({exc.reason} at byte {exc.start})",
              file=sys.stderr)  # fmt: skip
        return None
    except PlanError as exc:
        print(f"invalid plan (nothing published):\n{exc}", file=sys.stderr)
        return None
    print(f"{path}: valid, version {plan.version}, for tenant {tenant} "
          f"({source_name(tenant)})", file=sys.stderr)  # fmt: skip
    return raw


def _produce(settings: Settings, key: bytes, value: bytes | None,
             headers: list[tuple[str, bytes]] | None) -> tuple[int, int]:  # fmt: skip
    """Write the record (idempotent producer, all replicas); returns its partition and offset."""
    producer = Producer({**client_base_config(settings), "enable.idempotence": True, "acks": "all"})
    delivered: list[Any] = []
    producer.produce(settings.topic_plans, value, key, headers=list(headers or ()),
                     on_delivery=lambda err, msg: delivered.append((err, msg)))  # fmt: skip
    producer.flush(settings.kafka_call_timeout_s)
    if not delivered:
        raise RuntimeError(f"the record was not delivered to {settings.topic_plans} within "
                           f"{settings.kafka_call_timeout_s:g} s")  # fmt: skip
    err, msg = delivered[0]
    if err is not None:
        raise RuntimeError(f"publishing to {settings.topic_plans} failed: {err}")
    return msg.partition(), msg.offset()


class StatusReader:
    """Reads ``plan-status`` from where it ended before the publication: the status of a record
    is written after it, so nothing of ours is skipped."""

    def __init__(self, settings: Settings) -> None:
        topic = settings.topic_plan_status
        timeout = settings.kafka_call_timeout_s
        base = client_base_config(settings)
        self.consumer = Consumer({**base, "group.id": "leadscore-plan-publish",
                                  "enable.auto.commit": False,
                                  "isolation.level": "read_committed"})  # fmt: skip
        found = self.consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if found is None or found.error is not None:
            self.consumer.close()
            raise RuntimeError(f"topic {topic} is not there (has a worker ever started?)")
        starts = []
        for p in sorted(found.partitions):
            _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout)
            starts.append(TopicPartition(topic, p, high))
        self.consumer.assign(starts)

    def wait(self, source: tuple[str, int, int], timeout_s: float) -> dict[str, Any] | None:
        """The status the worker wrote for the ``plans`` record at ``source``, or None."""
        want = {"topic": source[0], "partition": source[1], "offset": source[2]}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = self.consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"reading the plan status failed: {err}")
            try:
                status: dict[str, Any] = json.loads(msg.value() or b"")
            except ValueError:
                continue
            if status.get("source") == want:
                return status_of(status)
        return None

    def close(self) -> None:
        self.consumer.close()


def status_of(record: dict[str, Any]) -> dict[str, Any]:
    """A ``plan-status`` record with the tenant as ``tenant``: workers before the rename wrote it
    as ``account`` (docs/migration.md)."""
    if "tenant" in record or "account" not in record:
        return record
    return {("tenant" if name == "account" else name): value for name, value in record.items()}
