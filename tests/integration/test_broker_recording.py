"""``bench/broker_cpu.py`` on the real broker: ``bench/latency_budget.py`` finds it by its port,
reads its threads' CPU and records it with Java Flight Recorder (``--broker-profile``)."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.bench import bench_module


def test_the_broker_is_found_and_recorded(bootstrap: str, unique: str, tmp_path: Path) -> None:
    cpu = bench_module("broker_cpu")
    pid = cpu.broker_pid(bootstrap)
    assert pid is not None, f"no process on this machine listens at {bootstrap}"
    before = cpu.threads(pid)
    assert len(before) > 5 and all(v >= 0 for v in before.values())
    assert cpu.Recording.available()
    recording = cpu.Recording(pid, tmp_path / "broker.jfr")
    recording.start()
    try:
        assert recording.running()
        topic = f"{unique}-recorded"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, 1)])[topic].result(30)
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        for _ in range(500):  # requests for the handlers to serve while recorded, about 2 s
            producer.produce(topic, b"x" * 100)
            producer.flush(10)
            time.sleep(0.002)
    finally:
        recording.stop()
    assert not recording.running()  # no recording left behind
    recording.stop()  # a second stop does nothing
    shares = recording.summary()
    assert shares["samples"] > 0
    named = {k: v for k, v in shares.items() if k != "samples"}
    assert named and all(0 < v <= 1 for v in named.values())
    assert abs(sum(named.values()) - 1) < 0.02 or len(named) == 12  # the top 12 of all
    after = cpu.threads(pid)
    assert sum(after.values()) > sum(before.values())
