"""A restricted YAML reader for plans: data only, YAML 1.2-style scalars, no surprises.

PyYAML's ``safe_load`` never runs code, but it follows YAML 1.1, where ``on`` is ``True``,
``22:00`` is the integer 1320, ``010`` is octal and ``2024-01-01`` is a date. Plans use all of
those as text, so this loader only recognises ``true``/``false``, decimal integers and decimal
fractions (read as exact ``Decimal``), and ``null``. Aliases are rejected (they make
exponential documents cheap) and duplicate keys are reported instead of silently overwritten.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

#: Longest plan accepted anywhere, in bytes of UTF-8: by ``plan check``, the worker's plan file,
#: ``plan publish`` and the ``plans`` topic alike. A tenant's plan is copied to every
#: entity-events partition in one record, which must fit Kafka's default 1 MiB record.
MAX_PLAN_BYTES = 512 * 1024

_STR = "tag:yaml.org,2002:str"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_DROPPED = {_BOOL, _INT, _FLOAT, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:merge"}


class _PlanLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.problems: list[str] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.MarkedYAMLError(
                problem="aliases (*name) are not allowed in plans", problem_mark=mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag != _STR:  # every field name in a plan is text
                self.problems.append(_key_problem(key_node))
                continue
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    self.problems.append(
                        f"line {key_node.start_mark.line + 1}: duplicate key '{key_node.value}'"
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _key_problem(key_node: Any) -> str:
    line = key_node.start_mark.line + 1
    if key_node.tag == _BOOL:
        return (
            f"line {line}: key {key_node.value} is read as a boolean, not as text: a YAML 1.1 "
            "tool writes the rule field 'on' as 'true'; write on: (or quote the key)"
        )
    shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "(a list or mapping)"
    return f"line {line}: key {shown} is not text; field names are text (quote the key)"


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
    text = str(loader.construct_scalar(node))
    if len(text) > 40:  # past any limit of a plan (and past Python's 4,300-digit conversion)
        return text  # kept as text: the field's check says it is not an integer in range
    return int(text)


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | str:
    text = str(loader.construct_scalar(node))
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the resolver regex only admits decimals
        return text


_PlanLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PlanLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_PlanLoader.add_implicit_resolver(_INT, re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
_PlanLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?[0-9]+[eE][-+]?[0-9]+$"
    ),
    list("-+0123456789."),
)
_PlanLoader.add_constructor(_INT, _construct_int)
_PlanLoader.add_constructor(_FLOAT, _construct_decimal)


def plan_size_problem(size: int) -> str | None:
    """Why a plan of ``size`` bytes is refused, or None."""
    if size <= MAX_PLAN_BYTES:
        return None
    kib = MAX_PLAN_BYTES // 1024
    return f"the plan is {size:,} bytes; at most {MAX_PLAN_BYTES:,} ({kib} KiB) are accepted"


def read_yaml(text: str, *, source: str = "the plan") -> tuple[Any, list[str]]:
    """Parse plan text into plain data; returns (data, problems). Never executes anything.
    ``source`` names the file in YAML errors."""
    too_big = plan_size_problem(len(text.encode("utf-8", "surrogatepass")))
    if too_big is not None:
        return None, [too_big]
    try:
        loader = _PlanLoader(text)  # the reader refuses control characters here already
    except yaml.YAMLError as error:
        return None, ["not valid YAML: " + _yaml_error(error, source)]
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as error:
        return None, ["not valid YAML: " + _yaml_error(error, source)]
    except TypeError as error:  # a key PyYAML cannot hash even as a problem (e.g. a list)
        return None, [f"not valid YAML for a plan: {error}"]
    except RecursionError:
        return None, ["not valid YAML for a plan: lists or mappings nested too deeply"]
    finally:
        loader.dispose()
    return data, loader.problems


def _yaml_error(error: yaml.YAMLError, source: str) -> str:
    """PyYAML's message on one line, naming ``source`` where it says ``<unicode string>``."""
    return " ".join(str(error).replace('"<unicode string>"', f'"{source}"').split())
