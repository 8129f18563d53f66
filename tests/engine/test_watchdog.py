"""The watchdog over transactional calls (``streams.engine.kafka.Watchdog``): librdkafka's
``send_offsets_to_transaction`` can block past its timeout (confluentinc/librdkafka#5456), and a
call blocked far past it must end the process with the fatal code, naming the call."""

from __future__ import annotations

import threading
import time

import pytest

from streams.engine.kafka import Watchdog


class Exits:
    """Records the exit instead of ending the test process; releases the blocked call."""

    def __init__(self, release: threading.Event) -> None:
        self.codes: list[int] = []
        self.release = release

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.release.set()


def test_a_call_blocked_past_the_limit_ends_the_process_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    exits = Exits(release)
    dog = Watchdog(exit_fn=exits, poll_s=0.02)
    dog.configure(30.0, exit_code=70, limit_s=0.2)
    started = time.monotonic()
    with dog.guard("send_offsets_to_transaction"):
        assert release.wait(10), "the watchdog never fired"
    assert exits.codes == [70]
    assert time.monotonic() - started >= 0.2
    assert "send_offsets_to_transaction did not return" in caplog.text


def test_calls_that_return_in_time_are_left_alone() -> None:
    exits = Exits(threading.Event())
    dog = Watchdog(exit_fn=exits, poll_s=0.02)
    dog.configure(30.0, exit_code=70, limit_s=0.3)
    for _ in range(5):
        with dog.guard("commit_transaction"):
            time.sleep(0.1)
        time.sleep(0.3)  # between calls nothing is watched, however long
    assert exits.codes == []


def test_an_unconfigured_watchdog_guards_nothing() -> None:
    dog = Watchdog(exit_fn=lambda code: pytest.fail("exited"), poll_s=0.01)
    with dog.guard("abort_transaction"):
        time.sleep(0.05)
    assert dog.thread is None


def test_the_default_limit_is_twice_the_timeout_and_five_seconds() -> None:
    dog = Watchdog(exit_fn=lambda code: None)
    dog.configure(30.0, exit_code=70)
    assert dog.limit_s == 65.0
