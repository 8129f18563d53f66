"""Lifecycle of the partitions this worker holds, driven by the consumer's rebalance callbacks.

Input-topic partitions are stateless (ingest only): assigned or not. Entity-events partitions
carry state (a store, its changelog partition) and move through these phases:

===========  =====================================  ===========
from         event                                  to
===========  =====================================  ===========
(none)       assigned (``on_assign``)               restoring: paused, store opened, restore
restoring    restore consumer reached the end       active: resumed, processed, queryable
restoring    revoked or lost                        (none): restore cancelled, store closed
active       revoked (``on_revoke``)                (none): transaction committed, store closed
active       lost (``on_lost``)                     (none): transaction aborted, store closed
===========  =====================================  ===========

The engine is ready once the first assignment arrived and no partition is restoring;
``/readyz`` also waits until the group is settled (``streams.api.http.Owners.settled``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from streams.state.store import PartitionStore


class PartitionPhase(StrEnum):
    RESTORING = "restoring"
    ACTIVE = "active"


@dataclass(slots=True)
class Held:
    store: PartitionStore
    phase: PartitionPhase = PartitionPhase.RESTORING


@dataclass(slots=True)
class Partitions:
    """Entity partitions held, by number. Read by the HTTP thread under the engine's lock."""

    held: dict[int, Held] = field(default_factory=dict)
    assigned_once: bool = False

    def restoring(self) -> set[int]:
        return {p for p, h in self.held.items() if h.phase is PartitionPhase.RESTORING}

    def active(self) -> dict[int, PartitionStore]:
        return {p: h.store for p, h in self.held.items() if h.phase is PartitionPhase.ACTIVE}

    @property
    def ready(self) -> bool:
        return self.assigned_once and not self.restoring()
