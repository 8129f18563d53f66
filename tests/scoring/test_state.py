"""A new state's lists start as shared empty lists (``state.NO_PENDING``, ``NO_TIMES``,
``NO_LINKS``, ``NO_SEGS``), and a ledger's seldom-filled maps as shared empty dicts
(``NO_FOLDED``, ``NO_STATICS``, ``NO_STANDBY``, ``NO_HOLDS``, ``NO_ANCHORS``, ``NO_MEMBERS``):
nothing may ever add to them in place, or every other state would see it. (Contributions and
cap histories are tuples, replaced whole.)
Traffic over weeks of event time, on plans that defer awards (quiet hours), expire and decay
contributions, fold old ones, award once, cap, hold, deduct for inactivity and roll contacts up
into deals and accounts, must leave them empty, and must have filled each kind somewhere. And a
change's id, built without a ``UUID`` object, is the ``uuid5`` it always was."""

from __future__ import annotations

import gc
import uuid
from pathlib import Path

import pytest

from streams.commands.offline import OfflineScorer
from streams.commands.traffic import TrafficShape, as_offline_line, generate
from streams.scoring import EntityState, Invalid, load_plan, parse_input, route
from streams.scoring import ledger as ledgers
from streams.scoring.outcomes import CHANGE_NAMESPACE, uuid5_text
from streams.scoring.state import (
    NO_ANCHORS,
    NO_CAPS,
    NO_FOLDED,
    NO_HOLDS,
    NO_LINKS,
    NO_MEMBERS,
    NO_PENDING,
    NO_SEALED,
    NO_SEGS,
    NO_STANDBY,
    NO_STATICS,
    NO_TIMES,
    NO_VERSIONS,
    Ledger,
)

SHARED_LISTS = (NO_PENDING, NO_TIMES, NO_LINKS, NO_SEGS)
SHARED_DICTS = (NO_FOLDED, NO_STATICS, NO_STANDBY, NO_HOLDS, NO_ANCHORS, NO_MEMBERS, NO_VERSIONS,
                NO_SEALED)  # fmt: skip
#: A ledger's fields that start as one of the shared empties.
SHARED_FIELDS = ("contribs", "pending", "active", "folded", "statics", "standby", "caps",
                 "holds", "anchors", "members", "versions")  # fmt: skip

ROOT = Path(__file__).resolve().parents[2]


def _score(plan_path: str) -> set[str]:
    """Score the traffic; the kinds of list that held something after some item."""
    plan = load_plan((ROOT / plan_path).read_text(), source=plan_path)
    scorer = OfflineScorer(plan)
    filled: set[str] = set()
    shape = TrafficShape(contacts=300, deals=40, step_ms=20 * 60_000)  # about 40 days
    for source, record in generate(3000, seed=11, shape=shape):
        parsed = parse_input(as_offline_line(source, record))
        if isinstance(parsed, Invalid):
            continue
        scorer.feed(parsed)
        for key in route(parsed):
            state = scorer.states[key]
            filled.update(["deal_links"] if state.deal_links else [])
            for ledger in state.scores.values():
                filled.update(name for name in SHARED_FIELDS if getattr(ledger, name))
    return filled


@pytest.mark.parametrize(
    ("plan_path", "filled"),
    [
        (
            "plans/reference-second-wave.yaml",
            {
                "contribs",
                "pending",
                "deal_links",
                "folded",
                "statics",
                "standby",
                "caps",
                "holds",
                "members",
                "versions",
            },
        ),
        ("plans/examples/activecampaign-deal-inactivity.yaml", {"contribs", "active"}),
    ],
)
def test_the_shared_empties_stay_empty(plan_path: str, filled: set[str]) -> None:
    assert _score(plan_path) >= filled
    assert SHARED_LISTS == ([], [], [], [])
    assert SHARED_DICTS == ({}, {}, {}, {}, {}, {}, {}, {}) and NO_CAPS == ()


def test_new_states_share_their_empty_lists_and_compare_by_value() -> None:
    first, second = Ledger(), Ledger()
    assert first.contribs == () and first.pending is NO_PENDING
    assert first.active is NO_TIMES and EntityState().deal_links is NO_LINKS
    assert EntityState().segs is NO_SEGS and EntityState().past_sealed is NO_SEALED
    assert (first.folded, first.statics, first.standby) == (NO_FOLDED, NO_STATICS, NO_STANDBY)
    assert first.anchors is NO_ANCHORS and first.members is NO_MEMBERS
    assert first.versions is NO_VERSIONS
    assert first.caps is NO_CAPS and first.holds is NO_HOLDS
    assert first.folded is NO_FOLDED and first.statics is NO_STATICS
    second.pending, second.statics = [], {}
    assert first == second


def test_contributions_are_a_tuple_the_collector_stops_tracking_and_never_changed() -> None:
    ledger = Ledger()
    first = ("r1", 5, "interest", 1_000, 9_000, "e1")
    ledgers.record(ledger, first)
    before = ledger.contribs
    ledgers.record(ledger, ("r2", 3, None, 2_000, None, "e2"))
    assert before == (first,)  # a new tuple: the one a reader (a decay memo) saw is as it was
    assert ledger.contribs == (first, ("r2", 3, None, 2_000, None, "e2"))
    assert ledger.sums == {"interest": 5, None: 3} and ledger.next_due_ms == 9_000
    # (a list would stay tracked for good; a tuple is untracked by a collection that finds its
    # items untracked, the contributions by the first, so at the latest by the second)
    gc.collect()
    gc.collect()
    assert not gc.is_tracked(ledger.contribs)
    held = ledger.contribs
    assert ledgers.take_back(ledger, "r1", 1_000) == first
    assert held == (first, ("r2", 3, None, 2_000, None, "e2"))
    assert ledger.contribs == (("r2", 3, None, 2_000, None, "e2"),) and ledger.sums["interest"] == 0
    assert ledgers.expire(ledger, 10_000) == [] and ledger.next_due_ms is None


@pytest.mark.parametrize(
    "name", ["", "acme\x1fcontact\x1fc-1\x1fengagement\x1f7", "\x1fdeal\x1fd-ż\x1ffit\x1f1"]
)
def test_change_ids_are_uuid5_of_the_namespace(name: str) -> None:
    assert uuid5_text(name) == str(uuid.uuid5(CHANGE_NAMESPACE, name))
