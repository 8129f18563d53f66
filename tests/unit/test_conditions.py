"""Conditions: every operator, combinators, typing and missing paths."""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from streams.scoring.catalog import path_problem
from streams.scoring.conditions import compile_condition

ROOTS = frozenset({"url", "amount", "status", "attributes"})


def compiled(spec: Any) -> Any:
    problems: list[tuple[str, str]] = []
    predicate = compile_condition(
        spec,
        check_path=partial(path_problem, roots=ROOTS),
        report=lambda f, m: problems.append((f, m)),
        field="where",
    )
    assert problems == [], problems
    assert predicate is not None
    return predicate


URL = {"url": "https://Example.com/Pricing?plan=pro"}
AMOUNT = {"amount": Decimal("125.50")}
ATTRS = {"attributes": {"industry": "saas", "size": Decimal(50), "vip": True, "emp": "120"}}


@pytest.mark.parametrize(
    ("spec", "fields", "expected"),
    [
        # eq on strings is exact and case-sensitive
        ({"url": {"eq": "https://Example.com/Pricing?plan=pro"}}, URL, True),
        ({"url": {"eq": "https://example.com/pricing?plan=pro"}}, URL, False),
        # eq on numbers compares as Decimal (125.5 == 125.50)
        ({"amount": {"eq": Decimal("125.5")}}, AMOUNT, True),
        # a numeric string compares as a number against a number operand
        ({"attributes.emp": {"eq": 120}}, ATTRS, True),
        # booleans equal only booleans
        ({"attributes.vip": {"eq": True}}, ATTRS, True),
        ({"attributes.size": {"eq": True}}, ATTRS, False),
        # ne is the negation of eq, so it holds when the path is missing
        ({"attributes.region": {"ne": "eu"}}, ATTRS, True),
        ({"attributes.industry": {"ne": "saas"}}, ATTRS, False),
        # in / not_in
        ({"attributes.industry": {"in": ["saas", "fintech"]}}, ATTRS, True),
        ({"attributes.size": {"in": [10, 50]}}, ATTRS, True),
        ({"attributes.industry": {"not_in": ["retail"]}}, ATTRS, True),
        ({"attributes.region": {"not_in": ["eu"]}}, ATTRS, True),
        ({"attributes.region": {"in": ["eu"]}}, ATTRS, False),
        # ordering on numbers
        ({"amount": {"gt": 100}}, AMOUNT, True),
        ({"amount": {"gte": Decimal("125.50")}}, AMOUNT, True),
        ({"amount": {"lt": 125}}, AMOUNT, False),
        ({"amount": {"lte": Decimal("125.5")}}, AMOUNT, True),
        # several operators on one path mean all of them (a range)
        ({"amount": {"gte": 100, "lt": 200}}, AMOUNT, True),
        # ordering on strings is lexicographic
        ({"attributes.industry": {"gt": "retail"}}, ATTRS, True),
        # ordering: a string field against a number operand that is not numeric
        ({"attributes.industry": {"gt": 5}}, ATTRS, False),
        # contains / starts_with are case-sensitive
        ({"url": {"contains": "Pricing"}}, URL, True),
        ({"url": {"contains": "pricing"}}, URL, False),
        ({"url": {"starts_with": "https://"}}, URL, True),
        # glob is case-insensitive and matches the whole value
        ({"url": {"glob": "*/pricing*"}}, URL, True),
        ({"url": {"glob": "*/pricing"}}, URL, False),
        # regex searches anywhere
        ({"url": {"regex": "plan=(pro|team)"}}, URL, True),
        ({"url": {"regex": "^plan"}}, URL, False),
        # exists
        ({"url": {"exists": True}}, URL, True),
        ({"url": {"exists": False}}, URL, False),
        ({"attributes.region": {"exists": False}}, ATTRS, True),
        # a missing path fails every other operator
        ({"attributes.region": {"contains": "e"}}, ATTRS, False),
        ({"amount": {"gt": 0}}, URL, False),
        # a null value counts as missing
        ({"url": {"exists": True}}, {"url": None}, False),
        # all / any / not
        ({"all": [{"url": {"contains": "Pricing"}}, {"url": {"contains": "pro"}}]}, URL, True),
        ({"any": [{"url": {"contains": "nope"}}, {"url": {"contains": "pro"}}]}, URL, True),
        ({"not": {"url": {"contains": "pro"}}}, URL, False),
        # a bare mapping with several paths means all
        ({"amount": {"gt": 1}, "url": {"exists": True}}, {**URL, **AMOUNT}, True),
        ({"amount": {"gt": 1}, "url": {"exists": True}}, AMOUNT, False),
    ],
)
def test_operators(spec: Any, fields: dict[str, Any], expected: bool) -> None:
    assert compiled(spec)(fields) is expected


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        # an empty condition
        ({}, ("where", "must be a non-empty mapping of paths or all/any/not")),
        # a path into a non-map field
        (
            {"url.host": {"eq": "x"}},
            ("where.url.host", "field 'url' is not a map; 'url.host' cannot reach into it"),
        ),
        # a map path must name one entry
        (
            {"attributes": {"exists": True}},
            (
                "where.attributes",
                "path 'attributes' must name one entry of the map, e.g. 'attributes.industry'",
            ),
        ),
        # exists needs a boolean
        ({"url": {"exists": "yes"}}, ("where.url.exists", "must be true or false (got 'yes')")),
        # in needs a list
        (
            {"url": {"in": "abc"}},
            (
                "where.url.in",
                "must be a list of 1 to 1000 strings, numbers or booleans (got 'abc')",
            ),
        ),
        # a too long pattern
        (
            {"url": {"glob": "x" * 257}},
            (
                "where.url.glob",
                "must be a non-empty string of at most 256 characters (got '" + "x" * 257 + "')",
            ),
        ),
        # any needs a list
        ({"any": {"url": {"eq": "x"}}}, ("where.any", "must be a non-empty list of conditions")),
    ],
)
def test_condition_mistakes(spec: Any, problem: tuple[str, str]) -> None:
    problems: list[tuple[str, str]] = []
    result = compile_condition(
        spec,
        check_path=partial(path_problem, roots=ROOTS),
        report=lambda f, m: problems.append((f, m)),
        field="where",
    )
    assert result is None
    assert problems == [problem]


def test_glob_memo_gives_the_same_answers_and_stays_bounded() -> None:
    """More distinct texts than the memo holds, each asked twice: answers as fnmatch's."""
    import fnmatch

    from streams.scoring.patterns import MEMO_LIMIT, glob_predicate

    for pattern in ("*/pricing*", "https://*.example.com/docs/?*", "exact"):
        match = glob_predicate(pattern, lambda f: f.get("url"))
        texts = [f"https://www.example.com/{'pricing' if i % 7 else 'docs'}/{i}"
                 for i in range(MEMO_LIMIT + 500)]  # fmt: skip
        texts += ["EXACT", "exact", "https://a.example.com/docs/x"]
        for text in texts + texts:
            expected = fnmatch.fnmatchcase(text.lower(), pattern.lower())
            assert match({"url": text}) is expected, (pattern, text)
        assert match({"url": 7}) is False
        assert match({}) is False
