"""Dead letters (SPEC §5): the original key and value bytes, unchanged, with reason headers."""

from __future__ import annotations

from dataclasses import dataclass

MAX_REASON = 2000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    error_class: str
    reason: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("leadscore.source.topic", self.topic.encode()),
            ("leadscore.source.partition", str(self.partition).encode()),
            ("leadscore.source.offset", str(self.offset).encode()),
            ("leadscore.error.class", self.error_class.encode()),
            ("leadscore.error.reason", self.reason[:MAX_REASON].encode("utf-8", "replace")),
        ]
