"""What every stage of the loop is, and how a stage stops its batch.

A stage gets one partition's batch of consumed records, in offset order, and writes what they
produce through :class:`streams.engine.outputs.Outputs` into the open transaction, marking each
record consumed there. The loop picks the stage by topic: the input topics go to ingest
(``streams.engine.ingest``), the ``plans`` topic to the plans stage (``streams.engine.plans``),
the entity-events topic to the entity stage (``streams.engine.score``). Time-driven work runs
apart from any batch (``streams.engine.due``).
"""

from __future__ import annotations

from typing import Protocol

from streams.engine.clients import Record
from streams.engine.outputs import Outputs
from streams.wire import records


class Stage(Protocol):
    def process(self, partition: int, batch: list[Record], out: Outputs) -> None:
        """Process ``batch`` (records of one partition, in order) into the open transaction.

        Raises :class:`Abort` (abort the transaction, rewind), :class:`RecomputeStop`, or a
        ``KafkaException`` of the transaction (``streams.engine.transaction``)."""
        ...


class Abort(Exception):
    """Abort the open transaction and rewind (raised inside a batch)."""


class CoreBug(Exception):
    """The core raised on a recompute (its ``__cause__``)."""


class RecomputeStop(Exception):
    """A plan record asks for a recompute: stop the batch before it, commit what came before,
    read the history outside any transaction, then process the record (raised inside a batch)."""

    def __init__(self, partition: int, offset: int, record: records.PlanRecord) -> None:
        super().__init__(partition, offset)
        self.partition, self.offset, self.record = partition, offset, record
