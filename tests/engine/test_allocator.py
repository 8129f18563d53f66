"""streams.engine.allocator: the arena cap takes effect on glibc, 0 leaves the default, trim
runs."""

from __future__ import annotations

import platform

import pytest

from streams.engine import allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_zero_leaves_the_default() -> None:
    assert allocator.limit_arenas(0) is False


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_the_cap_takes_effect_and_trim_runs_on_glibc() -> None:
    assert allocator.limit_arenas(2) is True
    allocator.trim()  # (returns nothing; must not raise)


@pytest.mark.skipif(GLIBC, reason="other C libraries only")
def test_nothing_happens_elsewhere() -> None:
    assert allocator.limit_arenas(2) is False
