"""Score history on the real broker, through ``kill -9``s of the worker while traffic flows: each
score's history (``GET /scores/{entity}/{id}/history``, kept in the entity's store in the
transaction of its changes) equals the tail of what ``score-changed`` holds for it, and the
older changes (``?before=``, ``leadscore history --from-topic``) the rest of it."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from tests.integration.service import (
    REPO,
    Service,
    _without_settings,
    crash_traffic,
    produce_with_kills,
)

EVENTS = 4000
KILLS = 2
BOUND = 6  # small, so that many scores' rings wrap


def history_command(worker: Any, kind: str, entity_id: str, tenant: str | None,
                    *args: str) -> dict[str, Any]:  # fmt: skip
    """``leadscore history ... --json`` with the worker's settings: its answer."""
    command = [sys.executable, "-m", "streams.cli", "history", kind, entity_id, "--json", *args]
    if tenant:
        command += ["--tenant", tenant]
    env = {**_without_settings(os.environ), **worker.env}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


async def test_history_after_kill_9_equals_score_changed(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    """``kill -9``s with the local state kept while traffic flows; at the end, the worker is
    killed and its data directory deleted: the history comes back from the state changelog with
    the states. (One run covers both restarts: a run of kills alone added 30 s to ``make test``
    and nothing this one does not check.)"""
    rng = random.Random(unique)
    records = crash_traffic(EVENTS, 150, rng)
    service = Service(bootstrap, unique, tmp_path,
                      extra={"LEADSCORE_HISTORY_PER_SCORE": str(BOUND)})  # fmt: skip
    worker = service.worker()
    try:
        worker.start()
        await worker.wait_ready()
        await produce_with_kills(service, worker, records, KILLS, rng)
        await service.wait_drained(timeout_s=180)
        worker.kill()
        shutil.rmtree(tmp_path / worker.name)
        worker.start()
        await worker.wait_ready()
        published = await service.changes()
        by_score: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for change in published:
            ident = (change["tenant_id"], change["entity"], change["entity_id"], change["score"])
            by_score.setdefault(ident, []).append(change)
        entities = {ident[:3] for ident in by_score}
        compared = wrapped = 0
        for tenant, kind, entity_id in sorted(entities, key=str):
            query = f"?tenant={urllib.parse.quote(tenant)}" if tenant else ""
            status, body = worker.get(f"/scores/{kind}/{urllib.parse.quote(entity_id)}"
                                      f"/history{query}")  # fmt: skip
            assert status == 200, body
            for name, kept in body["scores"].items():
                changes = sorted(by_score.get((tenant, kind, entity_id, name), []),
                                 key=lambda c: c["seq"])  # fmt: skip
                assert [c["seq"] for c in changes] == list(range(1, len(changes) + 1))
                assert kept["changes"] == list(reversed(changes))[:BOUND], (kind, entity_id, name)
                assert kept["older"] == max(len(changes) - BOUND, 0)
                compared += len(kept["changes"])
                wrapped += len(changes) > BOUND
        assert compared > 0 and wrapped > 0
        # the older ones: from score-changed, by HTTP and by the command
        ident, longest = max(by_score.items(), key=lambda kv: len(kv[1]))
        tenant, kind, entity_id, name = ident
        oldest_kept = len(longest) - BOUND + 1
        status, older = worker.get(f"/scores/{kind}/{urllib.parse.quote(entity_id)}/history"
                                   f"?score={name}&before={oldest_kept}&n=1000"
                                   + (f"&tenant={tenant}" if tenant else ""))  # fmt: skip
        assert status == 200 and older["complete"], older
        expected = sorted(longest, key=lambda c: c["seq"])[: oldest_kept - 1]
        assert older["changes"] == list(reversed(expected))
        everything = sorted(longest, key=lambda c: -c["seq"])
        # the command: from the topic itself, and (by default) from the worker's HTTP API
        from_topic = history_command(worker, kind, entity_id, tenant, "--score", name,
                                     "--from-topic", "-n", "1000")  # fmt: skip
        assert from_topic["changes"] == everything
        asked = history_command(worker, kind, entity_id, tenant, "--score", name)
        assert asked["scores"][name]["changes"] == everything[:BOUND]
    finally:
        service.stop_all()
    print(f"history: {EVENTS} events, {KILLS} kill -9s and one with the state lost, "
          f"{len(published)} changes of {len(by_score)} scores; {compared} kept changes equal "
          f"score-changed, {wrapped} rings wrapped (bound {BOUND})")  # fmt: skip
