"""What the broker's transaction coordinator says about one ``transactional.id``, read from its
log, the internal topic ``__transaction_state``: the coordinator appends a record there at each
step of a transaction (its first partition added, offsets added, commit or abort prepared and
completed, a new epoch after a timeout or an ``init_transactions``).

Its key is a version (int16) and the id (int16 length, UTF-8); its value starts with a version
(int16), the producer id (int64), the epoch (int16), the transaction timeout (int32) and the
status (int8), the same in value versions 0 and 1 (version 1 only adds tagged fields at the
end). The id's partition is Java's ``abs(id.hashCode()) % partitions``.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

TOPIC = "__transaction_state"
EMPTY, ONGOING, PREPARE_COMMIT, PREPARE_ABORT, COMPLETE_COMMIT, COMPLETE_ABORT = range(6)


def java_hash(text: str) -> int:
    """``String.hashCode`` (UTF-16 code units, 32-bit wrap-around)."""
    h = 0
    units = text.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


@dataclass(frozen=True)
class TxnState:
    epoch: int
    status: int


class TransactionLog:
    """Follows the coordinator's records for ``transactional_id`` from now on."""

    def __init__(self, bootstrap: str, transactional_id: str) -> None:
        self.tid = transactional_id
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "txnlog-reader",
                                  "enable.auto.commit": False, "log_level": 3})  # fmt: skip
        topic = self.consumer.list_topics(TOPIC, timeout=10).topics[TOPIC]
        count = len(topic.partitions)
        partition = abs(java_hash(transactional_id)) % count
        _, high = self.consumer.get_watermark_offsets(TopicPartition(TOPIC, partition), timeout=10)
        self.consumer.assign([TopicPartition(TOPIC, partition, high)])
        self.last: TxnState | None = None

    def _read(self, timeout_s: float) -> bool:
        message = self.consumer.poll(timeout_s)
        if message is None:
            return False
        if message.error() is None:
            key, value = message.key() or b"", message.value()
            (length,) = struct.unpack_from(">h", key, 2)
            if value is not None and key[4 : 4 + length].decode() == self.tid:
                _, _, epoch, _, status = struct.unpack_from(">hqhib", value)
                self.last = TxnState(epoch, status)
        return True

    def settle(self, quiet_s: float = 0.3) -> TxnState | None:
        """The latest state once no record has come for ``quiet_s``."""
        while self._read(quiet_s):
            pass
        return self.last

    def wait_for(self, statuses: set[int], *, epoch_above: int, timeout_s: float) -> TxnState:
        """Reads until the state has one of ``statuses`` at an epoch above ``epoch_above``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._read(0.2)
            last = self.last
            if last is not None and last.status in statuses and last.epoch > epoch_above:
                return last
        raise AssertionError(
            f"the coordinator's state of {self.tid} stayed at {self.last} for {timeout_s}s, "
            f"not one of {statuses} above epoch {epoch_above}"
        )

    def close(self) -> None:
        self.consumer.close()
