"""``load_settings()``: a bad ``LEADSCORE_*`` value stops start-up, naming the variable."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from streams.errors import SettingsError
from streams.settings import SECRET_SETTINGS, Settings, load_settings

NAMED = re.compile(r"^\s+(LEADSCORE_[A-Z0-9_]+): ", re.MULTILINE)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment without any LEADSCORE_* variable."""
    for name in list(os.environ):
        if name.upper().startswith("LEADSCORE_"):
            monkeypatch.delenv(name)


def named_variables(exc: SettingsError) -> set[str]:
    return set(NAMED.findall(str(exc)))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LEADSCORE_PARTITIONS", "0"),  # below the minimum of 1
        ("LEADSCORE_PARTITIONS", "1025"),  # above the maximum of 1024
        ("LEADSCORE_PARTITIONS", "eight"),  # not an integer
        ("LEADSCORE_REPLICATION_FACTOR", "0"),  # at least one replica
        ("LEADSCORE_STANDBY_REPLICAS", "-1"),  # negative
        ("LEADSCORE_WEB_PORT", "70000"),  # beyond the TCP port range
        ("LEADSCORE_WEB_PORT", "0"),  # port 0 is not allowed
        ("LEADSCORE_APP_ID", "bad id!"),  # space and '!' are not allowed in the app id
        ("LEADSCORE_APP_ID", ""),  # empty app id
        ("LEADSCORE_APP_ID", "x" * 101),  # longer than 100 characters
        ("LEADSCORE_LOG_LEVEL", "LOUD"),  # not a log level
        ("LEADSCORE_LOG_LEVEL", "debug"),  # values are case-sensitive: DEBUG, not debug
        ("LEADSCORE_BOOTSTRAP_SERVERS", ""),  # empty bootstrap servers
        ("LEADSCORE_API_TOKEN", "  "),  # a blank token would silently turn auth off
        ("LEADSCORE_TICK_INTERVAL_MS", "49"),  # below the 50 ms minimum
        ("LEADSCORE_TICK_INTERVAL_MS", "60001"),  # above one minute
        ("LEADSCORE_COMMIT_INTERVAL_MS", "9"),  # below the 10 ms minimum
        ("LEADSCORE_BATCH_SIZE", "0"),  # a consume call takes at least one record
        ("LEADSCORE_FETCH_MIN_BYTES", "0"),  # librdkafka takes at least one byte
        ("LEADSCORE_CACHE_ENTITIES", "99"),  # below the 100 entries minimum
        ("LEADSCORE_TRANSACTION_TIMEOUT_MS", "999"),  # below one second
        ("LEADSCORE_INSTANCE_ID", "w 1"),  # a space cannot be in a transactional.id here
        ("LEADSCORE_FAULT_ABORT_EVERY", "-1"),  # a drill count is never negative
        ("LEADSCORE_SESSION_TIMEOUT_S", "5"),  # below the 6 s minimum
        ("LEADSCORE_ROCKSDB_BLOCK_CACHE_BYTES", "1048575"),  # one byte under 1 MiB
        ("LEADSCORE_ROCKSDB_WRITE_BUFFER_BYTES", "1000"),  # far under 1 MiB
        ("LEADSCORE_ROCKSDB_MAX_WRITE_BUFFERS", "17"),  # above 16
        ("LEADSCORE_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),  # values are case-sensitive
        ("LEADSCORE_KAFKA_SASL_MECHANISM", "GSSAPI"),  # not offered
        ("LEADSCORE_KAFKA_SSL_CA_LOCATION", "/nonexistent/ca.pem"),  # no such file
    ],
)
def test_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert named_variables(caught.value) == {variable}
    assert str(caught.value).startswith("invalid settings:\n")


def test_every_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSCORE_PARTITIONS", "0")
    monkeypatch.setenv("LEADSCORE_WEB_PORT", "70000")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert named_variables(caught.value) == {"LEADSCORE_PARTITIONS", "LEADSCORE_WEB_PORT"}


def test_unknown_environment_variable_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    # pydantic-settings ignores unknown environment variables; load_settings checks them itself,
    # so a typo such as LEADSCORE_PARTITION (no S) stops start-up instead of keeping the default.
    monkeypatch.setenv("LEADSCORE_PARTITION", "4")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert named_variables(caught.value) == {"LEADSCORE_PARTITION"}


def test_json_topics_must_name_input_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    # a misspelled topic would otherwise be read as Avro without a word
    monkeypatch.setenv("LEADSCORE_JSON_TOPICS", "page-visits,Page-Visits")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert named_variables(caught.value) == {"LEADSCORE_JSON_TOPICS"}
    assert "['Page-Visits']" in str(caught.value)


def test_unknown_override_argument_is_rejected() -> None:
    # extra="forbid" does apply to constructor arguments, and the message names the variable.
    with pytest.raises(SettingsError) as caught:
        load_settings(partition=4)
    assert named_variables(caught.value) == {"LEADSCORE_PARTITION"}


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("LEADSCORE_PARTITIONS", "1", "partitions", 1),  # lower bound accepted
        ("LEADSCORE_PARTITIONS", "1024", "partitions", 1024),  # upper bound accepted
        ("LEADSCORE_WEB_PORT", "65535", "web_port", 65535),  # highest port
        ("LEADSCORE_APP_ID", "ls.prod_eu-1", "app_id", "ls.prod_eu-1"),  # dots, _ and - allowed
        ("LEADSCORE_TICK_INTERVAL_MS", "50", "tick_interval_ms", 50),  # minimum tick
        ("LEADSCORE_COMMIT_INTERVAL_MS", "250", "commit_interval_ms", 250),  # milliseconds
        ("LEADSCORE_FETCH_MIN_BYTES", "65536", "fetch_min_bytes", 65_536),  # 64 KiB
        ("LEADSCORE_INSTANCE_ID", "leadscore-0", "instance_id", "leadscore-0"),  # a pod name
        ("LEADSCORE_LOG_LEVEL", "WARNING", "log_level", "WARNING"),  # a valid level
        ("LEADSCORE_DATA_DIR", "/srv/ls", "data_dir", Path("/srv/ls")),  # a path
        ("leadscore_partitions", "3", "partitions", 3),  # variable names are case-insensitive
    ],
)
def test_good_value_is_read(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str, expected: object
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), field) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("purchases, page-visits", frozenset({"purchases", "page-visits"})),  # whitespace stripped
        ("page-visits", frozenset({"page-visits"})),  # a single topic
        ("purchases,,page-visits,", frozenset({"purchases", "page-visits"})),  # empties dropped
        (" , ", frozenset()),  # only separators: no JSON topic
        ("", frozenset()),  # empty: no JSON topic
        ("purchases,purchases", frozenset({"purchases"})),  # duplicates collapse
    ],
)
def test_json_topics_parsing(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: frozenset[str]
) -> None:
    monkeypatch.setenv("LEADSCORE_JSON_TOPICS", raw)
    assert load_settings().json_topics == expected


@pytest.mark.parametrize(
    ("json_topics", "topic", "expected"),
    [
        ("page-visits,purchases", "page-visits", "json"),  # listed: JSON
        ("page-visits,purchases", "purchases", "json"),  # listed: JSON
        ("page-visits,purchases", "email-events", "avro"),  # not listed: Avro
        ("", "page-visits", "avro"),  # nothing listed: everything is Avro
    ],
)
def test_input_format(
    monkeypatch: pytest.MonkeyPatch, json_topics: str, topic: str, expected: str
) -> None:
    monkeypatch.setenv("LEADSCORE_JSON_TOPICS", json_topics)
    assert load_settings().input_format(topic) == expected


def test_defaults_without_environment() -> None:
    settings = load_settings()
    assert (settings.bootstrap_servers, settings.app_id, settings.partitions) == (
        "127.0.0.1:9092",
        "leadscore",
        8,
    )
    assert (settings.api_token, settings.json_topics) == (None, frozenset())


def test_api_token_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSCORE_API_TOKEN", "s3cret")
    settings = load_settings()
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.partitions = 3  # type: ignore[misc]
    assert isinstance(settings, Settings)


SASL = {
    "LEADSCORE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "LEADSCORE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "LEADSCORE_KAFKA_SASL_USERNAME": "leadscore",
    "LEADSCORE_KAFKA_SASL_PASSWORD": "pa55-word",
}


@pytest.mark.parametrize("missing", sorted(set(SASL) - {"LEADSCORE_KAFKA_SECURITY_PROTOCOL"}))
def test_sasl_needs_mechanism_user_and_password(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    for name, value in SASL.items():
        if name != missing:
            monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "LEADSCORE_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs" in message
    assert "pa55-word" not in message


def test_sasl_credentials_without_a_sasl_protocol_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEADSCORE_KAFKA_SASL_USERNAME", "leadscore")
    monkeypatch.setenv("LEADSCORE_KAFKA_SASL_PASSWORD", "pa55-word")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "LEADSCORE_KAFKA_SECURITY_PROTOCOL is PLAINTEXT" in str(info.value)
    assert "pa55-word" not in str(info.value)


def test_kafka_clients_get_the_security_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from streams.engine.kafka import (
        client_base_config,
        consumer_config,
        producer_config,
        restore_consumer_config,
    )

    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    for name, value in SASL.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LEADSCORE_KAFKA_SSL_CA_LOCATION", str(ca))
    settings = load_settings()
    expected = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "leadscore",
        "sasl.password": "pa55-word",
        "ssl.ca.location": str(ca),
    }
    for config in (
        client_base_config(settings),
        consumer_config(settings, client_id="c"),
        producer_config(settings, transactional_id="t"),
        restore_consumer_config(settings),
    ):
        assert {key: config.get(key) for key in expected} == expected
    assert "pa55-word" not in repr(settings)


def test_plaintext_clients_carry_no_credentials() -> None:
    from streams.engine.kafka import client_base_config

    config = client_base_config(load_settings())
    assert config["security.protocol"] == "PLAINTEXT"
    assert not any(key.startswith(("sasl.", "ssl.")) for key in config)


@pytest.mark.parametrize(
    "name", ["LEADSCORE_CORE", "LEADSCORE_TEST_BOOTSTRAP", "LEADSCORE_VAR_DIR"]
)
def test_variables_read_elsewhere_are_not_typos(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """make test exports LEADSCORE_CORE and LEADSCORE_TEST_BOOTSTRAP; a worker must still start."""
    monkeypatch.setenv(name, "compiled")
    assert load_settings().partitions == 8


HOSTILE_VALUES = ["", " ", "-1", "0", "1e309", "nan", "true", "None", "x" * 5000,
                  "99999999999999999999999", "a,b,,", "http://", "SASL_SSL"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(Settings.model_fields)),
    value=st.one_of(st.text(max_size=50), st.sampled_from(HOSTILE_VALUES)),
)
def test_any_value_of_any_setting_is_a_setting_or_a_named_error(name: str, value: str) -> None:
    variable = f"LEADSCORE_{name.upper()}"
    with pytest.MonkeyPatch.context() as patch:
        for other in list(os.environ):
            if other.upper().startswith("LEADSCORE_"):
                patch.delenv(other)
        if "\x00" in value:  # an environment cannot hold NUL
            return
        patch.setenv(variable, value)
        try:
            load_settings()
        except SettingsError as exc:
            message = str(exc)
            assert variable in message or "LEADSCORE_" in message, message
            if name in SECRET_SETTINGS:  # secrets never shown. The messages' own words aside:
                # this test drew the password "SASL", which is in "LEADSCORE_KAFKA_SASL_*" and in
                # "SASL_SSL"; short values match fixed words by chance, so only 8+ characters
                prose = re.sub(r"LEADSCORE_[A-Z_*]+|SASL_SSL|SASL_PLAINTEXT|PLAINTEXT", "", message)
                assert len(value.strip()) < 8 or value not in prose


def test_the_worker_consumer_fetches_with_the_setting_of_min_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streams.engine.kafka import consumer_config

    assert consumer_config(load_settings(), client_id="c")["fetch.min.bytes"] == 1
    monkeypatch.setenv("LEADSCORE_FETCH_MIN_BYTES", "65536")
    config = consumer_config(load_settings(), client_id="c")
    assert (config["fetch.min.bytes"], config["fetch.wait.max.ms"]) == (65_536, 10)
