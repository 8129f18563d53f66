"""A hostile tenant on shared workers (docs/operations.md, What we test: the edges).

Tenants ``alpha`` and ``evil`` share two workers and four partitions. While alpha's visits flow
(one every 25 ms for about 12 s, each a contact's first, stamped with its send time), evil:

- publishes a plan with an inactivity period of 1 ms (refused by ``plan publish``, nothing sent),
  then one full of catastrophic regexes (``^(a|aa)+$``, ``(.*a){25}``, ``(x+x+)+y``, ...) and the
  shortest inactivity period allowed (1 h), which is accepted and switches every partition;
- sends a visit dated 9999-01-01, one stamped in epoch microseconds (a unit mix-up), a JSON
  record nested 5,000 deep, a contact update of 200 attributes of 4,000 characters (about
  800 KB: near the limits, valid), visits whose URL, title and referrer are the adversarial
  inputs of its regexes (up to the 4,096-character field limit), and, last, an ordinary visit.

Then: alpha's visits are all scored exactly once, each within ``ALPHA_BOUND_S`` of being sent
(the figure measured is printed); neither worker exited; evil's bad records are dead letters
with their reasons (``future_event`` twice, ``InvalidJson`` once); evil's valid records score,
its last visit included (the far-future visit moved no watermark).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from streams.wire.codec import Source
from tests.integration.service import Service, free_port
from tests.integration.verify import exactly_once

DEFAULT = """
version: shared-v1
scores:
  - name: engagement
    entity: contact
    rules:
      - {id: visit, on: page_visit, points: 10}
"""
EVIL = """
version: evil-v1
scores:
  - name: engagement
    entity: contact
    inactivity: {after: 1h, points: -1}
    rules:
      - {id: visit, on: page_visit, points: 1}
      - {id: r1, on: page_visit, points: 5, where: {url: {regex: "^(a|aa)+$"}}}
      - {id: r2, on: page_visit, points: 5, where: {url: {regex: "(a+)+$"}}}
      - {id: r3, on: page_visit, points: 5, where: {title: {regex: "(x+x+)+y"}}}
      - {id: r4, on: page_visit, points: 5, where: {title: {regex: "^(\\\\w+\\\\s?)*$"}}}
      - {id: r5, on: page_visit, points: 5, where: {referrer: {regex: "(.*a){25}"}}}
      - {id: r6, on: page_visit, points: 5, where: {url: {glob: "*a*a*a*a*a*a*a*a*a*a*?!"}}}
"""
FLOOD = EVIL.replace("evil-v1", "evil-v0").replace("after: 1h", "after: 1ms")
#: The longest time from sending one of alpha's visits to its change on score-changed allowed
#: (before RE2 one such regex held every tenant for 39 s; measured here: printed by the test)
ALPHA_BOUND_S = 10.0
ALPHA_VISITS = 480
#: evil's visits that score (its adversarial ones and the last)
EVIL_SCORED = {"v-a", "v-b", "v-c", "v-d", "v-e", "v-last"}


def visit(tenant: str, event_id: str, contact: str, at_ms: int, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "tenant_id": tenant, "occurred_at": at_ms,
            "contact_id": contact, "deal_id": None, "url": "/pricing", **fields}  # fmt: skip


def publish(service: Service, plan: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **service.env("cli", free_port())}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "plan", "publish", "--tenant", "evil", str(plan)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def hostile_records(service: Service, now: int) -> int:
    """Evil's records; returns how many of its valid visits there are."""
    adversarial = [
        visit("evil", "v-a", "e-2", now, url="a" * 45 + "!"),
        visit("evil", "v-b", "e-2", now + 1, url="a" * 4095 + "!"),
        visit("evil", "v-c", "e-2", now + 2, title="x" * 4000),
        visit("evil", "v-d", "e-2", now + 3, title="word " * 800 + "!"),
        visit("evil", "v-e", "e-2", now + 4, referrer="a" * 24 + "!" * 3000),
    ]
    attributes = {f"a{i:03d}": chr(97 + i % 26) * 4000 for i in range(200)}
    profile = {"event_id": "p-big", "tenant_id": "evil", "occurred_at": now,
               "contact_id": "e-3", "deal_id": None, "attributes": attributes}  # fmt: skip
    await service.produce(
        [
            (Source.PAGE_VISITS, visit("evil", "v-future", "e-1", 253_370_764_800_000)),
            (Source.PAGE_VISITS, visit("evil", "v-micros", "e-1", now * 1000)),
            *((Source.PAGE_VISITS, record) for record in adversarial),
            (Source.CONTACT_PROFILES, profile),
        ]
    )
    nested = b'{"event_id": "v-nested", "tenant_id": "evil", "x": ' + b"[" * 5000 + b"]" * 5000
    await service.produce_raw(service.topic(Source.PAGE_VISITS), b"evil", nested + b"}")
    await service.produce([(Source.PAGE_VISITS, visit("evil", "v-last", "e-1", now + 60_000))])
    return len(adversarial) + 1


async def test_a_hostile_tenant_neither_stalls_nor_harms_another(
    bootstrap: str, tmp_path: Path
) -> None:
    default, evil, flood = (tmp_path / n for n in ("default.yaml", "evil.yaml", "flood.yaml"))
    default.write_text(DEFAULT)
    evil.write_text(EVIL)
    flood.write_text(FLOOD)
    json_sources = frozenset({Source.PAGE_VISITS, Source.CONTACT_PROFILES})
    service = Service(bootstrap, uuid.uuid4().hex[:12], tmp_path, plan=default, partitions=4,
                      json_sources=json_sources)  # fmt: skip
    w1, w2 = service.worker("w1").start(), service.worker("w2").start()
    sent: dict[str, float] = {}
    try:
        await w1.wait_ready()
        await w2.wait_ready()
        refused = publish(service, flood)
        assert refused.returncode == 2, refused.stderr
        assert "inactivity.after" in refused.stderr and "at least 1h" in refused.stderr
        accepted = publish(service, evil)
        assert accepted.returncode == 0, accepted.stderr
        assert json.loads(accepted.stdout)["status"] == "accepted"
        now = int(time.time() * 1000)
        evil_valid = 0
        async with service.sender() as send:
            for i in range(ALPHA_VISITS):
                event_id = f"a-{i}"
                sent[event_id] = time.time()
                record = visit("alpha", event_id, f"c-{i}", int(sent[event_id] * 1000))
                await send(Source.PAGE_VISITS, record)
                if i == ALPHA_VISITS // 4:
                    evil_valid = await hostile_records(service, now)
                await asyncio.sleep(0.025)
        deadline = time.monotonic() + 90
        changes: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            changes = await service.changes()
            alpha = [c for c in changes if c["tenant_id"] == "alpha"]
            evil_ids = {c["source_event_id"] for c in changes if c["tenant_id"] == "evil"}
            # (the big profile, p-big, scores nothing: no rule of evil's plan reads profiles)
            if len(alpha) >= ALPHA_VISITS and evil_ids >= EVIL_SCORED:
                break
            await asyncio.sleep(0.5)
        dead = await service.read_all(service.dead)
        alive = (w1.exited(), w2.exited())
        status, body = w1.get("/scores/contact/e-1/explain?score=engagement&tenant=evil")
    finally:
        service.stop_all()

    assert alive == (None, None), "a worker exited"
    grouped = exactly_once(changes)
    alpha = [c for c in changes if c["tenant_id"] == "alpha"]
    assert sorted(c["source_event_id"] for c in alpha) == sorted(sent)
    assert all((c["new_value"], c["plan_version"]) == (10, "shared-v1") for c in alpha)
    lags = sorted(c["emitted_at"] / 1000 - sent[c["source_event_id"]] for c in alpha)
    median, p99 = lags[len(lags) // 2], lags[int(len(lags) * 0.99)]
    print(f"\nalpha: {len(lags)} visits, send to score-changed: median {median:.3f} s, "
          f"p99 {p99:.3f} s, max {lags[-1]:.3f} s")  # fmt: skip
    assert lags[-1] <= ALPHA_BOUND_S, lags[-10:]
    letters = {}
    for record in dead:
        headers = {name: value.decode() for name, value in record.headers}
        letters[record.value[:400]] = (headers["leadscore.error.class"],
                                       headers["leadscore.error.reason"])  # fmt: skip
    classes = sorted(error for error, _ in letters.values())
    assert classes == ["InvalidJson", "future_event", "future_event"], letters
    reasons = " | ".join(reason for _, reason in letters.values())
    assert "9999-01-01" in reasons and "micro" in reasons and "nested deeper" in reasons, reasons
    evil_rows = [c for c in changes if c["tenant_id"] == "evil"]
    assert {c["source_event_id"] for c in evil_rows} >= EVIL_SCORED
    assert all(c["plan_version"] == "evil-v1" for c in evil_rows)
    e2 = grouped[("evil", "contact", "e-2", "engagement")]
    # each adversarial visit scores 1, and 5 more where a catastrophic rule matches (RE2 answers
    # each in linear time): v-a and v-b the glob r6, v-c the title rule r4
    assert [(c["source_event_id"], c["new_value"]) for c in e2] == [
        ("v-a", 6), ("v-b", 12), ("v-c", 18), ("v-d", 19), ("v-e", 20)
    ]  # fmt: skip
    assert evil_valid == 6
    assert status == 200 and [c["source_event_id"] for c in body["contributions"]] == ["v-last"]
