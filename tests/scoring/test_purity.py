"""The scoring core stays pure: no clock, environment, randomness or I/O (besides import-linter)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "streams" / "scoring"
FORBIDDEN = [
    (r"\bnow\(", "reads the clock"),
    (r"utcnow|today\(", "reads the clock"),
    (r"\btime\.\w+\(", "calls the time module"),
    (r"\bimport (os|time|random|socket|asyncio|subprocess)\b", "imports an impure module"),
    (r"\bfrom (os|time|random|socket|asyncio|subprocess)\b", "imports an impure module"),
    (r"\bopen\(|\benviron\b|\bgetenv\b|\bprint\(", "does I/O or reads the environment"),
    (r"\beval\(|\bexec\(|__import__", "executes code"),
]


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_is_pure(path: Path) -> None:
    text = path.read_text()
    found = [
        f"{path.name}:{n}: {why}: {line.strip()}"
        for n, line in enumerate(text.splitlines(), 1)
        for pattern, why in FORBIDDEN
        if re.search(pattern, line)
    ]
    assert found == []


def test_core_modules_are_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in CORE.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 300} == {}
