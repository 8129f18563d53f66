"""``bench/broker_cpu.py`` without a broker: it finds the process listening on a port, and
groups a process's threads by name. (``tests/integration/test_broker_recording.py`` records the
real broker.) No timing is judged here."""

from __future__ import annotations

import ctypes
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.bench import bench_module

PR_SET_NAME = 15


@pytest.fixture(scope="module")
def cpu() -> Any:
    return bench_module("broker_cpu")


def test_the_listener_of_a_port_is_found(cpu: Any) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        assert cpu.broker_pid(f"127.0.0.1:{port},127.0.0.1:1") is None  # bound, not listening
        listener.listen()
        assert cpu.broker_pid(f"127.0.0.1:{port},127.0.0.1:1") == os.getpid()
    assert cpu.broker_pid(f"127.0.0.1:{port}") is None


def test_threads_are_grouped_by_name_without_their_number(cpu: Any) -> None:
    assert cpu._group("data-plane-kafk") == "data-plane-kafk"
    assert cpu._group("kafka-request-handler-12\n") == "kafka-request-handler"
    assert cpu._group("TxnMarkerSender 3") == "TxnMarkerSender"
    assert cpu._group("7") == "unnamed"
    libc = ctypes.CDLL(None, use_errno=True)
    names: list[str] = []

    named, read = threading.Barrier(3, timeout=30), threading.Event()

    def spin(n: int) -> None:  # Python does not name its threads for the kernel: prctl does
        assert libc.prctl(PR_SET_NAME, f"spinner-{n}".encode(), 0, 0, 0) == 0
        names.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text())
        named.wait()
        deadline = time.monotonic() + 30
        while not read.is_set() and time.monotonic() < deadline:
            sum(range(1000))

    before = cpu.threads(os.getpid())
    spinners = [threading.Thread(target=spin, args=(n,)) for n in range(2)]
    for t in spinners:
        t.start()
    named.wait()
    after = cpu.threads(os.getpid())  # while they spin
    read.set()
    for t in spinners:
        t.join()
    assert sorted(names) == ["spinner-0\n", "spinner-1\n"]
    assert "spinner" not in before and after["spinner"] >= 0
    assert not any(name.startswith("spinner-") for name in after)


def test_cores_by_group_keeps_the_busiest_and_sums_the_rest(cpu: Any) -> None:
    before = {"a": 1.0, "b": 0.0, "c": 0.0}
    after = {"a": 3.0, "b": 1.0, "c": 0.5, "d": 0.5}
    assert cpu.cores_by_group(before, after, 2.0, top=2) == {
        "a": 1.0, "b": 0.5, "other threads": 0.5,
    }  # fmt: skip
