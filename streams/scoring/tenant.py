"""The field naming the tenant of an input record (docs/inputs.md): ``tenant_id``, or
``account_id``, its deprecated old name, when ``tenant_id`` is absent (docs/migration.md).

Not the contact attribute ``account_id`` (the company account a contact belongs to, inside a
profile update's ``attributes``, read by ``streams.scoring.rollup``): it keeps its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.scoring.shown import shown

FIELD = "tenant_id"
OLD_FIELD = "account_id"


class TenantConflict(ValueError):
    """Both names are set and differ: the record is invalid (its dead-letter reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        #: as ``streams.scoring.events._Bad``: the reason only (set on the instance: a class
        #: attribute is not an instance default in the compiled core)
        self.occurred_ms: int | None = None


def tenant_field(record: Mapping[str, Any]) -> str:
    """The field to read the tenant from; raises :class:`TenantConflict` if both are set and
    differ."""
    old = record.get(OLD_FIELD)
    if old is None:
        return FIELD
    new = record.get(FIELD)
    if new is None:
        return OLD_FIELD
    if new != old:
        raise TenantConflict(f"{FIELD} {shown(new)} and {OLD_FIELD} {shown(old)} (its deprecated "
                             f"old name) differ: send {FIELD} only")  # fmt: skip
    return FIELD
