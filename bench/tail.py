"""When records become visible to a ``read_committed`` consumer: the latency budget's clock.

Reads the given topics from the beginning with ``isolation.level=read_committed`` and, for each
record, writes ``topic-index partition offset received-ms`` (wall clock, the machine's; the
broker's append times are on the same clock). A record of a transaction is received only once
that transaction commits, so the receive time bounds its commit from above (by the consumer's
fetch wait, 5 ms here, and the scheduling of this process). Topics that do not exist yet are
waited for. Stops on SIGTERM and writes what it saw to ``--out``.

Run by ``bench/latency_budget.py``.
"""

from __future__ import annotations

import argparse
import signal
import time

from confluent_kafka import Consumer, TopicPartition


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True, help="comma-separated")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    topics = args.topics.split(",")
    index = {name: i for i, name in enumerate(topics)}
    stop: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": f"tail-{time.time_ns()}",
        "enable.auto.commit": False, "isolation.level": "read_committed",
        "fetch.wait.max.ms": 5, "log_level": 3,
    })  # fmt: skip
    assigned: set[str] = set()
    seen: list[tuple[int, int, int, int]] = []
    while not stop:
        if len(assigned) < len(topics):  # the worker makes its own topics as it starts
            listed = consumer.list_topics(timeout=5).topics
            ready = [t for t in topics if t not in assigned and t in listed
                     and listed[t].partitions and not listed[t].error]  # fmt: skip
            if ready:
                assigned.update(ready)
                consumer.assign([TopicPartition(t, p, 0) for t in sorted(assigned)
                                 for p in listed[t].partitions])  # fmt: skip
            if not assigned:
                time.sleep(0.1)
                continue
        for msg in consumer.consume(1000, 0.05):
            if msg.error() is None:
                now = time.time_ns() // 1_000_000
                seen.append((index[msg.topic()], msg.partition(), msg.offset(), now))  # type: ignore[index,arg-type]
    consumer.close()
    with open(args.out, "w") as out:
        out.writelines(f"{t} {p} {o} {ms}\n" for t, p, o, ms in seen)


if __name__ == "__main__":
    main()
