"""Plan fuzzing (Hypothesis): any document, however wrong, is either a plan or a ``PlanError``
listing what is wrong, field by field; never another exception (a traceback for the user).

Documents are the reference plan with one place replaced by something hostile: wrong types,
non-string keys (what a YAML 1.1 dumper writes for ``on:``), deep nesting, huge numbers, NaN,
odd Unicode, long and catastrophic regular expressions, every field out of range.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.scoring import PlanError, load_plan

REFERENCE = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "plans" / "reference.yaml").read_text()
)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**15, max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["", "0", "-1", "1e309", "24:00", "25:61", "99999d", "1h", "-5m", "mon",
                     "(a+)+$", "(" * 300, "[" * 50, "\\", "*" * 600, "x" * 5000, "Europe/../etc",
                     "\u202e\u0000", "page_visit", "contact", "deal", "skip", "defer", "once"]),
)  # fmt: skip
FIELD_NAMES = ["on", "where", "points", "cap", "id", "name", "at", "below"]
keys = st.one_of(
    st.text(max_size=12), st.integers(), st.booleans(), st.none(), st.sampled_from(FIELD_NAMES)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += paths(value, (*prefix, i))
    return out


PATHS = paths(REFERENCE)[1:]


def replaced(path: tuple[Any, ...], value: Any, as_key: bool) -> Any:
    document = copy.deepcopy(REFERENCE)
    node = document
    for part in path[:-1]:
        node = node[part]
    last = path[-1]
    if as_key and isinstance(node, dict):  # the key itself is replaced (value kept)
        node[value if isinstance(value, (str, int, bool, float, type(None))) else str(value)] = (
            node.pop(last)
        )
    else:
        node[last] = value
    return document


def check(document: Any) -> None:
    try:
        text = yaml.safe_dump(document, allow_unicode=True)
    except yaml.YAMLError:
        return  # not representable as YAML: nothing a user could write
    try:
        load_plan(text, source="fuzz.yaml")
    except PlanError as error:
        assert error.issues, "a PlanError must say what is wrong"
        for issue in error.issues:
            assert str(issue).startswith("fuzz.yaml"), issue


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=values, as_key=st.booleans())
def test_a_hostile_value_anywhere_is_a_plan_error_or_a_plan(path: Any, value: Any,
                                                            as_key: bool) -> None:  # fmt: skip
    check(replaced(path, value, as_key))


@settings(max_examples=100, deadline=None)
@given(value=values)
def test_a_hostile_document_is_a_plan_error(value: Any) -> None:
    check(value)


def test_deep_nesting_and_huge_numbers() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    huge_threshold = {
        "name": "s",
        "entity": "contact",
        "thresholds": [{"name": "a", "at": 10**400}],
    }
    infinite_limit = {"name": "s", "entity": "contact", "limits": {"min": math.inf}}
    checked = 0
    for hostile in (deep, {"scores": deep}, {"scores": [huge_threshold]},
                    {"scores": [infinite_limit]}):  # fmt: skip
        try:
            text = yaml.safe_dump(hostile)
        except (yaml.YAMLError, RecursionError):
            continue
        checked += 1
        with pytest.raises(PlanError):
            load_plan(text, source="fuzz.yaml")
    assert checked >= 2
