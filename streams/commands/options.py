"""Command-line options shared by several commands.

The tenant option is ``--tenant``; ``--account``, its old name, still works and says it is
deprecated (docs/migration.md): "account" now only means a company account (entity kind
``account``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

DEPRECATED_TENANT_OPTION = "--account"


class _TenantAction(argparse.Action):
    """Stores (or appends) the tenant; warns on stderr when given under its old name."""

    def __init__(self, *args: Any, append: bool = False, **kwargs: Any) -> None:
        self.append = append
        super().__init__(*args, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if option_string == DEPRECATED_TENANT_OPTION:
            print(f"{parser.prog}: {DEPRECATED_TENANT_OPTION} is deprecated: use --tenant",
                  file=sys.stderr)  # fmt: skip
        if self.append:
            values = [*(getattr(namespace, self.dest, None) or []), values]
        setattr(namespace, self.dest, values)


def add_tenant_option(parser: argparse.ArgumentParser, help_text: str, *, required: bool = False,
                      append: bool = False) -> None:  # fmt: skip
    """``--tenant`` (and the deprecated ``--account``), stored as ``args.tenant``: a string, None
    when not given, or a list with ``append``."""
    parser.add_argument(
        "--tenant", DEPRECATED_TENANT_OPTION, dest="tenant", required=required,
        default=[] if append else None, action=_TenantAction, append=append, metavar="TENANT",
        help=f"{help_text} ({DEPRECATED_TENANT_OPTION}: its deprecated old name)",
    )  # fmt: skip


def instant_option(value: str, command: str, option: str) -> int | None:
    """An instant option's epoch millis, or None after printing why it is not one."""
    from streams.scoring.durations import parse_instant
    from streams.scoring.shown import shown

    parsed = parse_instant(value)
    if parsed is None:
        print(f"leadscore {command}: {option} must be epoch millis or ISO-8601 with an offset "
              f"(got {shown(value)})", file=sys.stderr)  # fmt: skip
    return parsed
