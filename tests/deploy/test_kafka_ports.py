"""``deploy/kafka/kafka.sh`` with its ports taken: one line naming the port, the process holding it
and free ports to use instead, before anything is fetched or started. Runs against a scratch
``LEADSCORE_VAR_DIR``, so the broker of the test run is not touched."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

KAFKA = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"


def kafka(*args: str, tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    return subprocess.run([str(KAFKA), *args], env={**clean, "LEADSCORE_VAR_DIR": str(tmp), **env},
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


@pytest.fixture
def taken() -> Iterator[int]:
    """A port this process listens on, with both neighbours free (the test asks for the one
    below it as the client port). Below the ephemeral range: a port the system handed out there
    (``bind`` to port 0) once had its neighbour taken by another process's outgoing connection,
    so the script rightly named that port instead."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in range(21_001, low - 2, 7):
        if all(bindable(p) for p in (port - 1, port, port + 1)):
            with socket.socket() as listener:
                listener.bind(("127.0.0.1", port))
                listener.listen()
                yield port
            return
    pytest.fail(f"no three free ports in a row below the ephemeral range ({low})")


def bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.parametrize("offset", [0, -1], ids=["client port", "controller port"])
def test_a_taken_port_stops_the_broker_in_one_line(taken: int, offset: int, tmp_path: Path) -> None:
    result = kafka("up", tmp=tmp_path, KAFKA_PORT=str(taken + offset))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{taken} is taken by pid {os.getpid()} (" in lines[0]
    suggested = int(lines[0].rsplit("KAFKA_PORT=", 1)[1].rstrip("."))
    assert bindable(suggested) and bindable(suggested + 1)
    assert not (tmp_path / "kafka" / "single" / "kafka.pid").exists()  # nothing was started


@pytest.fixture
def cluster_base() -> Iterator[int]:
    """A cluster base port whose six ports are free but node 2's controller (base + 11), which
    this process listens on. Below the ephemeral range: there, the other five ports could be
    any busy process's outgoing connections (CI once found base + 10 taken by one)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for base in range(20_000, low - 13, 13):
        if all(bindable(base + offset) for offset in (0, 1, 2, 10, 11, 12)):
            with socket.socket() as listener:
                listener.bind(("127.0.0.1", base + 11))
                listener.listen()
                yield base
            return
    pytest.fail(f"no free cluster ports between 20000 and {low}")


def test_a_taken_cluster_port_stops_the_cluster_in_one_line(
    cluster_base: int, tmp_path: Path
) -> None:
    result = kafka("cluster-up", tmp=tmp_path, KAFKA_CLUSTER_PORT=str(cluster_base))
    assert result.returncode == 1
    assert f"127.0.0.1:{cluster_base + 11} is taken by pid {os.getpid()} (" in result.stderr
    assert "KAFKA_CLUSTER_PORT=" in result.stderr


def test_port_checks_and_free_ports(taken: int, tmp_path: Path) -> None:
    assert kafka("ports-free", tmp=tmp_path, KAFKA_PORT=str(taken)).returncode == 1
    free = int(kafka("free-port", tmp=tmp_path).stdout)
    assert bindable(free) and bindable(free + 1)
    assert kafka("ports-free", tmp=tmp_path, KAFKA_PORT=str(free)).returncode == 0
    base = int(kafka("free-cluster-port", tmp=tmp_path).stdout)
    assert all(bindable(base + offset) for offset in (0, 1, 2, 10, 11, 12))
    assert kafka("cluster-ports-free", tmp=tmp_path, KAFKA_CLUSTER_PORT=str(base)).returncode == 0
