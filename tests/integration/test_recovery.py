"""Recovery in the process (docs/operations.md) on the real broker: a fatal producer error is
recovered without a restart, and exactly once holds across it.

The worker is frozen (SIGSTOP) while its transaction coordinator has a transaction of it open,
and stays frozen until the coordinator has aborted that transaction for its timeout (3 s here,
checked every 10 s by default) and bumped the producer's epoch, so the first transactional call
after SIGCONT fails with a fatal ``_FENCED`` (our own timeout, not a newer instance). The worker
must replace its producer in the process (same pid, ``leadscore_producer_recoveries_total`` up),
lose and double nothing, and a concurrent ``read_committed`` reader must never see an aborted
record.

At low load the loop holds no transaction much of the time (it commits a transaction 20 ms old
when its input runs dry, then waits up to 20 ms for input), so a freeze at a random moment often
misses. The test reads the coordinator's own log
(``tests.integration.txnlog``) while the worker is frozen: a freeze that caught no open
transaction is ended at once and tried again a few ms later.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.commands.traffic import TrafficShape, generate
from streams.wire.codec import Codec, Source
from tests.integration.service import PLAN, Service
from tests.integration.txnlog import (
    COMPLETE_ABORT,
    ONGOING,
    PREPARE_ABORT,
    TransactionLog,
    TxnState,
)
from tests.integration.verify import LiveReader, check_run

EVENTS = 3000
#: Freezes tried, each about 0.35 s, until one catches an open transaction: 12 of 45 did in
#: twelve runs (at 27% each, all 50 miss with odds of 1 in 6 million); 50 fit in the trickle.
FREEZES = 50


async def _trickle(service: Service, rows: list[tuple[Source, dict[str, Any]]]) -> None:
    """A record every 8 ms or so, about 20 s for the test's records: the worker opens and
    commits a transaction every few tens of ms meanwhile."""
    codec = Codec.load()
    producer = AIOKafkaProducer(bootstrap_servers=service.bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=1)  # fmt: skip
    await producer.start()
    try:
        for source, record in rows:
            value = codec.encode(codec.inputs[source], record)
            await producer.send(service.topic(source), value, key=b"any-key")
            await asyncio.sleep(0.008)
        await producer.flush()
    finally:
        await producer.stop()


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def test_a_fenced_producer_is_replaced_in_the_process(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    now = int(time.time() * 1000)
    shape = replace(TrafficShape(), contacts=300, deals=60, step_ms=50,
                    start_ms=now - EVENTS * 50)  # fmt: skip
    rng = random.Random(unique)
    records = list(generate(EVENTS, seed=rng.randrange(1000), shape=shape))
    service = Service(bootstrap, unique, tmp_path, extra={
        "LEADSCORE_TRANSACTION_TIMEOUT_MS": "3000", "LEADSCORE_SESSION_TIMEOUT_S": "60",
        "LEADSCORE_INSTANCE_ID": "w1",
    })  # fmt: skip
    worker = service.worker()
    live: LiveReader | None = None
    txns: TransactionLog | None = None
    share = len(records) // 4
    try:
        worker.start()
        await worker.wait_ready()
        assert worker.proc is not None
        pid = worker.proc.pid
        txns = TransactionLog(bootstrap, f"{service.app_id}-w1")
        live = LiveReader(bootstrap, service.changed).start()
        await service.produce(records[:share])
        sending = asyncio.create_task(_trickle(service, records[share:]))
        await asyncio.sleep(1.0)  # the trickle under way
        caught: TxnState | None = None
        for _ in range(FREEZES):
            worker.stop_signal()
            state = await asyncio.to_thread(txns.settle)
            if state is not None and state.status == ONGOING:
                caught = state
                break
            worker.continue_signal()
            await asyncio.sleep(rng.uniform(0.005, 0.1))
        assert caught is not None, f"no freeze of {FREEZES} caught an open transaction"
        await asyncio.to_thread(txns.wait_for, {PREPARE_ABORT, COMPLETE_ABORT},
                                epoch_above=caught.epoch, timeout_s=40)  # fmt: skip
        worker.continue_signal()
        await sending
        await service.wait_drained(timeout_s=90)
        recovered = _sample(worker.get_text("/metrics"), "leadscore_producer_recoveries_total")
        _, published, order = await service.settle(live, tries=1)
        worker.assert_alive()
        assert worker.proc.pid == pid and service.restarts == 0  # no restart, the same process
        log = worker.log.read_text()
    finally:
        if txns is not None:
            txns.close()
        service.shut(live)
    assert recovered >= 1, "the coordinator aborted the frozen worker's transaction, no recovery"
    assert "recovering in the process" in log and "exiting with 70" not in log
    check_run(PLAN, records, published, order, tmp_path)
    assert len(order) >= EVENTS
