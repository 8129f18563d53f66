"""Case-insensitive glob matching, fast for the common literal-and-star patterns."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from typing import Any


def glob_predicate(
    pattern: str, get: Callable[[Mapping[str, Any]], Any]
) -> Callable[[Mapping[str, Any]], bool]:
    """Case-insensitive fnmatch; patterns made of literals and ``*`` avoid the regex engine."""
    if any(c in pattern for c in "?["):
        regex = re.compile(fnmatch.translate(pattern), re.IGNORECASE | re.DOTALL)
        return lambda f: type(value := get(f)) is str and regex.match(value) is not None
    parts = pattern.lower().split("*")
    head, middle, tail = parts[0], parts[1:-1], parts[-1]
    if len(parts) == 1:
        return lambda f: type(value := get(f)) is str and value.lower() == head
    shortest = len(head) + len(tail)

    def match(fields: Mapping[str, Any]) -> bool:
        value = get(fields)
        if type(value) is not str or len(value) < shortest:
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

    return match
