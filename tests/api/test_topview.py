"""Top lists: the view of the ``scores`` topic against a brute-force sort, its memory bound,
and the validation of ``GET /top`` queries."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.api.http import top_answer
from streams.api.topview import TopView
from streams.scoring import load_plan

TENANTS = (None, "t1")
KINDS = ("contact", "deal")
SCORES = ("a", "b")

updates = st.lists(
    st.tuples(
        st.sampled_from(TENANTS),
        st.sampled_from(KINDS),
        st.sampled_from(SCORES),
        st.sampled_from([f"e{i}" for i in range(12)]),
        st.integers(-50, 50),
        st.sampled_from([None, "hot", "cold"]),
    ),
    max_size=120,
)


@settings(max_examples=200, deadline=None)
@given(updates, st.integers(1, 15), st.sampled_from([None, "hot", "cold"]))
def test_the_view_equals_a_brute_force_sort_of_the_latest_values(
    rows: list[tuple[str | None, str, str, str, int, str | None]], n: int, tier: str | None
) -> None:
    view = TopView(per_tenant=1000)
    small = TopView(per_tenant=6)  # pushes entries out: exact whenever it says complete
    latest: dict[tuple[str | None, str, str, str], tuple[int, str | None]] = {}
    for tenant, kind, score, entity, value, tier_ in rows:
        view.update(tenant, kind, score, entity, value, tier_)
        small.update(tenant, kind, score, entity, value, tier_)
        latest[(tenant, kind, score, entity)] = (value, tier_)
    for tenant in TENANTS:
        for kind in KINDS:
            for score in SCORES:
                ranked = sorted(((-v, e), t) for (tn, k, s, e), (v, t) in latest.items()
                                if (tn, k, s) == (tenant, kind, score))  # fmt: skip
                expected = [(rank, e, -negative, t) for rank, ((negative, e), t)
                            in enumerate(ranked, 1) if tier is None or t == tier][:n]  # fmt: skip
                entries, complete = view.top(tenant, kind, score, n, tier)
                assert [(x.rank, x.entity_id, x.value, x.tier) for x in entries] == expected
                assert complete
                entries, complete = small.top(tenant, kind, score, n, tier)
                if complete:  # (ranks count only what the small view holds)
                    assert [(x.entity_id, x.value) for x in entries] == [
                        (e, v) for _, e, v, _ in expected
                    ]


def test_memory_is_bounded_per_tenant_and_an_overfull_list_says_so() -> None:
    view = TopView(per_tenant=3)
    for i in range(5):
        view.update("t1", "contact", "a", f"c{i}", i * 10, None)
    view.update("t2", "contact", "a", "x", 1, None)  # another tenant has its own budget
    entries, complete = view.top("t1", "contact", "a", 10)
    assert [(e.entity_id, e.value) for e in entries] == [("c4", 40), ("c3", 30), ("c2", 20)]
    assert not complete and view.entries("t1") == 3  # c0 (0) and c1 (10) were pushed out
    assert view.top("t1", "contact", "a", 3)[1]  # 20 is above 10: the top 3 are exact
    assert view.top("t2", "contact", "a", 10) == (view.top("t2", "contact", "a", 10)[0], True)
    view.update("t1", "contact", "a", "c0", 35, None)  # a pushed-out entity's next change
    assert [e.entity_id for e in view.top("t1", "contact", "a", 10)[0]] == ["c4", "c0", "c3"]
    # (c0's return pushed c2, at 20, out) c4 falls to 5: c2 belongs above it but is out
    view.update("t1", "contact", "a", "c4", 5, None)
    entries, complete = view.top("t1", "contact", "a", 3)
    assert [(e.entity_id, e.value) for e in entries] == [("c0", 35), ("c3", 30), ("c4", 5)]
    assert not complete  # 5 is not above 20, the highest value pushed out
    assert view.top("t1", "contact", "a", 2)[1]  # 30 is: the top 2 are exact


PLAN = load_plan("""
scores:
  - name: engagement
    entity: contact
    tiers: [{name: cold, below: 10}, {name: hot}]
    rules: [{id: v, on: page_visit, points: 5}]
  - {name: plain, entity: contact, rules: [{id: v, on: page_visit, points: 1}]}
""", source="p.yaml")  # fmt: skip


def test_queries_are_checked_and_answered() -> None:
    view = TopView(per_tenant=100)
    view.update(None, "contact", "engagement", "c1", 12, "hot")
    view.update(None, "contact", "engagement", "c2", 3, "cold")
    ok = top_answer(view, "contact", {"score": ["engagement"], "tier": ["cold"]}, None, PLAN)
    entry = {"rank": 2, "entity_id": "c2", "value": 3, "tier": "cold"}  # ranked among all
    assert ok == {"tenant": None, "entity": "contact", "score": "engagement", "tier": "cold",
                  "n": 10, "complete": True, "entries": [entry]}  # fmt: skip
    bad = {
        ("lead", "engagement", "10", ""): "entity must be one of ('contact', 'deal', 'account')",
        ("contact", "nope", "10", ""): "score must be one of the plan's contact scores: "
                                       "engagement, plain",
        ("contact", "engagement", "0", ""): "n must be a whole number from 1 to 1000 (got '0')",
        ("contact", "engagement", "x", ""): "n must be a whole number from 1 to 1000 (got 'x')",
        ("contact", "engagement", "5", "warm"): "tier must be one of the score's tiers "
                                                "(cold, hot)",
        ("contact", "plain", "5", "hot"): "tier must be one of the score's tiers (none: the "
                                          "score has no tiers)",
    }  # fmt: skip
    for (entity, score, n, tier), error in bad.items():
        query = {"score": [score], "n": [n], "tier": [tier]}
        assert top_answer(view, entity, query, None, PLAN) == {"error": error}


class _Error:
    def __init__(self, code: int, fatal: bool = False) -> None:
        self._code, self._fatal = code, fatal

    def code(self) -> int:
        return self._code

    def fatal(self) -> bool:
        return self._fatal

    def __str__(self) -> str:
        return f"error {self._code}"


class _Message:
    def __init__(self, partition: int, value: bytes | None, error: _Error | None = None) -> None:
        self._partition, self._value, self._error = partition, value, error

    def error(self) -> _Error | None:
        return self._error

    def value(self) -> bytes | None:
        return self._value

    def partition(self) -> int:
        return self._partition


class _Consumer:
    """A recorded batch per ``consume`` call, as confluent-kafka returns them."""

    def __init__(self, batches: list[list[_Message]]) -> None:
        self.batches, self.asked = batches, []  # type: list[int]

    def consume(self, num_messages: int, timeout: float) -> list[_Message]:
        self.asked.append(num_messages)
        return self.batches.pop(0) if self.batches else []


def test_the_feed_reads_batches_in_order_and_takes_ended_partitions_out() -> None:
    from confluent_kafka import KafkaError

    from streams.wire.reading import consume_values

    eof, other = KafkaError._PARTITION_EOF, KafkaError._TRANSPORT
    consumer = _Consumer([
        [_Message(0, b"a"), _Message(1, b"b"), _Message(0, None, _Error(eof)),
         _Message(1, None), _Message(2, None, _Error(other)), _Message(1, b"c")],
        [_Message(1, None, _Error(eof)), _Message(2, b"d"),
         _Message(2, None, _Error(other, fatal=True)), _Message(2, b"never")],
    ])  # fmt: skip
    pending = {0, 1, 2}
    # a tombstone (no value) and a passing error are skipped, the order is the log's
    assert consume_values(consumer, pending, batch=7) == ([b"a", b"b", b"c"], None)  # type: ignore[arg-type]
    assert pending == {1, 2} and consumer.asked == [7]
    # a fatal error ends the batch: what came before it is still returned
    assert consume_values(consumer, pending) == ([b"d"], "error -195")  # type: ignore[arg-type]
    assert pending == {2}
    assert consume_values(consumer, pending) == ([], None)  # type: ignore[arg-type]
