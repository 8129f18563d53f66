"""Tenant plans' pure parts (``streams.engine.tenants``): checking a ``plans`` record, the switch of
one partition at a plan record, the texts kept under the reserved store key (a recorded transaction
and real RocksDB, no Kafka), and the plan records on the entity-events topic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.engine.tenants import RECOMPUTE_HEADER, Checked, TenantPlans, check, status_record
from streams.scoring import EntityKey
from streams.state.store import PLANS_KEY, PartitionStore, StoreOptions, Write, pack_value
from streams.wire import records
from tests.engine.test_loop_parts import PLAN, T0, RecordedProducer, make_stage, make_txn, visit

TENANT = """
version: acme-2
scores:
  - name: s
    entity: contact
    rules:
      - {id: visit, on: page_visit, points: 7}
"""


def acme(contact: str) -> bytes:
    return records.entity_key_bytes(EntityKey("acme", "contact", contact))


@pytest.mark.parametrize(
    ("key", "value", "status", "error"),
    [
        (b"acme", TENANT.encode(), "accepted", None),
        (b"acme", None, "removed", None),  # a tombstone: back to the default plan
        (None, TENANT.encode(), "rejected", "must name the tenant"),
        (b"  ", TENANT.encode(), "rejected", "must name the tenant"),
        (b"\xff", TENANT.encode(), "rejected", "not UTF-8"),
        (b"acme", b"\xff\xfe", "rejected", "not UTF-8 text"),
        (b"acme", b"x" * (512 * 1024 + 1), "rejected", "at most"),
        # every mistake, each naming the score, rule and field
        (
            b"acme",
            TENANT.replace("points: 7", "points: lots").encode(),
            "rejected",
            "score 's', rule 'visit'",
        ),
        (b"acme", b"scores: [", "rejected", "YAML"),
    ],
)
def test_a_plans_record_is_checked(key: bytes | None, value: bytes | None, status: str,
                                   error: str | None) -> None:  # fmt: skip
    checked = check(key, value)
    assert checked.status == status
    if error is None:
        assert checked.errors == ()
    else:
        assert any(error in e for e in checked.errors), checked.errors
    assert (checked.version == "acme-2") is (status == "accepted")


def test_the_status_record_names_its_plans_record() -> None:
    body = json.loads(status_record(Checked("acme", "accepted", "v9", "text"),
                                    source=("plans", 0, 12), at_ms=5))  # fmt: skip
    source = {"topic": "plans", "partition": 0, "offset": 12}
    assert body == {"tenant": "acme", "status": "accepted", "version": "v9", "errors": [],
                    "at_ms": 5, "recompute_from_ms": None, "shadow": False,
                    "source": source}  # fmt: skip


def test_a_plan_record_round_trips_through_the_entity_topic() -> None:
    raw = records.encode_plan("acme", "v2", TENANT, now_ms=T0, source=("plans", 0, 3))
    assert records.decode(raw) == records.PlanRecord("acme", "v2", TENANT, T0, ("plans", 0, 3))
    removal = records.decode(records.encode_plan("acme", None, None, now_ms=T0,
                                                 source=("plans", 0, 4)))  # fmt: skip
    assert isinstance(removal, records.PlanRecord) and removal.text is None


def test_a_partition_switches_at_the_plan_record_and_only_for_its_tenant() -> None:
    stage, _ = make_stage()
    assert stage.on_item(0, acme("c1"), visit("e1", T0)).changes[0].delta == 5
    stage.tenants.switch(0, "acme", TENANT)
    after = stage.on_item(0, acme("c1"), visit("e2", T0 + 1)).changes[0]
    assert (after.delta, after.plan_version) == (7, "acme-2")
    # another tenant, another partition: still the default plan
    other = records.entity_key_bytes(EntityKey("globex", "contact", "c1"))
    assert stage.on_item(0, other, visit("e3", T0 + 2)).changes[0].plan_version == "t1"
    stage.loaders[1] = stage.loaders[0]
    assert stage.on_item(1, acme("c9"), visit("e4", T0 + 3)).changes[0].delta == 5
    stage.tenants.switch(0, "acme", None)  # removed: the default again
    assert stage.on_item(0, acme("c1"), visit("e5", T0 + 4)).changes[0].delta == 5


def test_the_partitions_of_one_worker_share_a_compiled_plan() -> None:
    tenants = TenantPlans(PLAN)
    assert tenants.switch(0, "acme", TENANT) is tenants.switch(1, "acme", TENANT)
    assert tenants.running() == {"acme": {"acme-2": [0, 1]}}
    assert tenants.tenant_plan("acme").version == "acme-2"
    assert tenants.tenant_plan("globex") is PLAN and tenants.tenant_plan(None) is PLAN


def test_the_texts_are_committed_with_the_states_and_come_back_from_the_store(
    tmp_path: Path,
) -> None:
    stage, store = make_stage()
    producer = RecordedProducer()
    txn = make_txn(producer)
    stage.tenants.switch(0, "acme", TENANT)
    txn.put(0, PLANS_KEY, pack_value(None, stage.tenants.blob(0)))
    stage.on_item(0, acme("c1"), visit("e1", T0))
    txn.consumed("entity-events", 0, 7)
    txn.commit(stage.cache, {0: store}, lambda: "meta")
    # the texts went to the changelog partition of the states, after them, before the offsets
    produced = [c[1:] for c in producer.calls if c[0] == "produce"]
    assert produced[-1] == ("changelog", PLANS_KEY, 0)
    assert PLANS_KEY in store.values
    # a new owner of the partition (or a restart) loads them from the store
    fresh = TenantPlans(PLAN)
    assert fresh.load(0, store.values[PLANS_KEY][8:]) == []
    assert fresh.plan_for(0, "acme").version == "acme-2"
    # the real store does not count the reserved key as an entity, restored or written
    real = PartitionStore(tmp_path / "p0", StoreOptions())
    real.apply_changelog([(PLANS_KEY, store.values[PLANS_KEY]),
                          (acme("c1"), store.values[acme("c1")])], 3)  # fmt: skip
    real.write([Write(PLANS_KEY, pack_value(None, b"\x80"), None, None, True)], 4)
    assert real.entities == 1
    real.close()


def test_an_abort_forgets_the_switch_and_the_store_copy_stays() -> None:
    stage, _ = make_stage()
    txn = make_txn(RecordedProducer())
    stage.tenants.switch(0, "acme", TENANT)
    txn.put(0, PLANS_KEY, pack_value(None, stage.tenants.blob(0)))
    txn.abort(stage.cache)
    assert txn.extras == {}
    assert stage.tenants.pending == {0}
    stage.tenants.load(0, None)  # what the loop does on abort: the store has none
    assert stage.tenants.plan_for(0, "acme") is PLAN and not stage.tenants.pending


@pytest.mark.parametrize(
    ("header", "status", "from_ms"),
    [
        (b"1764460800000", "accepted", 1764460800000),
        (b"\xc2\xb2", "rejected", None),  # "²": a digit to str.isdigit, not to int()
        (b"1" * 40, "rejected", None),  # would overflow the entity-events record
        (b"-5", "rejected", None),
        (b"soon", "rejected", None),
    ],
)
def test_the_recompute_header_is_epoch_millis_or_the_record_is_rejected(
    header: bytes, status: str, from_ms: int | None
) -> None:
    checked = check(b"acme", TENANT.encode(), [(RECOMPUTE_HEADER, header)])
    assert (checked.status, checked.recompute_from_ms) == (status, from_ms)
    # a removal cannot recompute
    assert check(b"acme", None, [(RECOMPUTE_HEADER, b"1")]).status == "rejected"


def test_a_copy_applied_already_is_recognised_and_survives_a_reload() -> None:
    tenants = TenantPlans(PLAN)
    tenants.switch(0, "acme", TENANT, 7)
    assert tenants.was_applied(0, "acme", 7) and tenants.was_applied(0, "acme", 3)
    assert not tenants.was_applied(0, "acme", 8) and not tenants.was_applied(1, "acme", 7)
    tenants.switch(0, "acme", None, 9)  # removed: the offset is still remembered
    again = TenantPlans(PLAN)
    again.load(0, tenants.blob(0))
    assert again.was_applied(0, "acme", 9) and again.plan_for(0, "acme") is PLAN


def test_a_stored_text_this_version_cannot_compile_leaves_the_default_loudly() -> None:
    import msgpack

    blob = msgpack.packb({"texts": {"acme": "scores: [", "globex": TENANT}, "applied": {}})
    tenants = TenantPlans(PLAN)
    failed = tenants.load(0, blob)
    assert len(failed) == 1 and failed[0].startswith("tenant acme:")
    assert tenants.plan_for(0, "acme") is PLAN
    assert tenants.plan_for(0, "globex").version == "acme-2"
