"""State serialization: compact, versioned, round-trips, and old (v1) blobs still load."""

from __future__ import annotations

from decimal import Decimal

import pytest
from scoring_helpers import T0, H, Runner, adj, ev, make_plan, visit

from streams.scoring import EntityKey, EntityState, StateFormatError, dumps, loads
from streams.scoring.serialize import CURRENT_VERSION, dumps_v1
from streams.scoring.state import LEDGER_FIELDS, NO_EPOCH

PLAN = make_plan(
    """
    scores:
      - name: s
        entity: contact
        timezone: Europe/Warsaw
        quiet_hours: {policy: defer, windows: [{from: "22:00", to: "07:00"}]}
        categories: {fit: {max: 30}}
        rules:
          - {id: pricing, on: page_visit, points: 30, cap: {max: 1, per: 1d}, expires_after: 30d}
          - {id: open, on: email.open, points: 5, repeat: once}
          - {id: fit, while: {attributes.size: {gte: 100}}, points: 20, category: fit}
    """
)

#: ``dumps_v1`` of the state built by ``build()`` below, written by the first release's encoder
#: and frozen here: later builds must keep reading it.
V1_BLOB = bytes.fromhex(
    "0184ac77617465726d61726b5f6d73cf0000018f55121700a47365656e9592cfe416f06cac09c142cf000001"
    "8f4d588d0092cfe6bb3833eb7cae6bcf0000018f4d588d0192cf815fda2bb383d494cf0000018f4d588d0292"
    "cf0feb521eb5de6760cf0000018f4d588d0392cf1a07317da40d8fb0cf0000018f55121700a570726f707382"
    "a473697a6582a576616c7565c70301323530a26174cf0000018f4d588d02a46e616d6582a576616c7565a341"
    "6e6ea26174cf0000018f4d588d02a673636f72657381a17389a373657105a5746f74616c37a865706f63685f"
    "6d73c0ad636f6e747269627574696f6e739296a770726963696e671ec0cf0000018f4d588d00cf0000018fe7"
    "d75500a2653196a46f70656e05c0cf0000018f4d588d01c0a26532a6666f6c64656490a77374617469637381"
    "a46f70656ecf0000018f4d588d01a46361707381a770726963696e6792cf0000018f4d588d00cf0000018f55"
    "121700a5686f6c647381a366697496a366697414a3666974cf0000018f4d588d02c0a26533a770656e64696e"
    "679193cf0000018f56929c80a265349196a770726963696e671ec0cf0000018f55121700cf0000018fef90df"
    "00a26534"
)

#: ``dumps`` of the same state by the second release (format v2, before stand-by matches and
#: property history), frozen here.
V2_BLOB = bytes.fromhex(
    "0297cf0000018f55121700cf0000018f5512170085cfe416f06cac09c142ce07b98a00cfe6bb3833eb7cae6b"
    "ce07b989ffcf815fda2bb383d494ce07b989fecf0feb521eb5de6760ce07b989fdcf1a07317da40d8fb00082"
    "a473697a6592c70301323530cf0000018f4d588d02a46e616d6592a3416e6ecf0000018f4d588d0281a1739b"
    "0537d3c0000000000000009296a770726963696e671ec0cf0000018f4d588d00cf0000018fe7d75500a26531"
    "96a46f70656e05c0cf0000018f4d588d01c0a2653282c023a3666974148081a46f70656ecf0000018f4d588d"
    "0181a770726963696e6792cf0000018f4d588d00cf0000018f5512170081a366697496a366697414a3666974"
    "cf0000018f4d588d02c0a265339193cf0000018f56929c80a265349196a770726963696e671ec0cf0000018f"
    "55121700cf0000018fef90df00a26534cf0000018f56929c809492cfe416f06cac09c142919aa17301001ea4"
    "72756c6591a770726963696e67a26531cf0000018f4d588d0090ac61633065386365363732326192cfe6bb38"
    "33eb7cae6b919aa173021e23a472756c6591a46f70656ea26532cf0000018f4d588d0190ac61633065386365"
    "363732326192cf815fda2bb383d494919aa173032337a5737461746591a3666974a26533cf0000018f4d588d"
    "0290ac61633065386365363732326192cf0feb521eb5de6760919aa17304373baa61646a7573746d656e7491"
    "ae61646a7573746d656e743a616464a26131cf0000018f4d588d0390ac616330653863653637323261cf0000"
    "018f56929c80"
)


#: ``dumps`` of ``build()`` plus a stand-by match and property history by the fourth release
#: (format v3, the last one with the outbox slot), frozen here.
V3_BLOB = bytes.fromhex(
    "0399cf0000018f55edd100cf0000018f5512170087cfe416f06cac09c142ce08954400cfe6bb3833eb7cae6b"
    "ce089543ffcf815fda2bb383d494ce089543fecf0feb521eb5de6760ce089543fdcf1a07317da40d8fb0ce00"
    "dbba00cf3c9a0d314bee4f2b00cf93e36ac959aac3e9ce0036ee8082a473697a6592d5013530cf0000018f55"
    "b6e280a46e616d6592a3416e6ecf0000018f4d588d0281a1739d0623d3c0000000000000009296a770726963"
    "696e671ec0cf0000018f4d588d00cf0000018fe7d75500a2653196a46f70656e05c0cf0000018f4d588d01c0"
    "a2653282c023a3666974008081a46f70656ecf0000018f4d588d0181a770726963696e6792cf0000018f4d58"
    "8d00cf0000018f55121700809193cf0000018f56929c80a265349196a770726963696e671ec0cf0000018f55"
    "121700cf0000018fef90df00a26534cf0000018f56929c8081a46f70656e96a46f70656e05c0cf0000018f55"
    "edd100c0a265368090cf0000018f56929c8081a473697a659192c70301323530cf0000018f4d588d02cf0000"
    "018f31059300"
)


#: ``build_with_history()``'s state as the v4 release wrote it (frozen).
V4_BLOB = bytes.fromhex(
    "0498cf0000018f55edd100cf0000018f5512170087cfe416f06cac09c142ce08954400cfe6bb3833eb7cae6b"
    "ce089543ffcf815fda2bb383d494ce089543fecf0feb521eb5de6760ce089543fdcf1a07317da40d8fb0ce00"
    "dbba00cf3c9a0d314bee4f2b00cf93e36ac959aac3e9ce0036ee8082a473697a6592d5013530cf0000018f55"
    "b6e280a46e616d6592a3416e6ecf0000018f4d588d0281a1739d0623d3c0000000000000009296a770726963"
    "696e671ec0cf0000018f4d588d00cf0000018fe7d75500a2653196a46f70656e05c0cf0000018f4d588d01c0"
    "a2653282c023a3666974008081a46f70656ecf0000018f4d588d0181a770726963696e6792cf0000018f4d58"
    "8d00cf0000018f55121700809193cf0000018f56929c80a265349196a770726963696e671ec0cf0000018f55"
    "121700cf0000018fef90df00a26534cf0000018f56929c8081a46f70656e96a46f70656e05c0cf0000018f55"
    "edd100c0a2653680cf0000018f56929c8081a473697a659192c70301323530cf0000018f4d588d02cf000001"
    "8f31059300"
)


def build() -> Runner:
    runner = Runner(PLAN)
    runner.feed(
        visit("e1", T0),
        ev("email.open", "e2", T0 + 1),
        ev("contact.updated", "e3", T0 + 2, attributes={"size": 250, "name": "Ann"}),
        adj("a1", T0 + 3, "add", 4, expires_after="1d"),
        visit("e4", T0 + 36 * H),  # deferred by quiet hours (00:00 Warsaw)
    )
    return runner


V5_BLOB = bytes.fromhex(  # the v5 writer's bytes of the same state (frozen)
    "0598cf0000018f55edd100cf0000018f5512170087cfe416f06cac09c142ce08954400cfe6bb3833eb7cae6b"
    "ce089543ffcf815fda2bb383d494ce089543fecf0feb521eb5de6760ce089543fdcf1a07317da40d8fb0ce00"
    "dbba00cf3c9a0d314bee4f2b00cf93e36ac959aac3e9ce0036ee8082a473697a6592d5013530cf0000018f55"
    "b6e280a46e616d6592a3416e6ecf0000018f4d588d0281a173dc00110623d3c0000000000000009296a77072"
    "6963696e671ec0cf0000018f4d588d00cf0000018fe7d75500a2653196a46f70656e05c0cf0000018f4d588d"
    "01c0a2653282c023a3666974008081a46f70656ecf0000018f4d588d0181a770726963696e6792cf0000018f"
    "4d588d00cf0000018f55121700809193cf0000018f56929c80a265349196a770726963696e671ec0cf000001"
    "8f55121700cf0000018fef90df00a26534cf0000018f56929c8081a46f70656e96a46f70656e05c0cf000001"
    "8f55edd100c0a2653680d3c000000000000000c090c0cf0000018f56929c8081a473697a659192c703013235"
    "30cf0000018f4d588d02cf0000018f31059300"
)
KEY = EntityKey(None, "contact", "c1")


def test_v1_blob_still_loads() -> None:
    old = loads(V1_BLOB)
    current = build().states[KEY]
    assert old.watermark_ms == current.watermark_ms == T0 + 36 * H
    assert old.seen == current.seen
    assert old.props == {"size": (Decimal(250), T0 + 2), "name": ("Ann", T0 + 2)}
    ledger, expected = old.scores["s"], current.scores["s"]
    for name in (
        "seq",
        "total",
        "contribs",
        "sums",
        "folded",
        "statics",
        "caps",
        "holds",
        "pending",
        "next_due_ms",
        "epoch_ms",
    ):
        assert getattr(ledger, name) == getattr(expected, name), name
    assert old.next_due_ms == current.next_due_ms


@pytest.mark.parametrize("blob", [V1_BLOB, V2_BLOB], ids=["v1", "v2"])
def test_older_blobs_load_with_new_fields_empty(blob: bytes) -> None:
    old = loads(blob)
    ledger = old.scores["s"]
    assert ledger.standby == {}
    # the property history starts after the newest property time, each held state rule
    # anchored at its hold
    assert old.past == {}
    assert old.floor_ms == T0 + 3
    assert ledger.anchors == {"fit": T0 + 2}
    assert dumps(old)[0] == CURRENT_VERSION


def test_v2_blob_loads_like_the_current_state() -> None:
    old, current = loads(V2_BLOB), build().states[KEY]
    for name in ("watermark_ms", "compacted_ms", "seen", "props", "next_due_ms"):
        assert getattr(old, name) == getattr(current, name), name
    for name in LEDGER_FIELDS:
        if name not in ("standby", "anchors"):
            assert getattr(old.scores["s"], name) == getattr(current.scores["s"], name), name


def test_stand_by_and_history_round_trip() -> None:
    runner = build()
    runner.feed(
        ev("email.open", "e6", T0 + 40 * H),  # refused (static): stands by
        ev("contact.updated", "e7", T0 + 39 * H, attributes={"size": 50}),  # 250 goes to past
    )
    state = runner.states[KEY]
    assert state.scores["s"].standby == {"open": ("open", 5, None, T0 + 40 * H, None, "e6")}
    assert state.past == {"size": [(Decimal(250), T0 + 2)]}
    assert loads(dumps(state)) == state


def build_with_history() -> Runner:
    runner = build()
    runner.feed(
        ev("email.open", "e6", T0 + 40 * H),  # refused (static): stands by
        ev("contact.updated", "e7", T0 + 39 * H, attributes={"size": 50}),  # 250 goes to past
    )
    return runner


#: The floor of the property history in the frozen v3-v5 blobs: their writers' compaction moved
#: it to the horizon at every run; since, it moves only when a run drops some of the history,
#: which no run did here (so the state built today still has its history from the start).
FROZEN_FLOOR_MS = T0 - 132 * H


def built_with_history() -> EntityState:
    """The state of ``build_with_history`` with the frozen blobs' history floor."""
    state = build_with_history().states[KEY]
    assert state.floor_ms == NO_EPOCH  # nothing of the history was dropped: no floor moved
    state.floor_ms = FROZEN_FLOOR_MS
    return state


def test_v3_blob_loads_as_the_same_state() -> None:
    state = built_with_history()
    assert loads(V3_BLOB) == state
    assert state.past == {"size": [(Decimal(250), T0 + 2)]}  # a Decimal in the history
    # v4 is the same encoding of each value without v3's empty outbox slot
    assert len(V4_BLOB) == len(V3_BLOB) - 1


def test_v4_blob_loads_as_the_same_state_without_decay_or_inactivity() -> None:
    state = built_with_history()
    old = loads(V4_BLOB)
    assert old == state  # nothing decays in this plan: the new fields keep their defaults
    assert [(s.decayed_ms, s.decay_due_ms, s.active, s.inactive_due_ms)
            for s in old.scores.values()] == [(NO_EPOCH, None, [], None)]  # fmt: skip
    # v5 appends four fields to each score row (a negative int of 9 bytes, nil, an empty
    # list, nil), whose 17 items take a 3-byte array header instead of 1
    assert len(V5_BLOB) == len(V4_BLOB) + 12 + 2


def test_v5_blob_loads_as_the_same_state_without_rollups() -> None:
    state = built_with_history()
    old = loads(V5_BLOB)
    assert old == state  # no roll-ups in this plan: the new fields keep their defaults
    assert (old.rv, old.account_link, old.deal_links) == (0, None, [])
    assert [(s.members, s.rolled) for s in old.scores.values()] == [({}, 0)]
    # v6 appends two fields to each score row (an empty map, 0) and three to the body (0,
    # nil, an empty list), whose 11 items still take a 1-byte array header
    assert len(dumps(state)) == len(V5_BLOB) + 2 + 3


def test_corrupt_v6_blobs_raise_state_format_errors() -> None:
    blob = dumps(build_with_history().states[KEY])
    for broken in (blob[:-3], blob[:1] + b"\x93\x01\x02\x03", blob[:1] + b"\xc7\x01\x09x"):
        with pytest.raises(StateFormatError):
            loads(broken)


def test_v1_encoder_is_frozen() -> None:
    assert dumps_v1(build().states[KEY]) == V1_BLOB


def test_round_trip_and_version_byte() -> None:
    state = build().states[KEY]
    blob = dumps(state)
    assert blob[0] == CURRENT_VERSION == 6
    assert loads(blob) == state
    assert dumps(loads(blob)) == blob


def test_loaded_state_keeps_scoring_identically() -> None:
    a, b = build(), build()
    b.states[KEY] = loads(dumps(b.states[KEY]))
    more = [visit("e5", T0 + 72 * H), adj("r", T0 + 73 * H, "reset")]
    assert a.feed(*more) == b.feed(*more)
    assert dumps(a.states[KEY]) == dumps(b.states[KEY])


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "empty state blob"),  # nothing stored
        (b"\x09\x90", "unknown state format version 9 (this build reads 1-7)"),  # from the future
        (b"\x02\xc1", "corrupt state blob: "),  # msgpack garbage
        (b"\x02\x93\x01\x02\x03", "corrupt state blob: "),  # wrong shape
    ],
)
def test_corrupt_blobs_raise_state_format_error(blob: bytes, message: str) -> None:
    with pytest.raises(StateFormatError) as caught:
        loads(blob)
    assert str(caught.value).startswith(message)
