"""Dead letters (docs/operations.md): the original key and value bytes, unchanged, with reasons."""

from __future__ import annotations

from dataclasses import dataclass

MAX_REASON = 2000
#: The error class of an item whose event time lies more than its plan's ``max_future`` ahead of
#: its arrival (``streams.scoring.arrival``).
FUTURE_EVENT = "future_event"
#: Above this many key and value bytes the value is left out of the dead letter (its size and the
#: source coordinates say where to find it): the producer refuses records over 1,000,000 bytes.
MAX_LETTER_BYTES = 900_000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    error_class: str
    reason: str
    #: for a letter of the entity-events topic (refused by the entity stage), the input record
    #: its item came from: topic, partition, offset
    origin: tuple[str, int, int] | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        out = [
            ("leadscore.source.topic", self.topic.encode()),
            ("leadscore.source.partition", str(self.partition).encode()),
            ("leadscore.source.offset", str(self.offset).encode()),
            ("leadscore.error.class", self.error_class.encode()),
            ("leadscore.error.reason", self.reason[:MAX_REASON].encode("utf-8", "replace")),
        ]
        if self.origin is not None:
            topic, partition, offset = self.origin
            out += [("leadscore.input.topic", topic.encode()),
                    ("leadscore.input.partition", str(partition).encode()),
                    ("leadscore.input.offset", str(offset).encode())]  # fmt: skip
        return out

    def for_kafka(self) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
        """Key, value and headers as produced; a value too large to produce is left out."""
        headers = self.headers()
        size = len(self.key or b"") + len(self.value or b"")
        if size <= MAX_LETTER_BYTES:
            return self.key, self.value, headers
        headers.append(("leadscore.value.omitted", str(len(self.value or b"")).encode()))
        return self.key, None, headers
