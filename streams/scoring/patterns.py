"""Case-insensitive glob matching, fast for the common literal-and-star patterns.

Each pattern remembers its answer per text it has seen (a bounded memo, cleared when full):
traffic repeats the same URLs, and a dict lookup is cheaper than lower-casing and searching.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any, Final

#: Distinct texts remembered per pattern before the memo starts over.
MEMO_LIMIT: Final = 4096


def glob_predicate(
    pattern: str, get: Callable[[dict[str, Any]], Any]
) -> Callable[[dict[str, Any]], bool]:
    """Case-insensitive fnmatch; patterns made of literals and ``*`` avoid the regex engine."""
    test = _text_test(pattern)
    memo: dict[str, bool] = {}

    def match(fields: dict[str, Any]) -> bool:
        value = get(fields)
        if type(value) is not str:
            return False
        found = memo.get(value)
        if found is None:
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            found = memo[value] = test(value)
        return found

    return match


def _text_test(pattern: str) -> Callable[[str], bool]:
    if any(c in pattern for c in "?["):
        regex = re.compile(fnmatch.translate(pattern), re.IGNORECASE | re.DOTALL)
        return lambda value: regex.match(value) is not None
    parts = pattern.lower().split("*")
    head, middle, tail = parts[0], parts[1:-1], parts[-1]
    if len(parts) == 1:
        return lambda value: value.lower() == head
    shortest = len(head) + len(tail)

    def test(value: str) -> bool:
        if len(value) < shortest:
            return False
        text = value.lower()
        if not text.startswith(head) or not text.endswith(tail):
            return False
        position, end = len(head), len(text) - len(tail)
        for part in middle:
            found = text.find(part, position, end)
            if found < 0:
                return False
            position = found + len(part)
        return True

    return test
