"""``docs/asyncapi.yaml``: valid AsyncAPI 3.0.0 (the JSON schema vendored from the npm package
``@asyncapi/specs`` 6.11.1), naming every topic the service creates, with the Avro schemas the
service really uses."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from streams.settings import Settings
from streams.wire.codec import SCHEMA_DIR, Source
from streams.wire.topics import input_topics, required_topics

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "asyncapi.yaml"
SCHEMA = json.loads((ROOT / "docs" / "schemas" / "asyncapi-3.0.0.json").read_text())
CONTRACT: dict[str, Any] = yaml.safe_load(DOC.read_text())


def errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{list(e.path)}: {e.message[:200]}" for e in validator.iter_errors(document)]


def test_the_contract_is_valid_asyncapi_3() -> None:
    assert CONTRACT["asyncapi"] == "3.0.0"
    assert errors(CONTRACT) == []


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d["operations"]["sendScoreChanged"].update(action="publish"),  # 2.x wording
        lambda d: d["channels"]["scores"].update(address=7),
        lambda d: d.pop("info"),
        lambda d: d["components"]["messages"]["Score"].update(payload=None, name=["x"]),
    ],
)
def test_the_schema_check_catches_a_broken_contract(break_it: Any) -> None:
    broken = copy.deepcopy(CONTRACT)
    break_it(broken)
    assert errors(broken)


def addresses() -> dict[str, dict[str, Any]]:
    return {channel["address"]: channel for channel in CONTRACT["channels"].values()}


def test_every_topic_the_service_creates_is_a_channel() -> None:
    from streams.commands.automate import Automations

    created = {spec.name for spec in required_topics(Settings())}
    assert created <= set(addresses()), created - set(addresses())
    bridge_default = Automations.model_fields["dead_letter_topic"].default
    assert bridge_default in addresses()


def test_every_channel_has_an_operation_and_compaction_matches() -> None:
    used = {op["channel"]["$ref"].rsplit("/", 1)[1] for op in CONTRACT["operations"].values()}
    assert used == set(CONTRACT["channels"])
    bindings = CONTRACT["components"]["channelBindings"]
    for spec in required_topics(Settings()):
        channel = addresses()[spec.name]
        kafka = bindings[channel["bindings"]["$ref"].rsplit("/", 1)[1]]["kafka"]
        policy = spec.configs.get("cleanup.policy", "delete")
        assert kafka["topicConfiguration"]["cleanup.policy"] == [policy], spec.name


def payload_schema(channel: dict[str, Any]) -> Path:
    (message,) = channel["messages"].values()
    name = message["$ref"].rsplit("/", 1)[1]
    ref = CONTRACT["components"]["messages"][name]["payload"]["schema"]["$ref"]
    return (DOC.parent / ref).resolve()


@pytest.mark.parametrize("source", list(Source))
def test_inputs_reference_the_schema_the_service_decodes(source: Source) -> None:
    topic = {s: t for t, s in input_topics(Settings()).items()}[source]
    assert payload_schema(addresses()[topic]) == SCHEMA_DIR / f"{source.value}.avsc"


def test_outputs_reference_the_schemas_the_service_encodes() -> None:
    settings = Settings()
    assert payload_schema(addresses()[settings.topic_score_changed]) == (
        SCHEMA_DIR / "score_changed.avsc"
    )
    assert payload_schema(addresses()[settings.topic_scores]) == SCHEMA_DIR / "score.avsc"


def test_the_bridge_dead_letter_payload_is_what_the_bridge_writes() -> None:
    """The keys of the JSON the bridge produces (streams/commands/automate.py, ``letter``)."""
    import inspect

    from streams.commands import automate

    source = inspect.getsource(automate.Bridge._deliver)
    written = set(re.findall(r'"(\w+)": ', source.split("letter = {", 1)[1].split("}", 1)[0]))
    documented = CONTRACT["components"]["messages"]["AutomateDeadLetter"]["payload"]
    assert written == set(documented["properties"]) == set(documented["required"])


def test_dead_letter_headers_are_the_ones_the_service_writes() -> None:
    from streams.wire.deadletter import DeadLetter

    letter = DeadLetter(b"k", b"v" * 1_000_000, "t", 0, 1, "Oversized", "too big")
    _, _, headers = letter.for_kafka()
    documented = CONTRACT["components"]["messages"]["DeadLetter"]["headers"]["properties"]
    assert set(documented) == {name for name, _ in headers}


def test_the_plan_status_payload_is_what_the_worker_writes() -> None:
    import json

    from streams.engine.tenants import Checked, status_record

    written = json.loads(status_record(Checked("acme", "rejected", errors=("bad",)),
                                       source=("leadscore-plans", 0, 7), at_ms=1))  # fmt: skip
    documented = CONTRACT["components"]["messages"]["PlanStatus"]["payload"]
    assert set(written) == set(documented["properties"]) == set(documented["required"])
    assert set(written["source"]) == set(documented["properties"]["source"]["required"])
