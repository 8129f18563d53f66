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
            out.append({"type": kind, "event_id": f"{contact}-{len(out)}", "tenant_id": None,
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
    from streams.scoring.durations import format_instant

    hint = f"calibrate with --since {format_instant(SINCE)} --until {format_instant(UNTIL)}"
    return _write(path, planted(contacts, seed), contacts, hint)


def _write(path: str, records: list[dict[str, Any]], contacts: int, hint: str) -> int:
    """Write a demo dataset as JSON lines; 1 (and why, on stderr) if the file cannot be."""
    import json
    import sys

    try:
        with open(path, "w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record) + "\n")
    except OSError as error:
        print(f"leadscore demo: cannot write {path}: {error.strerror}", file=sys.stderr)
        return 1
    print(f"leadscore demo: wrote {len(records)} records of {contacts} contacts to {path}; {hint}")
    return 0


# ----- the learning dataset: weekly cohorts (``leadscore demo --learning-archive FILE``) -------

#: Contacts arrive over this many weeks from ``START``; each is active for ``ACTIVE`` days, then
#: may buy within the next ``HORIZON`` days. The dataset ends at ``LEARN_UNTIL``.
WEEKS = 20
ACTIVE = 2
HORIZON = 30
LEARN_UNTIL = START + WEEKS * 7 * DAY
#: The planted truth: a contact buys with probability ``sigmoid(TRUTH_INTERCEPT + sum of the
#: weights of what it did)``: pricing visits (each), a reply, a SaaS company. Blog reading,
#: e-mail clicks, other pages and the company's size do not matter.
TRUTH_INTERCEPT = -4.2
TRUTH = {"pricing": 0.55, "reply": 1.6, "saas": 1.2}
INDUSTRIES = ("retail", "manufacturing", "services", "finance")


def cohorts(contacts: int = 3000, seed: int = 13, weeks: int = WEEKS,
            active: int = ACTIVE) -> list[dict[str, Any]]:  # fmt: skip
    """The learning dataset's records (JSON-lines shape, ``type`` set), in event-time order.

    Contact ``c-i`` arrives at a random instant of the ``weeks`` weeks from ``START`` with a
    profile (``industry``, ``employees``) and a hidden intent ``u`` (uniform in [0, 1)). Over its
    next ``active`` days: pricing visits (up to 6, each with probability ``u / 2``), a reply
    (probability ``u / 2``), and, whatever its intent, blog visits, home page visits and e-mail
    clicks. Then, with the planted truth's probability (``TRUTH``), a purchase within the next
    ``HORIZON`` days. A plan that rewards blog reading and clicks ranks buyers poorly."""
    import math

    rnd = random.Random(seed)  # noqa: S311 - sample data, not secrets
    out: list[dict[str, Any]] = []
    span = weeks * 7 * DAY
    for i in range(contacts):
        contact, u, arrival = f"c-{i}", rnd.random(), START + rnd.randrange(span)
        saas = rnd.random() < 0.3
        industry = "saas" if saas else rnd.choice(INDUSTRIES)
        employees = int(10 ** (1 + 3 * rnd.random()))

        def record(kind: str, at: int, contact: str = contact, **fields: Any) -> None:
            out.append({"type": kind, "event_id": f"{contact}-{len(out)}", "tenant_id": None,
                        "occurred_at": at, "contact_id": contact, "deal_id": None,
                        **fields})  # fmt: skip

        def during(arrival: int = arrival) -> int:
            return arrival + rnd.randrange(active * DAY)

        record("contact.updated", arrival,
               attributes={"industry": industry, "employees": employees})  # fmt: skip
        pricing = sum(rnd.random() < u / 2 for _ in range(6))
        for _ in range(pricing):
            record("page_visit", during(), url="https://example.com/pricing")
        for _ in range(rnd.randrange(9)):
            page = rnd.choice(["blog/scoring-101", "blog/roadmap", "blog/customers"])
            record("page_visit", during(), url=f"https://example.com/{page}")
        for _ in range(rnd.randrange(4)):
            record("page_visit", during(), url="https://example.com/")
        for _ in range(rnd.randrange(5)):
            record("email.click", during(), action="click", campaign_id="nurture")
        replied = rnd.random() < u / 2
        if replied:
            record("email.reply", during(), action="reply", campaign_id="nurture")
        logit = (TRUTH_INTERCEPT + TRUTH["pricing"] * pricing + TRUTH["reply"] * replied
                 + TRUTH["saas"] * saas)  # fmt: skip
        if rnd.random() < 1 / (1 + math.exp(-logit)):
            record("purchase", arrival + (active * DAY) + 1 + rnd.randrange(HORIZON * DAY),
                   order_id=f"o-{i}", amount="990.00", currency="EUR")  # fmt: skip
    out = [r for r in out if r["occurred_at"] <= START + span]  # the history up to its end
    out.sort(key=lambda r: (r["occurred_at"], r["event_id"]))
    return out


def write_learning_archive(path: str, *, contacts: int, seed: int) -> int:
    """``leadscore demo --learning-archive FILE``."""
    from streams.scoring.durations import format_instant

    hint = (f"learn with --since {format_instant(START + 14 * DAY)} --until "
            f"{format_instant(LEARN_UNTIL)}")  # fmt: skip
    return _write(path, cohorts(contacts, seed), contacts, hint)
