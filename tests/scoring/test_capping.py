"""Capping: no half-open window of length P holds more than N awards, whatever the order."""

from __future__ import annotations

import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scoring_helpers import T0, H, Runner, one_score, visit

from streams.scoring import Verdict
from streams.scoring.capping import (
    cap_allows,
    flat,
    histories,
    prune,
    stored,
    take_slot,
    times_of,
    with_award,
    with_times,
    without_award,
)
from streams.scoring.plan.spec import Cap


@pytest.mark.parametrize(
    ("times", "new", "cap", "allowed"),
    [
        ((), 0, Cap(1, 10), True),  # nothing yet
        ((0,), 9, Cap(1, 10), False),  # within the window
        ((0,), 10, Cap(1, 10), True),  # exactly P later: a new window
        ((10,), 1, Cap(1, 10), False),  # earlier arrivals are checked too
        ((0, 20), 10, Cap(1, 10), True),  # fits between two awards
        ((0, 5), 9, Cap(2, 10), False),  # the third in one window
        ((0, 5), 15, Cap(2, 10), True),  # [5, 15) holds two with 15 excluded
        ((0, 5, 15), 9, Cap(2, 10), False),  # would make [0, 10) hold three
        ((0, 5, 15), 10, Cap(2, 10), True),  # [0, 10) and [5, 15) hold two each
    ],
)
def test_cap_allows(times: tuple[int, ...], new: int, cap: Cap, allowed: bool) -> None:
    assert cap_allows(times, new, cap) is allowed


def test_award_times_stay_sorted_and_prune() -> None:
    times: tuple[int, ...] = ()
    for t in (5, 1, 3, 3):
        times = with_award(times, t)
    assert times == (1, 3, 3, 5)
    assert without_award(times, 3) == (1, 3, 5)
    assert without_award(times, 4) is None
    assert prune(times, 3) == (3, 3, 5)
    assert prune(times, 0) is times


def test_take_slot_records_only_what_the_cap_allows() -> None:
    caps = take_slot((), "r", Cap(1, 10), 5)
    assert caps == ("r", 1, 5)
    assert take_slot(caps, "r", Cap(1, 10), 14) is None  # within 10 of 5
    caps = take_slot(caps, "r", Cap(1, 10), 15)
    assert caps is not None and stored(caps) == {"r": (5, 15)}


def test_cap_histories_are_one_flat_tuple_in_rule_order() -> None:
    caps = with_times((), "m", (7,))
    caps = with_times(caps, "b", (1, 2))
    caps = with_times(caps, "z", ())
    caps = with_times(caps, "m", (7, 9))
    assert caps == ("b", 2, 1, 2, "m", 2, 7, 9, "z", 0)
    assert times_of(caps, "m") == (7, 9) and times_of(caps, "x") == ()
    assert list(histories(caps)) == [("b", (1, 2)), ("m", (7, 9)), ("z", ())]
    assert stored(caps) == {"b": (1, 2), "m": (7, 9), "z": ()}
    assert flat(stored(caps)) == caps and flat({}) == () and stored(()) == {}
    assert flat({"z": (3,), "a": (1,)}) == ("a", 1, 1, "z", 1, 3)  # stored in any order
    gc.collect()
    assert not gc.is_tracked(caps)  # (strings and ints: the collector drops it at once)


def window_ok(times: list[int], cap: Cap) -> bool:
    ordered = sorted(times)
    return all(
        ordered[i + cap.max] - ordered[i] >= cap.per_ms for i in range(len(ordered) - cap.max)
    )


@settings(max_examples=60, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 72), min_size=1, max_size=25),
    most=st.integers(1, 3),
    seed=st.randoms(use_true_random=False),
)
def test_cap_holds_under_any_arrival_order(offsets: list[int], most: int, seed) -> None:
    plan = one_score(f"- {{id: r, on: page_visit, points: 1, cap: {{max: {most}, per: 24h}}}}")
    events = [visit(f"e{i}", T0 + offset * H) for i, offset in enumerate(offsets)]
    seed.shuffle(events)
    runner = Runner(plan)
    awarded = []
    for event in events:
        runner.feed(event)
        if runner.last.results[0].verdict is Verdict.SCORED:
            awarded.append(event.occurred_at_ms)
    assert window_ok(awarded, Cap(most, 24 * H))
    assert runner.value() == len(awarded)
    assert len(awarded) >= 1
