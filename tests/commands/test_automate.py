"""``streams.commands.automate`` without a broker: the file's validation (every error names its
field), the signature, the backoff, which triggers match, the payload, and the in-order commit of
done changes (with a fake consumer)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from streams.client import ScoreChanged
from streams.commands.automate import (
    Automations,
    AutomationsError,
    Backoff,
    Bridge,
    _Pending,
    backoff_s,
    load_automations,
    payload,
    signature,
)
from tests.commands.test_client import record

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "automations.yaml"
ENV = {"SALES_HOOK_SECRET": "s3cret"}
GOOD: dict[str, Any] = {
    "endpoints": {"sales": {"url": "http://127.0.0.1:1/hook", "secret_env": "SALES_HOOK_SECRET"}},
    "triggers": [{"name": "mql", "endpoint": "sales", "score": "engagement", "threshold": "mql"}],
}


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "automations.yaml"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


def test_the_example_file_is_valid() -> None:
    config, secrets = load_automations(EXAMPLE, ENV)
    assert [t.name for t in config.triggers] == ["mql-reached", "mql-lost"]
    assert secrets == {"sales": b"s3cret"}


def with_change(path: str, value: object) -> dict[str, Any]:
    document = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("triggers.0.endpoint", "crm", "triggers.0.endpoint: 'crm' is not one of the endpoints"),
        ("endpoints.sales.url", "ftp://x/y", "endpoints.sales.url: String should match pattern"),
        ("endpoints.sales.retries", 3, "endpoints.sales.retries: Extra inputs are not permitted"),
        ("endpoints.sales.concurrency", 0, "endpoints.sales.concurrency: Input should be greater"),
        ("endpoints.sales.backoff", {"initial_s": 5, "max_s": 1},
         "endpoints.sales.backoff: max_s (1.0) is below initial_s (5.0)"),
        ("endpoints.sales.secret_env", "lower", "endpoints.sales.secret_env: String should match"),
        ("triggers.0.direction", "sideways", "triggers.0.direction: Input should be 'up', 'down'"),
        ("triggers.0.entity", "lead", "triggers.0.entity: Input should be 'contact', 'deal'"),
        ("triggers", [], "triggers: List should have at least 1 item"),
        ("group", "a b", "group: String should match pattern"),
    ],
)  # fmt: skip
def test_each_mistake_names_its_field(tmp_path: Path, path: str, value: object, named: str) -> None:
    with pytest.raises(AutomationsError) as info:
        load_automations(write(tmp_path, with_change(path, value)), ENV)
    assert str(info.value).startswith(f"{tmp_path / 'automations.yaml'}: invalid automations:")
    assert named in str(info.value)


def test_a_trigger_name_used_twice_is_refused(tmp_path: Path) -> None:
    document = with_change("triggers", GOOD["triggers"] * 2)
    with pytest.raises(AutomationsError, match=r"triggers\.1\.name: 'mql' is used twice"):
        load_automations(write(tmp_path, document), ENV)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "the top level must be a mapping"),
        ("endpoints: {a: [", "not valid YAML"),
        ("true: page_visit\n", "invalid automations"),  # a YAML 1.1 key: no crash, named
    ],
)
def test_bad_documents_get_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(AutomationsError, match=message):
        load_automations(write(tmp_path, text), ENV)


def test_missing_file_and_missing_secret(tmp_path: Path) -> None:
    with pytest.raises(AutomationsError, match="cannot read it"):
        load_automations(tmp_path / "absent.yaml", ENV)
    with pytest.raises(AutomationsError, match="the variable SALES_HOOK_SECRET is not set"):
        load_automations(write(tmp_path, GOOD), {})


def test_signature_is_an_hmac_of_time_and_body() -> None:
    body = b'{"change_id":"x"}'
    mac = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(b"k", body, 1_700_000_000) == f"t=1700000000,v1={mac}"
    assert signature(b"k", body + b" ", 1_700_000_000) != signature(b"k", body, 1_700_000_000)
    assert signature(b"other", body, 1_700_000_000) != signature(b"k", body, 1_700_000_000)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = Backoff(initial_s=0.5, max_s=4, multiplier=2)
    assert [backoff_s(policy, n, lambda: 1.0) for n in range(1, 7)] == [0.5, 1, 2, 4, 4, 4]
    assert backoff_s(policy, 3, lambda: 0.25) == 0.5
    assert backoff_s(policy, 3, lambda: 0.0) == 0.0


@pytest.mark.parametrize(
    ("trigger", "fields", "fires"),
    [
        ({}, {}, True),
        ({"direction": "down"}, {}, False),
        ({"direction": "any"}, {"thresholds": [{"name": "mql", "direction": "down"}]}, True),
        ({}, {"score": "fit"}, False),
        ({"entity": "deal"}, {}, False),
        ({"tenants": ["acme"]}, {}, False),
        ({"tenants": [None, "acme"]}, {}, True),
        ({"tenants": ["acme"]}, {"tenant_id": "acme"}, True),
        ({"accounts": ["acme"]}, {}, False),  # the deprecated old name of tenants
        ({"accounts": [None, "acme"]}, {}, True),
        ({"accounts": ["acme"], "tenants": ["acme"]}, {"tenant_id": "acme"}, True),
        ({}, {"thresholds": []}, False),
    ],
)
def test_which_changes_a_trigger_fires_on(trigger: dict[str, Any], fields: dict[str, Any],
                                          fires: bool) -> None:  # fmt: skip
    config = Automations.model_validate(
        with_change("triggers.0", {**GOOD["triggers"][0], **trigger})
    )
    assert config.triggers[0].matches(ScoreChanged.from_record(record(**fields))) is fires


@pytest.mark.parametrize(
    ("fields", "fires"),
    [
        ({"cause": "tier", "tier_before": "warm", "tier_after": "hot"}, True),
        ({"cause": "tier", "tier_before": "hot", "tier_after": "warm"}, False),
        ({"cause": "rule", "tier_before": "warm", "tier_after": "hot"}, False),  # its tier record
    ],
)
def test_a_tier_trigger_fires_on_entering_the_tier(fields: dict[str, Any], fires: bool) -> None:
    trigger = {"name": "hot", "endpoint": "sales", "score": "engagement", "tier": "hot"}
    config = Automations.model_validate(with_change("triggers.0", trigger))
    assert config.triggers[0].matches(ScoreChanged.from_record(record(**fields))) is fires


@pytest.mark.parametrize(
    ("trigger", "named"),
    [
        ({"tier": "hot", "threshold": "mql"}, "triggers.0: give either threshold or tier"),
        ({"threshold": None}, "triggers.0: give either threshold or tier"),
        ({"tier": "hot", "threshold": None, "direction": "up"},
         "triggers.0: direction applies to thresholds"),
    ],
)  # fmt: skip
def test_a_trigger_is_a_threshold_or_a_tier(tmp_path: Path, trigger: dict[str, Any],
                                            named: str) -> None:  # fmt: skip
    document = with_change("triggers.0", {**GOOD["triggers"][0], **trigger})
    with pytest.raises(AutomationsError, match=named):
        load_automations(write(tmp_path, document), ENV)


def test_accounts_and_tenants_differing_is_refused(tmp_path: Path) -> None:
    trigger = {**GOOD["triggers"][0], "tenants": ["acme"], "accounts": ["globex"]}
    with pytest.raises(AutomationsError, match=r"accounts \(its deprecated old name\) differ"):
        load_automations(write(tmp_path, with_change("triggers.0", trigger)), ENV)


def test_payload_carries_the_change_and_its_triggers() -> None:
    body = json.loads(payload(ScoreChanged.from_record(record(tenant_id="acme")), ["mql-reached"]))
    assert body["triggers"] == ["mql-reached"] and body["change_id"] == "ch-1"
    assert body["tenant_id"] == body["account_id"] == "acme"  # account_id: deprecated, the same
    assert (body["old_value"], body["new_value"], body["seq"]) == (90, 105, 3)
    assert body["occurred_at"] == "2025-11-24T16:00:00Z"
    assert body["thresholds"] == [{"name": "mql", "direction": "up"}]


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[list[tuple[int, int]]] = []

    def commit(self, *, offsets: list[Any], asynchronous: bool) -> None:
        assert asynchronous is False
        self.commits.append([(tp.partition, tp.offset) for tp in offsets])


def test_commits_only_an_unbroken_prefix_of_done_changes_per_partition() -> None:
    config, secrets = load_automations(EXAMPLE, ENV)
    bridge = Bridge(config, secrets, "127.0.0.1:1", "score-changed")
    items = {o: _Pending(0, o, 1) for o in (10, 11, 12)}
    bridge._open = {0: list(items.values()), 1: [_Pending(1, 5, 0)]}
    bridge._pending = 4
    consumer = FakeConsumer()
    bridge._done(items[11])  # done out of order: 10 still in flight
    bridge._commit(consumer)
    assert consumer.commits == [[(1, 6)]]  # partition 1's change had nothing to deliver
    bridge._done(items[10])
    bridge._commit(consumer)
    assert consumer.commits[-1] == [(0, 12)]  # 10 and 11 done: the next to read is 12
    bridge._done(items[12])
    bridge._commit(consumer)
    assert consumer.commits[-1] == [(0, 13)] and bridge._pending == 0
    bridge._commit(consumer)
    assert len(consumer.commits) == 3  # nothing new: no commit
