"""A sample dataset with a planted signal, for ``leadscore calibrate`` (``leadscore demo
--calibration-archive FILE``): contacts with a hidden intent, whose engagement over two weeks
follows it, and who buy in the next 30 days with a probability that grows with it.

Intent ``u`` is uniform in [0, 1). Before ``SINCE`` (14 days from ``START``): page visits (more,
and more of them on the pricing page, with higher intent), e-mail clicks and replies; some
low-intent contacts read the blog a lot (noise a good plan scores low). After it: a purchase
with probability ``0.03 + 0.5 u^2``. A good plan's score should rank buyers high: the top band
converts several times the base rate, and pricing visits and replies are far more common among
buyers than among the others.
"""

from __future__ import annotations

import random
from typing import Any

START = 1_767_571_200_000  # 2026-01-05T00:00:00Z
DAY = 86_400_000
SINCE = START + 14 * DAY
UNTIL = SINCE + 30 * DAY


def planted(contacts: int = 2000, seed: int = 11) -> list[dict[str, Any]]:
    """The dataset's records (JSON-lines shape, ``type`` set), in event-time order."""
    rnd = random.Random(seed)  # noqa: S311 - sample data, not secrets
    out: list[dict[str, Any]] = []
    for i in range(contacts):
        contact, u = f"c-{i}", rnd.random()
        reader = u < 0.3 and rnd.random() < 0.15  # reads the blog, never buys more for it

        def event(kind: str, at: int, contact: str = contact, **fields: Any) -> None:
            out.append({"type": kind, "event_id": f"{contact}-{len(out)}", "account_id": None,
                        "occurred_at": at, "contact_id": contact, "deal_id": None,
                        **fields})  # fmt: skip

        def before() -> int:
            return START + rnd.randrange(14 * DAY)

        for _ in range(int(rnd.random() * 3 + 8 * u) + (12 if reader else 0)):
            page = ("pricing" if rnd.random() < 0.15 + 0.6 * u and not reader
                    else rnd.choice(["blog/scoring-101", "blog/roadmap", ""]))  # fmt: skip
            event("page_visit", before(), url=f"https://example.com/{page}")
        for _ in range(int(rnd.random() * 2 + 4 * u * rnd.random())):
            event("email.click", before(), action="click", campaign_id="nurture")
        if rnd.random() < 0.4 * u:
            event("email.reply", before(), action="reply", campaign_id="nurture")
        if rnd.random() < 0.03 + 0.5 * u * u:
            event("purchase", SINCE + 1 + rnd.randrange(30 * DAY), order_id=f"o-{i}",
                  amount="990.00", currency="EUR")  # fmt: skip
    out.sort(key=lambda r: (r["occurred_at"], r["event_id"]))
    return out


def write_archive(path: str, *, contacts: int, seed: int) -> int:
    """``leadscore demo --calibration-archive FILE``."""
    import json
    import sys

    from streams.scoring.durations import format_instant

    records = planted(contacts, seed)
    try:
        with open(path, "w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record) + "\n")
    except OSError as error:
        print(f"leadscore demo: cannot write {path}: {error.strerror}", file=sys.stderr)
        return 1
    print(
        f"leadscore demo: wrote {len(records)} records of {contacts} contacts to {path}; "
        f"calibrate with --since {format_instant(SINCE)} --until {format_instant(UNTIL)}"
    )
    return 0
