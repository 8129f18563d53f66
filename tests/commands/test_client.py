"""``streams.client`` without a broker: its public names, the typed record, the filters."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import fastavro
import pytest

import streams.client as client
from streams.client import ChangeFilter, ScoreChanged, ScoreChanges, ThresholdCrossing
from streams.wire.codec import Codec
from tests.wire.test_avro_interop import old_schema


def record(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "change_id": "ch-1", "tenant_id": None, "entity": "contact", "entity_id": "c-1",
        "score": "engagement", "seq": 3, "old_value": 90, "new_value": 105, "delta": 15,
        "cause": "rule", "rule_ids": ["pricing-visit"], "source_event_id": "e-9",
        "occurred_at": 1_764_000_000_000, "emitted_at": 1_764_000_000_250,
        "thresholds": [{"name": "mql", "direction": "up"}], "plan_version": "v1",
        "tier_before": None, "tier_after": None,
    }  # fmt: skip
    return {**base, **fields}


def test_public_api_is_exactly_all() -> None:
    public = {name for name in vars(client) if not name.startswith("_")}
    exported = set(client.__all__)
    assert exported == {
        "ChangeFilter", "ClientError", "ScoreChanged", "ScoreChanges", "ThresholdCrossing"
    }  # fmt: skip
    assert exported <= public
    for name in exported:
        assert getattr(client, name).__module__ == "streams.client"


def test_record_from_avro_round_trip() -> None:
    codec = Codec.load()
    value = codec.encode(codec.score_changed, record())
    change = ScoreChanged.from_record(codec.decode(codec.score_changed, value), partition=2,
                                      offset=41)  # fmt: skip
    assert change == ScoreChanged(
        change_id="ch-1", tenant_id=None, entity="contact", entity_id="c-1", score="engagement",
        seq=3, old_value=90, new_value=105, delta=15, cause="rule", rule_ids=("pricing-visit",),
        source_event_id="e-9",
        occurred_at=dt.datetime(2025, 11, 24, 16, 0, tzinfo=dt.UTC),
        emitted_at=dt.datetime(2025, 11, 24, 16, 0, 0, 250_000, tzinfo=dt.UTC),
        thresholds=(ThresholdCrossing("mql", "up"),), plan_version="v1", partition=2, offset=41,
    )  # fmt: skip
    assert change.crossed() and change.crossed("mql") and change.crossed("mql", "up")
    assert not change.crossed("mql", "down") and not change.crossed("sql")


@pytest.mark.parametrize(
    ("where", "fields", "kept"),
    [
        (ChangeFilter(), {}, True),
        (ChangeFilter(tenants=frozenset({"acme"})), {}, False),
        (ChangeFilter(tenants=frozenset({None})), {}, True),  # the default tenant
        (ChangeFilter(tenants=frozenset({"acme"})), {"tenant_id": "acme"}, True),
        (ChangeFilter(entities=frozenset({"deal"})), {}, False),
        (ChangeFilter(entity_ids=frozenset({"c-1", "c-2"})), {}, True),
        (ChangeFilter(scores=frozenset({"fit"})), {}, False),
        (ChangeFilter(causes=frozenset({"expiry"})), {}, False),
        (ChangeFilter(thresholds=frozenset({"mql"})), {}, True),
        (ChangeFilter(thresholds=frozenset({"sql"})), {}, False),
        (ChangeFilter(directions=frozenset({"down"})), {}, False),
        (ChangeFilter(thresholds=frozenset({"mql"}), directions=frozenset({"up"})), {}, True),
        (ChangeFilter(crossings_only=True), {"thresholds": []}, False),
        (ChangeFilter(crossings_only=True), {}, True),
        (ChangeFilter(scores=frozenset({"engagement"}), entities=frozenset({"contact"})), {}, True),
        (ChangeFilter(tiers=frozenset({"hot"})), {"tier_after": "hot"}, True),
        (ChangeFilter(tiers=frozenset({"hot"})), {"tier_after": "warm"}, False),
        (ChangeFilter(tiers=frozenset({"hot"})), {}, False),  # a score without tiers
        (ChangeFilter(causes=frozenset({"tier"})), {"cause": "tier"}, True),
    ],
)
def test_filters(where: ChangeFilter, fields: dict[str, Any], kept: bool) -> None:
    assert where.matches(ScoreChanged.from_record(record(**fields))) is kept


def test_a_record_written_with_the_old_schema_reads_as_its_tenant() -> None:
    """A score change written before the rename (field ``account_id``, plain Avro): the same
    bytes, so our reader schema reads its tenant as ``tenant_id``."""
    codec = Codec.load()
    old = fastavro.parse_schema(old_schema("score_changed"))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, old, {**record(), "account_id": "acme"})
    change = ScoreChanged.from_record(codec.decode(codec.score_changed, buf.getvalue()))
    assert change.tenant_id == "acme"
    assert codec.encode(codec.score_changed, record(tenant_id="acme")) == buf.getvalue()


def test_a_record_decoded_without_our_schema_may_name_the_tenant_account_id() -> None:
    old = {k: v for k, v in record().items() if k != "tenant_id"}
    assert ScoreChanged.from_record({**old, "account_id": "acme"}).tenant_id == "acme"


def test_account_id_is_a_deprecated_name_of_tenant_id() -> None:
    change = ScoreChanged.from_record(record(tenant_id="acme"))
    with pytest.warns(DeprecationWarning, match="use tenant_id"):
        assert change.account_id == "acme"


def test_filter_accounts_is_a_deprecated_name_of_tenants() -> None:
    with pytest.warns(DeprecationWarning, match="use tenants"):
        where = ChangeFilter(accounts=frozenset({"acme"}))
    assert where.tenants == frozenset({"acme"})
    assert where.matches(ScoreChanged.from_record(record(tenant_id="acme")))
    assert not where.matches(ScoreChanged.from_record(record()))
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="differ"):
        ChangeFilter(tenants=frozenset({"globex"}), accounts=frozenset({"acme"}))


def test_filter_takes_any_collection_and_refuses_a_bare_string() -> None:
    assert ChangeFilter(scores={"a", "b"}).scores == frozenset({"a", "b"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"ChangeFilter\.scores must be a set"):
        ChangeFilter(scores="engagement")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="directions"):
        ChangeFilter(directions=frozenset({"sideways"}))


def test_bad_arguments_are_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="start"):
        ScoreChanges("127.0.0.1:9", "g", start="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="commit_every"):
        ScoreChanges("127.0.0.1:9", "g", commit_every=0)
