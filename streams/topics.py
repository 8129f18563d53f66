"""Topic names and their creation at start-up (SPEC §2, §5), with the configs each one needs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streams.codec import Source
from streams.errors import StartupError
from streams.settings import Settings


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    configs: Mapping[str, str]


def input_topics(settings: Settings) -> dict[str, Source]:
    """Input topic name -> the source it carries."""
    return {
        settings.topic_page_visits: Source.PAGE_VISITS,
        settings.topic_email_events: Source.EMAIL_EVENTS,
        settings.topic_purchases: Source.PURCHASES,
        settings.topic_deal_stage_changes: Source.DEAL_STAGE_CHANGES,
        settings.topic_contact_profiles: Source.CONTACT_PROFILES,
        settings.topic_score_adjustments: Source.SCORE_ADJUSTMENTS,
    }


#: The worker's tables (Faust ``Table`` names); each has a changelog topic.
TABLES = ("entities", "due")


def changelog_topic(settings: Settings, table: str) -> str:
    """Faust's name for a table's changelog topic."""
    return f"{settings.app_id}-{table}-changelog"


def entity_topic(settings: Settings) -> str:
    """The internal topic that carries every item re-keyed by entity, plus partition ticks."""
    return f"{settings.app_id}-entity-events"


def required_topics(settings: Settings) -> list[TopicSpec]:
    n = settings.partitions
    min_isr = "2" if settings.replication_factor >= 3 else "1"
    plain = {"min.insync.replicas": min_isr}
    compacted = {**plain, "cleanup.policy": "compact"}
    specs = [TopicSpec(name, n, plain) for name in input_topics(settings)]
    specs += [
        TopicSpec(
            entity_topic(settings),
            n,
            {**plain, "retention.ms": str(settings.entity_topic_retention_ms)},
        ),
        TopicSpec(settings.topic_score_changed, n, plain),
        TopicSpec(settings.topic_scores, n, compacted),
        TopicSpec(settings.topic_dead_letters, n, plain),
    ]
    # The tables' changelogs, as Faust would create them (compacted, the tables' partitions):
    # created here so that start-up also waits until they are visible (``_wait_visible``).
    specs += [TopicSpec(changelog_topic(settings, table), n, compacted) for table in TABLES]
    return specs


async def ensure_topics(settings: Settings) -> list[str]:
    """Create every missing topic and return their names; existing topics are left as they are."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=15000
    )
    try:
        await admin.start()
    except KafkaError as exc:
        raise StartupError(
            f"cannot reach Kafka at {settings.bootstrap_servers} ({exc}): start the broker "
            "(make broker-up) or fix LEADSCORE_BOOTSTRAP_SERVERS"
        ) from None
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in required_topics(settings) if spec.name not in existing]
        if missing:
            result = await admin.create_topics(
                [
                    NewTopic(
                        spec.name,
                        num_partitions=spec.partitions,
                        replication_factor=settings.replication_factor,
                        topic_configs=dict(spec.configs),
                    )
                    for spec in missing
                ]
            )
            for name, code, message in _errors(result):
                if code != TopicAlreadyExistsError.errno:
                    raise StartupError(f"cannot create topic {name!r}: error {code} {message}")
            await _wait_visible(admin, missing)
        return [spec.name for spec in missing]
    finally:
        await admin.close()


#: How long a new topic may take to appear, with a leader for every partition, in metadata.
VISIBLE_TIMEOUT_S = 30.0


async def _wait_visible(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> None:
    """Until the broker's metadata lists every new topic with a leader for each partition.

    A create returns once the controller has the topic; brokers learn of it a moment later. A
    consumer group whose leader assigns in between sees the topic as missing and assigns none
    of its partitions (Faust logs "Ignoring missing topic"), and the group stays that way until
    the next metadata refresh (observed with a broker under load, a few seconds after its start).
    """
    want = {spec.name: spec.partitions for spec in specs}
    deadline = time.monotonic() + VISIBLE_TIMEOUT_S
    while True:
        described = await admin.describe_topics(list(want))
        ready = {
            t["topic"]
            for t in described
            if t["error_code"] == 0
            and len(t["partitions"]) == want.get(t["topic"])
            and all(p["error_code"] == 0 and p["leader"] >= 0 for p in t["partitions"])
        }
        if ready >= want.keys():
            return
        if time.monotonic() > deadline:
            late = sorted(want.keys() - ready)
            raise StartupError(
                f"topics created but not visible after {VISIBLE_TIMEOUT_S:.0f}s: {late}"
            )
        await asyncio.sleep(0.2)


def _errors(result: object) -> list[tuple[str, int, str]]:
    out = []
    for entry in getattr(result, "topic_errors", []):
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else ""
        if code:
            out.append((name, code, message or ""))
    return out
