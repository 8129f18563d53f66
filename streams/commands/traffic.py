"""Deterministic, realistic sample traffic: the six input streams of docs/inputs.md.

Used by ``leadscore demo`` (to Kafka, in Avro), by the crash and rebalance tests (to Kafka and, the
same records, to the offline scorer) and by the benchmarks. A seed fixes every choice; entity
popularity is skewed (a few hot contacts, a long tail), as real traffic is.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from streams.wire.codec import Source

PAGES = (
    ("https://example.com/", 30),
    ("https://example.com/pricing", 12),
    ("https://example.com/features", 15),
    ("https://example.com/blog/scoring-101", 14),
    ("https://example.com/docs/api", 8),
    ("https://example.com/case-studies/acme", 6),
    ("https://example.com/demo", 5),
    ("https://example.com/careers", 4),
    ("https://example.com/contact-sales", 3),
    ("https://example.com/webinars/q3", 3),
)
EMAIL_ACTIONS = (
    ("sent", 40),
    ("open", 30),
    ("click", 14),
    ("reply", 3),
    ("forward", 2),
    ("bounce", 4),
    ("unsubscribe", 2),
    ("complaint", 1),
)
STAGES = ("lead", "qualified", "demo", "proposal", "negotiation", "closed")
INDUSTRIES = ("saas", "fintech", "retail", "manufacturing", "healthcare", "education")
REGIONS = ("emea", "na", "latam", "apac")
TITLES = ("ceo", "cto", "vp marketing", "marketing manager", "engineer", "student")
MIX = (
    (Source.PAGE_VISITS, 45),
    (Source.EMAIL_EVENTS, 28),
    (Source.CONTACT_PROFILES, 10),
    (Source.PURCHASES, 6),
    (Source.DEAL_STAGE_CHANGES, 8),
    (Source.SCORE_ADJUSTMENTS, 3),
)


@dataclass(frozen=True, slots=True)
class TrafficShape:
    contacts: int = 2000
    deals: int = 300
    tenants: tuple[str | None, ...] = (None, "acme", "globex")
    start_ms: int = 1_795_000_000_000
    step_ms: int = 1000  # mean event-time gap between consecutive events
    adjustment_scores: tuple[str, ...] = ("engagement",)


def _weighted(rng: random.Random, table: tuple[tuple[Any, int], ...]) -> Any:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def _skewed(rng: random.Random, n: int) -> int:
    """Popularity skew: index i is chosen with probability roughly proportional to 1/(i+1)."""
    return min(n - 1, int(n ** rng.random()) - 1)


def generate(
    count: int, *, seed: int = 7, shape: TrafficShape | None = None
) -> Iterator[tuple[Source, dict[str, Any]]]:
    """``count`` records as (source, record with the field names of docs/inputs.md,
    ``occurred_at`` in ms)."""
    shape = shape or TrafficShape()
    rng = random.Random(seed)  # noqa: S311 - sample data, not security
    t = shape.start_ms
    deal_stage = [0] * shape.deals
    for i in range(count):
        t += rng.randint(0, 2 * shape.step_ms)
        source = _weighted(rng, MIX)
        tenant = shape.tenants[_skewed(rng, len(shape.tenants))]
        contact = f"c-{_skewed(rng, shape.contacts)}"
        deal_no = rng.randrange(shape.deals)
        deal = f"d-{deal_no}"
        base: dict[str, Any] = {
            "event_id": f"ev-{seed}-{i}",
            "tenant_id": tenant,
            "occurred_at": t,
            "contact_id": contact,
            "deal_id": None,
        }
        if source is Source.PAGE_VISITS:
            url = _weighted(rng, PAGES)
            base.update(url=url, referrer=None, title=None, session_id=f"s-{i // 7}")
            if rng.random() < 0.1:
                base["deal_id"] = deal
        elif source is Source.EMAIL_EVENTS:
            base.update(
                action=_weighted(rng, EMAIL_ACTIONS),
                campaign_id=f"cmp-{rng.randrange(12)}",
                message_id=f"m-{i}",
                link_url=None,
            )
            if base["action"] == "click":
                base["link_url"] = _weighted(rng, PAGES)
        elif source is Source.CONTACT_PROFILES:
            attributes: dict[str, Any] = {
                "industry": rng.choice(INDUSTRIES),
                "region": rng.choice(REGIONS),
                "employees": rng.choice((5, 40, 120, 800, 5000)),
                "title": rng.choice(TITLES),
            }
            if rng.random() < 0.1:
                attributes["title"] = None
            base["attributes"] = attributes
        elif source is Source.PURCHASES:
            amount = Decimal(rng.randint(500, 250_000)) / 100
            base.update(order_id=f"o-{i}", amount=amount, currency="EUR")
        elif source is Source.DEAL_STAGE_CHANGES:
            stage = deal_stage[deal_no]
            nxt = min(stage + 1, len(STAGES) - 1)
            deal_stage[deal_no] = nxt
            status = "open" if nxt < len(STAGES) - 1 else rng.choice(("won", "lost"))
            base.update(
                deal_id=deal,
                pipeline="sales",
                from_stage=STAGES[stage],
                to_stage=STAGES[nxt],
                status=status,
                value=Decimal(rng.randint(1_000, 90_000)),
            )
            if rng.random() < 0.5:
                base["contact_id"] = None
        else:
            op = rng.choices(("add", "subtract", "set", "reset"), weights=(70, 20, 7, 3))[0]
            base = {
                "command_id": f"cmd-{seed}-{i}",
                "tenant_id": tenant,
                "occurred_at": t,
                "entity": "contact",
                "entity_id": contact,
                "score": rng.choice(shape.adjustment_scores),
                "op": op,
                "points": None if op == "reset" else rng.randint(1, 30),
                "expires_after": "30d" if op == "add" and rng.random() < 0.3 else None,
                "reason": "demo",
            }
        yield source, base


def as_offline_line(source: Source, record: dict[str, Any]) -> dict[str, Any]:
    """The JSON-lines shape ``leadscore score`` reads: a ``type`` field, decimals as strings."""
    out = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in record.items()}
    if source is Source.EMAIL_EVENTS:
        out["type"] = f"email.{record['action']}"
    else:
        out["type"] = {
            Source.PAGE_VISITS: "page_visit",
            Source.PURCHASES: "purchase",
            Source.DEAL_STAGE_CHANGES: "deal.stage_changed",
            Source.CONTACT_PROFILES: "contact.updated",
            Source.SCORE_ADJUSTMENTS: "adjustment",
        }[source]
    return out
