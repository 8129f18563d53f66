"""Bounded transactional calls (``streams.engine.kafka.Calls``): librdkafka's
``send_offsets_to_transaction`` can block past its timeout (confluentinc/librdkafka#5456). A call
still blocked at its limit is abandoned on its thread and raises ``Hung`` (the loop recovers with a
new producer); too many of them blocked at once raise ``Fatal``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams.engine.kafka import Calls, Fatal, Hung


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Lets every blocked call of a test return at its end (their threads are daemons)."""
    event = threading.Event()
    yield event
    event.set()


def test_a_call_blocked_past_the_limit_is_abandoned_naming_it(
    release: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    calls = Calls()
    calls.configure(30.0, limit_s=0.2)
    started = time.monotonic()
    with pytest.raises(Hung, match="send_offsets_to_transaction did not return within 0 s"):
        calls.run("send_offsets_to_transaction", release.wait)
    assert time.monotonic() - started >= 0.2
    assert calls.stuck() == ["send_offsets_to_transaction"]
    assert "abandoned" in caplog.text
    release.set()  # the call returns at last: no longer stuck
    deadline = time.monotonic() + 5
    while calls.stuck() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls.stuck() == []


def test_results_and_errors_of_calls_in_time_reach_the_caller() -> None:
    calls = Calls()
    calls.configure(30.0, limit_s=5.0)
    assert calls.run("commit_transaction", lambda: 42) == 42
    error = KafkaException(KafkaError(KafkaError._TIMED_OUT, "slow", retriable=True))

    def failing() -> None:
        raise error

    with pytest.raises(KafkaException) as raised:
        calls.run("commit_transaction", failing)
    assert raised.value is error
    assert calls.stuck() == []


def test_more_blocked_calls_than_allowed_are_fatal(release: threading.Event) -> None:
    calls = Calls()
    calls.configure(30.0, limit_s=0.05, max_stuck=2)
    for _ in range(2):
        with pytest.raises(Hung):
            calls.run("commit_transaction", release.wait)
    with pytest.raises(Fatal, match="3 abandoned calls are still blocked"):
        calls.run("abort_transaction", release.wait)


def test_unconfigured_calls_run_on_the_callers_thread() -> None:
    calls = Calls()
    assert calls.run("abort_transaction", threading.current_thread) is threading.current_thread()


def test_the_default_limit_is_twice_the_timeout_and_five_seconds() -> None:
    calls = Calls()
    calls.configure(30.0)
    assert calls.limit_s == 65.0


def test_calls_share_one_thread_until_one_is_abandoned(release: threading.Event) -> None:
    calls = Calls()
    calls.configure(30.0, limit_s=0.1)
    first = calls.run("begin_transaction", threading.current_thread)
    assert first is not threading.current_thread()
    assert calls.run("commit_transaction", threading.current_thread) is first
    with pytest.raises(Hung):
        calls.run("send_offsets_to_transaction", release.wait)
    after = calls.run("init_transactions", threading.current_thread)
    assert after is not first and after.is_alive()
    release.set()  # the abandoned thread's call returns: the thread ends
    first.join(5)
    assert not first.is_alive()
