"""Score history on the loop's fakes: the last changes of each score, kept in the entity's store
in the transaction of the change, equal the tail of what ``score-changed`` holds, after clean
runs, aborts and with a ring smaller than the history; and the HTTP answers built on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError

from streams.api.history import from_avro
from streams.api.http import Api
from streams.scoring import EntityKey
from streams.state import history
from streams.wire import records
from tests.engine.fakes import error
from tests.engine.test_loop import CODEC, ROWS, World, visits


def published(world: World) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(contact, score) -> its changes on score-changed, in seq order."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in world.cluster.values(world.settings.topic_score_changed):
        change = from_avro(CODEC.decode(CODEC.score_changed, rec.value or b""))
        out.setdefault((change["entity_id"], change["score"]), []).append(change)
    return {k: sorted(v, key=lambda c: c["seq"]) for k, v in out.items()}


def call(api: Api, path: str, query: str = "", token: str | None = None) -> tuple[int, Any]:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query}
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    statuses: list[str] = []
    body = b"".join(api(environ, lambda status, headers: statuses.append(status)))  # type: ignore[arg-type,return-value]
    return int(statuses[0].split()[0]), json.loads(body)


def api_of(world: World) -> Api:
    loop = world.loop
    return Api(world.settings, loop.stage.plan, loop, world.metrics, None,
               tenants=loop.stage.tenants, stores=loop.rebalance, codec=CODEC)  # fmt: skip


def check_history(world: World, bound: int) -> int:
    """Every contact's history over HTTP equals the last ``bound`` changes published; returns
    how many changes were compared."""
    api, compared = api_of(world), 0
    for (contact, score), changes in published(world).items():
        status, body = call(api, f"/scores/contact/{contact}/history", f"score={score}")
        assert status == 200, body
        kept = body["scores"][score]
        assert kept["changes"] == list(reversed(changes))[:bound]
        assert kept["seq"] == changes[-1]["seq"] == len(changes)
        assert kept["older"] == max(len(changes) - bound, 0)
        compared += len(kept["changes"])
    return compared


def test_history_equals_the_tail_of_score_changed(tmp_path: Path) -> None:
    world = World(tmp_path).start()
    world.send(ROWS)
    world.drain()
    assert check_history(world, 50) == len(world.cluster.values(world.settings.topic_score_changed))


def test_a_ring_smaller_than_the_history_keeps_the_last_changes(tmp_path: Path) -> None:
    world = World(tmp_path, history_per_score=3).start()
    world.send(ROWS)
    world.drain()
    assert max(len(v) for v in published(world).values()) > 3  # the ring wrapped
    assert check_history(world, 3) > 0
    key = records.entity_key_bytes(EntityKey(None, "contact", "c0"))
    partition = world.loop.entity_partition(key)
    _, rows = world.loop.rebalance.read_store(
        partition, lambda store: store.scan(history.entity_prefix(key))
    )
    assert rows is not None and len(rows) == 3  # one slot per change kept, no more


def abort_one_commit(world: World, steps: int = 3) -> None:
    """A few turns, then a commit that fails abortably; then drain: exactly one abort."""
    for _ in range(steps):
        world.loop.step()
    world.producer.fail["commit_transaction"] = [error(KafkaError._STATE, abortable=True)]
    world.loop.step()
    assert world.producer.calls[-1] == "abort_transaction"
    world.drain()
    assert world.sample("leadscore_transactions_total", {"result": "aborted"}) == 1


def test_an_aborted_transaction_leaves_no_history(tmp_path: Path) -> None:
    world = World(tmp_path).start()
    world.send(ROWS)
    abort_one_commit(world)
    assert check_history(world, 50) == len(world.cluster.values(world.settings.topic_score_changed))


def test_history_off_keeps_nothing(tmp_path: Path) -> None:
    world = World(tmp_path, history_per_score=0).start()
    world.send(ROWS)
    world.drain()
    status, body = call(api_of(world), "/scores/contact/c0/history")
    assert status == 200
    assert body["history_per_score"] == 0
    assert body["scores"]["engagement"]["changes"] == []
    assert body["scores"]["engagement"]["older"] == body["scores"]["engagement"]["seq"] > 0


def test_history_answers_and_refusals(tmp_path: Path) -> None:
    world = World(tmp_path).start()
    world.send(ROWS)
    world.drain()
    api = api_of(world)
    status, body = call(api, "/scores/contact/c0/history", "n=2")
    assert status == 200 and len(body["scores"]["engagement"]["changes"]) == 2
    change = body["scores"]["engagement"]["changes"][0]
    assert {"cause", "rule_ids", "source_event_id", "plan_version", "occurred_at",
            "emitted_at"} <= change.keys()  # fmt: skip
    assert call(api, "/scores/contact/nobody/history")[0] == 404
    assert call(api, "/scores/planet/c0/history")[0] == 400
    assert (
        "score must be one of" in call(api, "/scores/contact/c0/history", "score=nope")[1]["error"]
    )
    assert "n must be" in call(api, "/scores/contact/c0/history", "n=0")[1]["error"]
    assert "n must be" in call(api, "/scores/contact/c0/history", "n=51")[1]["error"]
    assert "needs a score" in call(api, "/scores/contact/c0/history", "before=3")[1]["error"]
    assert "before must be" in call(api, "/scores/contact/c0/history",
                                    "score=engagement&before=x")[1]["error"]  # fmt: skip
    status, explained = call(api, "/scores/contact/c0/explain", "score=engagement")
    assert status == 200
    assert explained["history"] == "/scores/contact/c0/history?score=engagement"


def test_a_tenant_token_reads_its_own_tenants_history_only(tmp_path: Path) -> None:
    world = World(tmp_path, tenant_tokens="acme=tok-a,globex=tok-g").start()
    world.send(visits(20, seed=4, tenant="acme"))
    world.drain()
    api, path = api_of(world), "/scores/contact/c1/history"
    acme, globex = "tok-a", "tok-g"
    status, mine = call(api, path, "tenant=acme", acme)
    assert status == 200 and mine["tenant_id"] == "acme"
    assert mine["scores"]["engagement"]["changes"]
    assert call(api, path, "", acme)[1] == mine  # a tenant token: its own tenant
    assert call(api, path, "tenant=acme", globex)[0] == 404  # another tenant: nothing shows
    assert call(api, path, "tenant=acme")[0] == 401  # no token


def test_an_entry_of_either_format_reads_as_the_change_s_shape() -> None:
    from streams.scoring import ScoreChange
    from streams.scoring.outcomes import Cause

    change = ScoreChange("t1", "contact", "c-1", "engagement", 4, 10, 25, Cause.RULE,
                         ("visit", "pricing"), "e-9", 1_790_000_000_000, (("mql", "up"),), "v2",
                         None, "warm")  # fmt: skip
    shape = change.to_dict(emitted_at_ms=1_790_000_000_250)
    datum = CODEC.encode_change(change, 1_790_000_000_250)
    assert history.encode_datum(datum)[-len(datum) - 1 :][:1] == history.AVRO
    assert history.decode(history.encode_datum(datum)) == shape  # what the loop writes
    assert history.decode(history.encode(shape)) == shape  # what earlier versions wrote
