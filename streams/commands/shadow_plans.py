"""``leadscore plan publish --tenant T --shadow FILE``, ``plan promote --tenant T`` and ``plan
discard --tenant T``: a tenant's shadow (challenger) plans (``streams.engine.shadows``).

A shadow is a record of the ``plans`` topic under a key of its own per tenant and version, so the
commands find a tenant's shadows by reading that (compacted, one-partition) topic to its end:

- ``publish --shadow`` writes the plan there, after checking it as ``publish`` does and that the
  tenant runs fewer than ``LEADSCORE_SHADOWS_PER_TENANT`` other shadows;
- ``discard`` writes a tombstone: each partition drops the shadow's states;
- ``promote`` publishes the shadow's text as the tenant's plan with the recompute cut-over of
  ``replay --apply`` (from ``--from-time``, by default the time the shadow was published, so the
  recompute covers the shadow's whole life), then discards the shadow.

Each waits for the worker's ``plan-status`` of its records and prints them (exit 0: accepted or
removed; 1: rejected or no status; 2: bad arguments).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.commands.options import instant_option
from streams.commands.plan_publish import prepare, publish
from streams.engine.kafka import client_base_config
from streams.engine.shadows import parse_plans_key, plans_key
from streams.engine.tenants import RECOMPUTE_HEADER
from streams.scoring import load_plan
from streams.settings import Settings
from streams.wire.reading import poll_message


@dataclass(frozen=True, slots=True)
class Shadow:
    version: str
    text: str
    published_ms: int  # the Kafka timestamp of its plans record


def cmd_plan_shadow(args: argparse.Namespace) -> int:
    """``plan publish --shadow``, ``plan promote`` and ``plan discard``."""
    prepared = prepare(args)
    if isinstance(prepared, int):
        return prepared
    settings, value = prepared
    tenant: str = args.tenant
    from_ms = None
    if getattr(args, "from_time", None) is not None:
        from_ms = instant_option(args.from_time, "plan promote", "--from-time")
        if from_ms is None:
            return 2
    try:
        running = shadows_of(settings, tenant, timeout_s=settings.kafka_call_timeout_s)
    except RuntimeError as exc:
        print(f"leadscore plan: {exc}", file=sys.stderr)
        return 1
    if args.plan_command == "publish" and value is not None:  # read and checked by prepare
        return _publish(settings, tenant, value, running, wait_s=args.wait)
    shadow = _chosen(tenant, running, args.version)
    if shadow is None:
        return 2
    discard = plans_key(tenant, shadow.version)
    if args.plan_command == "discard":
        return publish(settings, tenant, None, wait_s=args.wait, key=discard)
    if from_ms is None:  # the shadow's whole life
        from_ms = shadow.published_ms
    print(f"promoting tenant {tenant}'s shadow plan {shadow.version}: its plan from now on, "
          f"recomputed from {from_ms} (epoch ms)", file=sys.stderr)  # fmt: skip
    code = publish(settings, tenant, shadow.text.encode(), wait_s=args.wait,
                   headers=[(RECOMPUTE_HEADER, str(from_ms).encode())])  # fmt: skip
    if code != 0:
        print("leadscore plan promote: the plan was not accepted; the shadow runs on",
              file=sys.stderr)  # fmt: skip
        return code
    return publish(settings, tenant, None, wait_s=args.wait, key=discard)


def _publish(settings: Settings, tenant: str, value: bytes, running: dict[str, Shadow], *,
             wait_s: float) -> int:  # fmt: skip
    version = load_plan(value.decode(), source="shadow").version  # checked by the caller
    others = sorted(v for v in running if v != version)
    if len(others) >= settings.shadows_per_tenant:
        print(f"leadscore plan publish: tenant {tenant} runs {len(others)} shadow plan(s) "
              f"({', '.join(others) or 'none'}) and LEADSCORE_SHADOWS_PER_TENANT allows "
              f"{settings.shadows_per_tenant}: discard one first (leadscore plan discard)",
              file=sys.stderr)  # fmt: skip
        return 2
    print(f"as tenant {tenant}'s shadow plan {version} (changes on "
          f"{settings.topic_score_changed_shadow} only)", file=sys.stderr)  # fmt: skip
    return publish(settings, tenant, value, wait_s=wait_s, key=plans_key(tenant, version))


def _chosen(tenant: str, running: dict[str, Shadow], version: str | None) -> Shadow | None:
    if version is not None:
        found = running.get(version)
        if found is None:
            print(f"leadscore plan: tenant {tenant} runs no shadow plan {version} (it runs: "
                  f"{', '.join(sorted(running)) or 'none'})", file=sys.stderr)  # fmt: skip
        return found
    if len(running) == 1:
        return next(iter(running.values()))
    if not running:
        print(f"leadscore plan: tenant {tenant} runs no shadow plan", file=sys.stderr)
    else:
        print(f"leadscore plan: tenant {tenant} runs {len(running)} shadow plans: give "
              f"--version, one of {', '.join(sorted(running))}", file=sys.stderr)  # fmt: skip
    return None


def shadows_of(settings: Settings, tenant: str, *, timeout_s: float) -> dict[str, Shadow]:
    """The tenant's shadows as the ``plans`` topic holds them now: version -> shadow (the last
    record of each key wins; a tombstone discards)."""
    topic = settings.topic_plans
    consumer = Consumer({**client_base_config(settings), "group.id": "leadscore-plan-shadows",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_committed"})  # fmt: skip
    found: dict[str, Shadow] = {}
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise RuntimeError(f"topic {topic} is not there (has a worker ever started?)")
        pending = set(metadata.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {topic} was not read to its end in {timeout_s:g} s")
            msg, fatal = poll_message(consumer, pending)
            if fatal is not None:
                raise RuntimeError(f"reading {topic} failed: {fatal}")
            if msg is None:
                continue
            parsed = parse_plans_key((msg.key() or b"").decode(errors="replace"))
            if parsed is None or parsed[0] != tenant:
                continue
            value = msg.value()
            if value is None:
                found.pop(parsed[1], None)
            else:
                found[parsed[1]] = Shadow(parsed[1], value.decode(errors="replace"),
                                          msg.timestamp()[1])  # fmt: skip
    finally:
        consumer.close()
    return found
