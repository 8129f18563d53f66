"""Topic names and their creation at start-up, with the configs each one needs (docs/operations.md,
Topics created at start-up)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streams.engine.kafka import client_base_config
from streams.errors import StartupError
from streams.settings import Settings
from streams.wire.codec import Source


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


def state_changelog_topic(settings: Settings) -> str:
    """The engine's changelog of entity states, partitioned like the entity-events topic."""
    return f"{settings.app_id}-state-changelog"


def entity_topic(settings: Settings) -> str:
    """The internal topic that carries every item re-keyed by entity."""
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
        TopicSpec(settings.topic_score_changed_shadow, n, plain),
        TopicSpec(settings.topic_scores, n, compacted),
        TopicSpec(settings.topic_dead_letters, n, plain),
        # Tenant plans (streams.engine.tenants): one partition, so plans are checked in publish
        # order.
        TopicSpec(settings.topic_plans, 1, compacted),
        TopicSpec(settings.topic_plan_status, 1, plain),
    ]
    # The state changelog: compacted, partitioned like the entity-events topic (a store per
    # partition restores from the same partition of it).
    specs.append(TopicSpec(state_changelog_topic(settings), n, compacted))
    return specs


def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create every missing topic (the service's, or ``specs``) and return their names; existing
    topics are left as they are."""
    refused: list[str] = []  # authentication failures, reported through the error callback

    def on_error(error: KafkaError) -> None:
        if error.code() in AUTHENTICATION_ERRORS:
            refused.append(error.str())

    config: dict[str, Any] = {**client_base_config(settings), "error_cb": on_error, "log_level": 2}
    admin = AdminClient(config)
    existing = _topics_or_reason(settings, admin, refused)
    wanted = required_topics(settings) if specs is None else specs
    missing = [spec for spec in wanted if spec.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=settings.replication_factor,
                config=dict(spec.configs),
            )
            for spec in missing
        ],
        request_timeout=15,
    )
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() in AUTHORIZATION_ERRORS:
                raise StartupError(
                    f"cannot create topic {name!r}: {err.str().rstrip('.')}: the principal "
                    f"{_principal(settings)} needs an ACL that allows CREATE and DESCRIBE on "
                    "it (or create the topics beforehand); see docs/operations.md, Security"
                ) from None
            if err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise StartupError(f"cannot create topic {name!r}: {err.str()}") from None
    _wait_visible(admin, missing)
    return [spec.name for spec in missing]


#: How long start-up waits for the brokers' metadata before it gives up, s.
REACH_TIMEOUT_S = 15.0
AUTHENTICATION_ERRORS = frozenset(
    {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._SSL}
)
AUTHORIZATION_ERRORS = frozenset(
    {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED}
)


def _principal(settings: Settings) -> str:
    return f"User:{settings.kafka_sasl_username or 'ANONYMOUS'}"


def _topics_or_reason(settings: Settings, admin: AdminClient, refused: list[str]) -> set[str]:
    """The topic names, asked once a second; stops at once, naming the settings to fix, when
    the brokers refuse the credentials or the certificate, else after ``REACH_TIMEOUT_S``."""
    deadline = time.monotonic() + REACH_TIMEOUT_S
    while True:
        try:
            return set(admin.list_topics(timeout=1).topics)
        except KafkaException as exc:
            admin.poll(0)  # serves the error callback
            if refused:
                raise StartupError(
                    f"Kafka at {settings.bootstrap_servers} refused the connection as "
                    f"{_principal(settings)} ({settings.kafka_security_protocol}, "
                    f"{settings.kafka_sasl_mechanism or 'no SASL'}): {refused[0]}: fix "
                    "LEADSCORE_KAFKA_SASL_USERNAME / LEADSCORE_KAFKA_SASL_PASSWORD (or "
                    "LEADSCORE_KAFKA_SSL_CA_LOCATION for a certificate error)"
                ) from None
            if time.monotonic() >= deadline:
                raise StartupError(
                    f"cannot reach Kafka at {settings.bootstrap_servers} ({exc.args[0]}): start "
                    "the broker (make broker-up) or fix LEADSCORE_BOOTSTRAP_SERVERS"
                ) from None


#: How long a new topic may take to appear, with a leader for every partition, in metadata.
VISIBLE_TIMEOUT_S = 30.0


def _wait_visible(admin: AdminClient, specs: list[TopicSpec]) -> None:
    """Until the broker's metadata lists every new topic with a leader for each partition.

    A create returns once the controller has the topic; brokers learn of it a moment later. A
    consumer group whose leader assigns in between sees the topic as missing and assigns none
    of its partitions until the next metadata refresh (observed with a broker under load, a few
    seconds after its start).
    """
    want = {spec.name: spec.partitions for spec in specs}
    deadline = time.monotonic() + VISIBLE_TIMEOUT_S
    while True:
        topics = admin.list_topics(timeout=10).topics
        ready = {
            name
            for name, count in want.items()
            if name in topics
            and topics[name].error is None
            and len(topics[name].partitions) == count
            and all(p.leader >= 0 and p.error is None for p in topics[name].partitions.values())
        }
        if ready >= want.keys():
            return
        if time.monotonic() > deadline:
            late = sorted(want.keys() - ready)
            raise StartupError(
                f"topics created but not visible after {VISIBLE_TIMEOUT_S:.0f}s: {late}"
            )
        time.sleep(0.2)
