"""``leadscore automate`` end to end: the real broker, a real HTTP receiver started by the test
(one endpoint answering at once, one slow and failing twice per change before it recovers, one
always down), and a ``kill -9`` of the bridge while deliveries are in flight.

Verdicts: every matching change reaches its endpoint (at least once) with a valid signature and
``Idempotency-Key`` = its ``change_id``; a receiver deduplicating by that key acts on each change
exactly once; a change is never delivered to an endpoint whose triggers it does not match; the
down endpoint's deliveries land in the bridge's dead-letter topic after ``max_attempts``; the
metrics count what happened.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer

from tests.integration.score_changes import changes, produce
from tests.integration.service import REPO, _without_settings, free_port

SECRETS = {"OK_SECRET": "ok-key", "FLAKY_SECRET": "flaky-key", "DOWN_SECRET": "down-key"}
UP = [{"name": "mql", "direction": "up"}]
SQL = [{"name": "sql", "direction": "up"}]
HOT = [{"name": "hot", "direction": "up"}]


@dataclass
class Receiver:
    """Records every request; /flaky fails twice per key, slowly, then succeeds; /down is 503."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    flaky_delay_s: float = 0.3

    def handle(self, path: str, headers: Any, body: bytes) -> int:
        key = headers.get("Idempotency-Key", "")
        with self.lock:
            self.requests.append({"path": path, "key": key, "body": body,
                                  "signature": headers.get("X-Leadscore-Signature", ""),
                                  "attempt": headers.get("X-Leadscore-Delivery")})  # fmt: skip
        if path == "/down":
            return 503
        if path == "/flaky":
            time.sleep(self.flaky_delay_s)
            with self.lock:
                self.failures[key] += 1
                if self.failures[key] <= 2:
                    return 500
        return 200

    def keys(self, path: str) -> set[str]:
        with self.lock:
            return {r["key"] for r in self.requests if r["path"] == path}

    def answered(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = state.handle(self.path, self.headers, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def config(port: int, topic: str, dead: str) -> dict[str, Any]:
    fast = {"initial_s": 0.05, "max_s": 0.2, "multiplier": 2}
    url = f"http://127.0.0.1:{port}"
    return {
        "group": f"automate-{topic}",
        "dead_letter_topic": dead,
        "endpoints": {
            "ok": {"url": f"{url}/ok", "secret_env": "OK_SECRET", "concurrency": 4},
            "flaky": {"url": f"{url}/flaky", "secret_env": "FLAKY_SECRET", "concurrency": 2,
                      "max_attempts": 6, "backoff": fast},
            "down": {"url": f"{url}/down", "secret_env": "DOWN_SECRET", "max_attempts": 3,
                     "backoff": fast},
        },
        "triggers": [
            {"name": "mql-up", "endpoint": "ok", "score": "engagement", "threshold": "mql"},
            {"name": "sql-up", "endpoint": "flaky", "score": "engagement", "threshold": "sql"},
            {"name": "sql-any", "endpoint": "flaky", "score": "engagement", "threshold": "sql",
             "direction": "any"},
            {"name": "hot-up", "endpoint": "down", "score": "engagement", "threshold": "hot"},
        ],
    }  # fmt: skip


def start(bootstrap: str, topic: str, path: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**_without_settings(os.environ), **SECRETS, "LEADSCORE_BOOTSTRAP_SERVERS": bootstrap,
           "LEADSCORE_TOPIC_SCORE_CHANGED": topic}  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "automate", str(path), "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait(condition: Any, what: str, proc: subprocess.Popen[bytes], log: Path,
         timeout_s: float = 90) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        assert proc.poll() is None, f"the bridge exited with {proc.returncode}:\n{log.read_text()}"
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout_s}s:\n{log.read_text()[-3000:]}")


def dead_letters(bootstrap: str, topic: str, expected: int) -> list[dict[str, Any]]:
    """Every dead letter: at least ``expected``, then until none comes for 3 s."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dl-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                         "log_level": 3})  # fmt: skip
    consumer.subscribe([topic])
    out: list[dict[str, Any]] = []
    deadline, quiet_since = time.monotonic() + 30, time.monotonic()
    try:
        while time.monotonic() < deadline and (
            len(out) < expected or time.monotonic() - quiet_since < 3
        ):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                out.append(json.loads(msg.value() or b"null"))
                quiet_since = time.monotonic()
    finally:
        consumer.close()
    return out


def valid(request: dict[str, Any], secret: str) -> bool:
    parts = dict(part.split("=", 1) for part in request["signature"].split(","))
    mac = hmac.new(secret.encode(), f"{parts['t']}.".encode() + request["body"], hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), parts["v1"])


def test_webhook_bridge_end_to_end(bootstrap: str, changes_topic: str, tmp_path: Path,
                                   receiver: tuple[Receiver, int]) -> None:  # fmt: skip
    state, port = receiver
    topic, dead = changes_topic, f"automate-dl-{uuid.uuid4().hex[:12]}"
    path = tmp_path / "automations.yaml"
    path.write_text(yaml.safe_dump(config(port, topic, dead)))
    # 20 mql crossings (-> ok), 10 sql crossings (-> flaky), 3 hot (-> down), 5 without crossing
    produce(bootstrap, topic, [
        (changes(20, 1, thresholds=UP), True),
        (changes(10, 21, thresholds=SQL), True),
        (changes(3, 31, thresholds=HOT), True),
        (changes(5, 34, thresholds=[]), True),
    ])  # fmt: skip
    expect_ok = {f"ch-{i}" for i in range(1, 21)}
    expect_flaky = {f"ch-{i}" for i in range(21, 31)}
    log, metrics_port = tmp_path / "bridge.log", free_port()

    bridge = start(bootstrap, topic, path, metrics_port, log)
    # kill -9 while the flaky endpoint's deliveries are in flight (slow, failing, retried)
    wait(lambda: len(state.answered("/flaky")) >= 3, "flaky deliveries under way", bridge, log)
    bridge.send_signal(signal.SIGKILL)
    bridge.wait()
    killed_with = {r["key"] for r in state.answered("/flaky") if r["attempt"]}

    bridge = start(bootstrap, topic, path, metrics_port, log)
    try:
        wait(lambda: state.keys("/ok") >= expect_ok, "every mql change at /ok", bridge, log)
        flaky_done = lambda: {k for k, n in state.failures.items() if n > 2} >= expect_flaky  # noqa: E731
        wait(flaky_done, "every sql change accepted at /flaky", bridge, log)
        letters = dead_letters(bootstrap, dead, 3)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as metrics:
            exposition = metrics.read().decode()
    finally:
        bridge.send_signal(signal.SIGTERM)
        assert bridge.wait(timeout=60) == 0, log.read_text()[-3000:]

    assert killed_with, "the kill happened before any flaky delivery"
    # exactly the matching changes reached each endpoint; nothing else, never another key
    assert state.keys("/ok") == expect_ok
    assert state.keys("/flaky") == expect_flaky
    assert state.keys("/down") == {"ch-31", "ch-32", "ch-33"}
    for path_name, secret in (("/ok", "ok-key"), ("/flaky", "flaky-key"), ("/down", "down-key")):
        for request in state.answered(path_name):
            assert valid(request, secret), request
            body = json.loads(request["body"])
            assert body["change_id"] == request["key"]  # Idempotency-Key = change_id
    # two triggers of one endpoint matched the sql changes: one delivery listing both
    assert {tuple(json.loads(r["body"])["triggers"]) for r in state.answered("/flaky")} == {
        ("sql-up", "sql-any")
    }
    # a receiver honouring the key acts once per change; repeats carry the same key
    acted = {r["key"] for r in state.answered("/ok")}
    assert len(acted) == 20
    # the down endpoint: 3 attempts each, then a dead letter with the reason
    assert Counter(r["key"] for r in state.answered("/down")).most_common(1)[0][1] >= 3
    # (a dead letter written before the kill, its offset not yet committed, is written again)
    assert {letter["payload"]["change_id"] for letter in letters} == {"ch-31", "ch-32", "ch-33"}
    assert all(letter["error"] == "HTTP 503 Service Unavailable" and letter["attempts"] == 3
               for letter in letters)  # fmt: skip
    assert 'leadscore_automate_deliveries_total{endpoint="down",outcome="dead_lettered"} 3.0' in (
        exposition
    )
