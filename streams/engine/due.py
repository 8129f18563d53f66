"""Time-driven work: expiries, deferred awards, decay and inactivity that are due, from the
stores' due index (plus dirty states already due), in the open transaction."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from streams.engine.entities import EntityStage, due_candidates
from streams.engine.outputs import Outputs
from streams.engine.partitions import Partitions
from streams.engine.shadows import split_state_key
from streams.engine.stage import Abort
from streams.metrics import Metrics

log = logging.getLogger(__name__)
#: Entities advanced per partition and due check at most; the rest wait for the next check.
MAX_ADVANCES = 2000


class DueWork:
    def __init__(self, stage: EntityStage, partitions: Partitions, metrics: Metrics,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.stage, self.partitions, self.metrics, self.clock = stage, partitions, metrics, clock
        #: entities whose time-driven work raised inside the core: skipped until a restart
        self.bad: set[bytes] = set()

    def run(self, out: Outputs) -> None:
        """Raises :class:`Abort` when the core raised (the entity is skipped from then on)."""
        now_ms = int(self.clock() * 1000)
        backlog = 0
        for partition, store in self.partitions.active().items():
            candidates = due_candidates(self.stage, partition, store.due_keys, now_ms,
                                        MAX_ADVANCES)  # fmt: skip
            candidates = [k for k in candidates if k not in self.bad]
            backlog += len(candidates)
            for key in candidates:
                if split_state_key(key) and self.stage.plan_of_state(partition, key) is None:
                    self.bad.add(key)  # a state of a shadow plan discarded since: left alone
                    continue
                try:
                    changes, forwards = self.stage.advance_due(partition, [key], now_ms)
                except Exception as exc:  # a core bug: never again for this entity; abort
                    log.error(
                        "advancing %r (partition %d) raised in the core, skipping its "
                        "time-driven work until a restart: %r", key, partition, exc,
                    )  # fmt: skip
                    self.bad.add(key)
                    self.stage.cache.forget(key)  # the core may have changed it in place
                    raise Abort from exc
                split = split_state_key(key)
                if split is not None:  # a shadow plan's state: its own topic, its own roll-ups
                    out.publish_shadow(changes, now_ms)
                    out.forward(forwards, now_ms, shadow=split[0])
                    continue
                out.publish(changes, now_ms, partition, key)
                out.forward(forwards, now_ms)
                self.metrics.observe_changes(changes)
        self.metrics.flush()
        self.metrics.expiry_backlog.set(backlog)
