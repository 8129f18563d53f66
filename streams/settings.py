"""The one settings object: every ``LEADSCORE_*`` environment variable, validated at start-up.

Nothing else in the service reads ``os.environ``. Build it once with :func:`load_settings` and pass
it down. Every field is documented in the settings table of ``docs/operations.md``; a test keeps the
table and this class in agreement.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from streams.errors import SettingsError

InputFormat = Literal["avro", "json"]
#: The settings (minus ``topic_``) that name input topics (docs/inputs.md).
INPUT_TOPIC_SETTINGS = (
    "page_visits", "email_events", "purchases", "deal_stage_changes", "contact_profiles",
    "score_adjustments",
)  # fmt: skip

#: Settings whose values never appear in an error message or a log.
SECRET_SETTINGS = frozenset(
    {"api_token", "tenant_tokens", "kafka_sasl_password", "schema_registry_password"}
)


def tenant_token_map(text: str) -> dict[str, str]:
    """``acme=tok1,globex=tok2`` as {token: tenant}. Errors name the pair by its position and
    tenant, never a token."""
    out: dict[str, str] = {}
    tenants: set[str] = set()
    for n, pair in enumerate((p.strip() for p in text.split(",")), start=1):
        tenant, sep, token = pair.partition("=")
        tenant, token = tenant.strip(), token.strip()
        if not sep or not tenant or not token:
            raise ValueError(
                f"LEADSCORE_TENANT_TOKENS: pair {n} must be tenant=token (both non-empty)"
            )
        if tenant in tenants:
            raise ValueError(f"LEADSCORE_TENANT_TOKENS: tenant {tenant!r} is given twice")
        if token in out:
            raise ValueError(
                f"LEADSCORE_TENANT_TOKENS: tenant {tenant!r} has the token of tenant "
                f"{out[token]!r}; each tenant needs its own"
            )
        tenants.add(tenant)
        out[token] = tenant
    return out


class Settings(BaseSettings):
    """Service settings; environment variable = ``LEADSCORE_`` + upper-case field name."""

    model_config = SettingsConfigDict(
        env_prefix="LEADSCORE_", frozen=True, extra="forbid", case_sensitive=False
    )

    # Kafka and identity
    bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        min_length=1,
        description="Kafka bootstrap servers, comma-separated host:port",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="how the Kafka clients connect: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; required with a SASL_* protocol"
    )
    kafka_sasl_username: str | None = Field(
        None, min_length=1, description="SASL user name; required with a SASL_* protocol"
    )
    kafka_sasl_password: SecretStr | None = Field(
        None, description="SASL password; required with a SASL_* protocol; never printed"
    )
    kafka_ssl_ca_location: Path | None = Field(
        None,
        description="PEM file of the CA of the brokers' certificates (unset: the system's CAs)",
    )
    app_id: str = Field(
        "leadscore",
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="consumer group id; prefix of the transactional id and the internal topics",
    )
    plan_path: Path = Field(
        Path("plans/reference.yaml"), description="the default scoring plan, validated at start-up"
    )
    data_dir: Path = Field(
        Path("var/worker"),
        description="this worker's own directory: its lock, instance id and RocksDB stores",
    )

    # Topics (docs/inputs.md, docs/consumers.md)
    topic_page_visits: str = Field("page-visits", description="input topic of page_visit events")
    topic_email_events: str = Field("email-events", description="input topic of email.* events")
    topic_purchases: str = Field("purchases", description="input topic of purchase events")
    topic_deal_stage_changes: str = Field(
        "deal-stage-changes", description="input topic of deal.stage_changed events"
    )
    topic_contact_profiles: str = Field(
        "contact-profiles", description="input topic of contact.updated events"
    )
    topic_score_adjustments: str = Field(
        "score-adjustments", description="input topic of adjustment commands"
    )
    topic_score_changed: str = Field(
        "score-changed", description="output topic of every score change"
    )
    topic_score_changed_shadow: str = Field(
        "score-changed-shadow",
        description="output topic of every change of a shadow plan (never read by automations)",
    )
    topic_scores: str = Field(
        "scores", description="compacted output topic of the latest value per entity and score"
    )
    topic_dead_letters: str = Field(
        "leadscore-dead-letters",
        description="dead-letter topic: rejected inputs, the reason in headers",
    )
    topic_plans: str = Field(
        "leadscore-plans",
        description="compacted topic of tenant plans, keyed by tenant (leadscore plan publish)",
    )
    topic_plan_status: str = Field(
        "leadscore-plan-status",
        description="the worker's verdict on each tenant plan: accepted, rejected or removed",
    )
    json_topics: Annotated[frozenset[str], NoDecode] = Field(
        frozenset(),
        description="comma-separated input topics whose values are JSON instead of Avro",
    )
    entity_topic_retention_ms: int = Field(
        7 * 86_400_000,
        ge=3_600_000,
        description="retention of the internal entity-events topic, ms (at least 1 hour)",
    )
    partitions: int = Field(
        8,
        ge=1,
        le=1024,
        description="partitions of each topic the service creates (1-1024); fixed once they exist",
    )
    replication_factor: int = Field(
        1,
        ge=1,
        le=16,
        description="replication factor of the topics the service creates (1-16); 3 in production",
    )

    # Schema Registry (off by default: plain Avro datums, no framing)
    schema_registry_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="base URL of a Confluent-compatible schema registry (unset: plain Avro)",
    )
    schema_registry_username: str | None = Field(
        None, min_length=1, description="user for HTTP basic auth to the schema registry"
    )
    schema_registry_password: SecretStr | None = Field(
        None, description="password for HTTP basic auth to the schema registry; never printed"
    )
    schema_registry_timeout_s: float = Field(
        5.0, ge=0.1, le=120, description="timeout of each schema registry call, seconds (0.1-120)"
    )

    # State (RocksDB through rocksdict)
    rocksdb_block_cache_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024 * 1024,
        description="RocksDB block cache shared by all the worker's stores, bytes",
    )
    rocksdb_write_buffer_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024 * 1024,
        description="size of one write buffer (memtable) per store, bytes",
    )
    rocksdb_max_write_buffers: int = Field(
        2, ge=1, le=16, description="write buffers per store (1-16)"
    )
    rocksdb_memtable_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024 * 1024,
        description="all stores' memtables together, bytes; past it the largest is flushed",
    )
    #: glibc malloc arenas of the worker process (0: glibc's default); see
    #: streams/engine/allocator.py
    malloc_arenas: int = Field(
        2, ge=0, le=64, description="glibc malloc arenas of the worker process (0: glibc's default)"
    )
    #: top lists (``/top``): entries (entity and score) kept per tenant; see streams/api/topview.py
    top_entries_per_tenant: int = Field(
        50_000,
        ge=100,
        le=100_000_000,
        description="top lists (/top): entries (an entity's value of a score) kept per tenant",
    )

    # The processing loop, its transactions and time-driven work
    instance_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="this worker's id (unset: generated once, kept in the data directory)",
    )
    commit_interval_ms: int = Field(
        100,
        ge=10,
        le=60_000,
        description="a transaction commits once it has been open this long, ms (10-60000)",
    )
    commit_max_records: int = Field(
        20_000,
        ge=1,
        le=1_000_000,
        description="a transaction also commits once it holds this many produced records",
    )
    #: score history (``/scores/.../history``, ``leadscore history``): see streams/state/history.py
    history_per_score: int = Field(
        50,
        ge=0,
        le=10_000,
        description="changes kept per score in the entity's state for its history (0: none)",
    )
    #: shadow plans (``leadscore plan publish --shadow``): see streams/engine/shadows.py
    shadows_per_tenant: int = Field(
        1,
        ge=0,
        le=4,
        description="shadow plans one tenant may run beside its active plan (0: none; 0-4)",
    )
    #: items of one tenant one partition's recompute may hold (about 0.4 KB each; see
    #: docs/operations.md, recompute): more and the recompute is refused, the plan switches
    recompute_max_items: int = Field(
        500_000,
        ge=1,
        le=50_000_000,
        description="items of one tenant a partition's recompute may hold; more and it is refused",
    )
    batch_size: int = Field(
        2000, ge=1, le=100_000, description="most records returned by one consume call (1-100000)"
    )
    fetch_min_bytes: int = Field(
        1,
        ge=1,
        le=16_777_216,
        description="bytes a broker gathers for a fetch of the worker's consumer, 10 ms at most",
    )
    cache_entities: int = Field(
        100_000,
        ge=100,
        le=10_000_000,
        description="decoded entity states kept in the cache (100-10000000)",
    )
    #: encoded bytes of the cached states (see streams/state/cache.py)
    cache_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024 * 1024,
        le=64 * 1024**3,
        description="the cache's second bound: encoded bytes of the cached states",
    )
    transaction_timeout_ms: int = Field(
        10_000,
        ge=1000,
        le=900_000,
        description="the producer's transaction.timeout.ms (1000-900000)",
    )
    kafka_call_timeout_s: float = Field(
        30.0, ge=1, le=600, description="timeout of each blocking Kafka call, seconds (1-600)"
    )
    tick_interval_ms: int = Field(
        500,
        ge=50,
        le=60_000,
        description="how often the loop looks for time-driven work that fell due, ms (50-60000)",
    )
    producer_recoveries_max: int = Field(
        5,
        ge=0,
        le=1000,
        description="producers replaced in a row (no commit between) in 10 min; one more exits 70",
    )
    fault_abort_every: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="fault drill: every Nth commit aborts (0: off; never in production)",
    )
    session_timeout_s: float = Field(
        10.0, ge=6, le=300, description="consumer session timeout, seconds (6-300)"
    )

    # HTTP and observability
    web_host: str = Field("127.0.0.1", description="HTTP bind address")
    web_port: int = Field(6066, ge=1, le=65535, description="HTTP port (1-65535)")
    web_advertised_host: str | None = Field(
        None, description="host other workers forward requests to (unset: LEADSCORE_WEB_HOST)"
    )
    api_token: SecretStr | None = Field(
        None, description="bearer token for the /scores endpoints (unset: no protection); secret"
    )
    #: ``tenant=token,tenant=token``: a tenant's token reads that tenant's scores only.
    tenant_tokens: SecretStr | None = Field(
        None, description="tenant=token,...: each token reads its tenant's scores only; secret"
    )
    metrics_require_token: bool = Field(
        False, description="true: /metrics requires the bearer token too"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG, INFO, WARNING or ERROR"
    )

    @field_validator("json_topics", mode="before")
    @classmethod
    def _split_topics(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("api_token")
    @classmethod
    def _token_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty; unset it to serve the API without a token")
        return value

    @field_validator("json_topics", mode="after")
    @classmethod
    def _json_topics_are_inputs(cls, value: frozenset[str], info: ValidationInfo) -> frozenset[str]:
        inputs = {info.data.get(f"topic_{name}") for name in INPUT_TOPIC_SETTINGS}
        unknown = sorted(value - inputs)
        if unknown:
            raise ValueError(f"names topics that are not inputs: {unknown}")
        return value

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        given = [self.kafka_sasl_mechanism, self.kafka_sasl_username, self.kafka_sasl_password]
        if sasl and any(value is None for value in given):
            raise ValueError(
                f"LEADSCORE_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "LEADSCORE_KAFKA_SASL_MECHANISM, LEADSCORE_KAFKA_SASL_USERNAME and "
                "LEADSCORE_KAFKA_SASL_PASSWORD"
            )
        if not sasl and any(value is not None for value in given):
            raise ValueError(
                "LEADSCORE_KAFKA_SASL_* are set but LEADSCORE_KAFKA_SECURITY_PROTOCOL is "
                f"{self.kafka_security_protocol}: set it to SASL_SSL or SASL_PLAINTEXT"
            )
        ca = self.kafka_ssl_ca_location
        if ca is not None:
            try:
                found = ca.is_file()
            except OSError as exc:  # e.g. a name longer than the file system allows
                raise ValueError(f"LEADSCORE_KAFKA_SSL_CA_LOCATION: {exc.strerror}") from None
            if not found:
                raise ValueError(f"LEADSCORE_KAFKA_SSL_CA_LOCATION: no such file: {str(ca)[:200]}")
        return self

    @field_validator("tenant_tokens")
    @classmethod
    def _tenant_tokens_well_formed(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            tenant_token_map(value.get_secret_value())  # raises naming the pair, never a token
        return value

    @property
    def tenants_by_token(self) -> dict[str, str]:
        """token -> the tenant it may read (empty without ``LEADSCORE_TENANT_TOKENS``)."""
        if self.tenant_tokens is None:
            return {}
        return tenant_token_map(self.tenant_tokens.get_secret_value())

    @model_validator(mode="after")
    def _tenant_tokens_differ_from_the_api_token(self) -> Settings:
        if self.api_token is not None and self.api_token.get_secret_value() in (
            self.tenants_by_token
        ):
            raise ValueError(
                "LEADSCORE_TENANT_TOKENS: a tenant's token equals LEADSCORE_API_TOKEN (the "
                "token that reads every tenant); give each its own"
            )
        return self

    @model_validator(mode="after")
    def _metrics_token_needs_a_token(self) -> Settings:
        if self.metrics_require_token and self.api_token is None:
            raise ValueError(
                "LEADSCORE_METRICS_REQUIRE_TOKEN=true needs LEADSCORE_API_TOKEN (the token that "
                "/metrics would require)"
            )
        return self

    @model_validator(mode="after")
    def _registry_auth_complete(self) -> Settings:
        if (self.schema_registry_username is None) != (self.schema_registry_password is None):
            raise ValueError(
                "LEADSCORE_SCHEMA_REGISTRY_USERNAME and LEADSCORE_SCHEMA_REGISTRY_PASSWORD go "
                "together: set both (HTTP basic auth) or neither"
            )
        return self

    @property
    def advertised_url(self) -> str:
        """Where other workers reach this one's HTTP API (forwarded requests)."""
        return f"http://{self.web_advertised_host or self.web_host}:{self.web_port}"

    def input_format(self, topic: str) -> InputFormat:
        return "json" if topic in self.json_topics else "avro"


#: ``LEADSCORE_*`` variables that are not settings of the worker but are read elsewhere (the core
#: build at import, the build script, the Makefile's scripts and tests), so they are not typos.
NOT_SETTINGS = frozenset(
    {
        "LEADSCORE_CORE",
        "LEADSCORE_CORE_BUILD_STRICT",
        "LEADSCORE_CACHE_DIR",
        "LEADSCORE_VAR_DIR",
        "LEADSCORE_TEST_BOOTSTRAP",
    }
)


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; raise :class:`SettingsError` naming each bad variable.

    A ``LEADSCORE_*`` variable that names no setting (a typo) is an error too: pydantic-settings
    would silently ignore it and run with the default.
    """
    known = {f"LEADSCORE_{name.upper()}" for name in Settings.model_fields} | NOT_SETTINGS
    lines = [
        f"{name}: no such setting (see the settings table in docs/operations.md)"
        for name in sorted(os.environ)
        if name.upper().startswith("LEADSCORE_") and name.upper() not in known
    ]
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            if not field:  # a rule over several settings: its message names them; no values
                lines.append(message)
            elif field in SECRET_SETTINGS:
                lines.append(f"LEADSCORE_{field.upper()}: {message}")
            else:
                lines.append(f"LEADSCORE_{field.upper()}: {message} (got {error.get('input')!r})")
        settings = None
    if lines or settings is None:
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines))
    return settings


def render_default(value: object) -> str:
    """A setting's default as ``leadscore worker --help`` and the settings table of
    docs/operations.md write it."""
    if value is None:
        return "(none)"
    if isinstance(value, frozenset | set | tuple | list):
        return ",".join(sorted(str(v) for v in value)) if value else "(empty)"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def settings_help() -> str:
    """The settings part of ``leadscore worker --help``: every setting of :class:`Settings`, its
    default and its description, in the class's order."""
    lines = [
        "settings: environment variables, read once at start-up (each in detail: the settings",
        "table of docs/operations.md)",
        "",
    ]
    for name, field in Settings.model_fields.items():
        lines.append(f"  LEADSCORE_{name.upper()}  default: {render_default(field.default)}")
        lines.append(f"      {field.description}")
    lines += [
        "",
        "not a setting, read when the package is imported:",
        "  LEADSCORE_CORE  default: auto",
        "      which build of the scoring core runs: auto, compiled or pure",
        "",
        "An invalid value or an unknown LEADSCORE_* variable stops start-up with exit code 2 and",
        "a message naming each one.",
    ]
    return "\n".join(lines)
