"""Per-tenant plans, versioned and hot-reloaded (docs/plans.md, Tenant plans).

How a plan reaches the core, and why every worker switches at the same item:

1. ``leadscore plan publish --tenant A FILE`` validates the file and writes its text to the
   compacted ``plans`` topic, keyed by the tenant (a tombstone returns it to the default plan).
2. The worker that owns the ``plans`` partition reads it like an input (:func:`check`). An invalid
   plan gets a ``plan-status`` record ``rejected`` with every error, and nothing else happens: the
   old plan stays. A valid one gets ``accepted`` and one :class:`~streams.wire.records.PlanRecord`
   on *every* partition of the entity-events topic, all in the transaction that commits the
   ``plans`` offset.
3. Each entity-events partition switches when its stage reaches that record: items before it were
   scored under the old plan, items after it under the new one. That point is an offset in the
   partition's log, so it is the same on every worker, after a crash, a rebalance or a replay.
4. The partition keeps its tenants' plan texts under one reserved key (:data:`PLANS_KEY`) of its
   store, written with the states in the same transaction and to the state changelog, so a
   restore brings them back with the states they scored.

The settings' plan file stays the default of every tenant without a plan of its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import msgpack

from streams.engine.shadows import parse_plans_key
from streams.scoring import Plan, PlanError, load_plan
from streams.scoring.plan.reader import MAX_PLAN_BYTES, plan_size_problem
from streams.scoring.shown import shown
from streams.state.store import PLANS_KEY

__all__ = ["MAX_PLAN_BYTES", "PLANS_KEY", "RECOMPUTE_HEADER", "Checked", "TenantPlans", "check",
           "status_record"]  # fmt: skip
# MAX_PLAN_BYTES (the core's, ``streams.scoring.plan.reader``): the one limit of ``plan check``,
# ``plan publish``, this topic and the worker's plan file; the broadcast copy of a plan must fit
# Kafka's default 1 MiB record.


def shadow_applied_key(tenant: str) -> str:
    """The key under which a partition remembers the last shadow record of a tenant it applied
    (not a tenant name: those are keys of the ``plans`` topic, which never start with 0)."""
    return f"\x00shadow\x00{tenant}"


def source_name(tenant: str) -> str:
    """The ``source`` a tenant's plan is compiled under: issues and ``/plans`` name it."""
    return f"plans topic, tenant {tenant}"


def shadow_source(tenant: str, version: str) -> str:
    return f"plans topic, tenant {tenant}, shadow {version}"


@dataclass(frozen=True, slots=True)
class Checked:
    """What the ``plans`` stage decided about one record."""

    tenant: str
    status: str  # accepted | rejected | removed
    version: str | None = None
    text: str | None = None
    errors: tuple[str, ...] = ()
    #: ``replay --apply``: recompute the tenant's scores from the items appended since then
    recompute_from_ms: int | None = None
    #: a shadow plan's record (``streams.engine.shadows``)
    shadow: bool = False


#: The ``plans`` record header of ``leadscore replay --apply``: epoch ms, decimal text.
RECOMPUTE_HEADER = "leadscore.recompute-from-ms"
_EPOCH_MS = re.compile(r"[0-9]{1,15}", re.ASCII)


def check(key: bytes | None, value: bytes | None,
          headers: list[tuple[str, bytes]] | None = None) -> Checked:  # fmt: skip
    """Validate one ``plans`` record: the key names the tenant, the value is the plan text, a
    :data:`RECOMPUTE_HEADER` asks for a recompute."""
    shadow = _shadow_of(key)
    if shadow is not None:
        return _check_shadow(*shadow, value, dict(headers or ()).get(RECOMPUTE_HEADER))
    checked = _check(key, value)
    raw = dict(headers or ()).get(RECOMPUTE_HEADER)
    if raw is None or checked.status == "rejected":
        return checked
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    if checked.status != "accepted" or not _EPOCH_MS.fullmatch(text):
        why = (f"{RECOMPUTE_HEADER} must be epoch millis (up to 15 digits) and comes with a "
               f"plan (got {shown(text, 40)})")  # fmt: skip
        return Checked(checked.tenant, "rejected", errors=(why,))
    return Checked(checked.tenant, "accepted", checked.version, checked.text, (), int(text))


def _shadow_of(key: bytes | None) -> tuple[str, str] | None:
    try:
        text = (key or b"").decode()
    except UnicodeDecodeError:
        return None
    return parse_plans_key(text)


def _check_shadow(tenant: str, version: str, value: bytes | None, recompute: object) -> Checked:
    """A shadow's record: its plan must be valid and of the version its key names."""
    if recompute is not None:
        return Checked(tenant, "rejected", version, shadow=True,
                       errors=(f"a shadow plan takes no {RECOMPUTE_HEADER}: promote it "
                               "instead (leadscore plan promote)",))  # fmt: skip
    if not tenant.strip() or len(tenant) > 200:
        return Checked(tenant, "rejected", version, shadow=True,
                       errors=("the key must name the tenant (1-200 chars)",))  # fmt: skip
    checked = _check(tenant.encode(), value)
    if checked.status == "removed":
        return Checked(tenant, "removed", version, shadow=True)
    if checked.status == "accepted" and checked.version != version:
        why = (f"the shadow's key names version {version!r} but the plan's version is "
               f"{checked.version!r}")  # fmt: skip
        return Checked(tenant, "rejected", version, errors=(why,), shadow=True)
    return Checked(tenant, checked.status, version, checked.text, checked.errors, shadow=True)


def _check(key: bytes | None, value: bytes | None) -> Checked:
    try:
        tenant = (key or b"").decode()
    except UnicodeDecodeError:
        return Checked("", "rejected", errors=("the key is not UTF-8: it must name the tenant",))
    if not tenant.strip() or len(tenant) > 200:
        return Checked(tenant, "rejected", errors=("the key must name the tenant (1-200 chars)",))
    if value is None:
        return Checked(tenant, "removed")
    too_big = plan_size_problem(len(value))
    if too_big is not None:
        return Checked(tenant, "rejected", errors=(too_big,))
    try:
        text = value.decode()
    except UnicodeDecodeError as exc:
        return Checked(tenant, "rejected", errors=(f"not UTF-8 text ({exc.reason} at byte "
                                                    f"{exc.start})",))  # fmt: skip
    try:
        plan = load_plan(text, source=source_name(tenant))
    except PlanError as exc:
        return Checked(tenant, "rejected", errors=tuple(str(i) for i in exc.issues))
    return Checked(tenant, "accepted", plan.version, text)


def status_record(checked: Checked, *, source: tuple[str, int, int], at_ms: int) -> bytes:
    """The ``plan-status`` value (JSON) of a checked record. The tenant is ``tenant`` (before
    docs/migration.md: ``account``; readers take both)."""
    topic, partition, offset = source
    return json.dumps({
        "tenant": checked.tenant, "status": checked.status, "version": checked.version,
        "errors": list(checked.errors), "at_ms": at_ms,
        "recompute_from_ms": checked.recompute_from_ms, "shadow": checked.shadow,
        "source": {"topic": topic, "partition": partition, "offset": offset},
    }).encode()  # fmt: skip


@dataclass(slots=True)
class TenantPlans:
    """The plan each tenant runs on each partition this worker holds.

    The loop writes it; the HTTP thread reads it. Writers replace a partition's dict instead of
    changing it in place, so a reader always sees one whole version of it.
    """

    default: Plan
    #: partition -> tenant -> (plan text, compiled plan)
    by_partition: dict[int, dict[str, tuple[str, Plan]]] = field(default_factory=dict)
    #: tenant -> (text, plan) compiled last: the partitions of one worker share the compilation
    compiled: dict[str, tuple[str, Plan]] = field(default_factory=dict)
    #: partition -> tenant -> offset on the ``plans`` topic of the last plan record applied
    #: (a copy seen again, after the group's offsets on that topic were reset, is skipped)
    applied: dict[int, dict[str, int]] = field(default_factory=dict)
    #: partitions whose plans changed in the open transaction
    pending: set[int] = field(default_factory=set)
    #: partition -> tenant -> version -> (text, compiled plan) of its shadow plans
    #: (``streams.engine.shadows``); replaced, never changed in place, as ``by_partition``
    shadows: dict[int, dict[str, dict[str, tuple[str, Plan]]]] = field(default_factory=dict)

    def shadows_for(self, partition: int, tenant: str | None) -> list[tuple[str, Plan]]:
        """(version, plan) of each shadow the tenant runs on the partition (usually none)."""
        tenants = self.shadows.get(partition)
        if not tenants or tenant is None:
            return []
        found = tenants.get(tenant)
        return [(version, plan) for version, (_, plan) in found.items()] if found else []

    def shadow_plan(self, partition: int, tenant: str | None, version: str) -> Plan | None:
        found = self.shadows.get(partition, {}).get(tenant or "", {}).get(version)
        return None if found is None else found[1]

    def switch_shadow(self, partition: int, tenant: str, version: str, text: str | None,
                      source_offset: int = -1) -> Plan | None:  # fmt: skip
        """Apply a shadow plan record (``text`` None: discard it); returns the shadow's plan, or
        None once discarded. Raises ``PlanError`` as :meth:`switch` does."""
        tenants = dict(self.shadows.get(partition, {}))
        versions = dict(tenants.get(tenant, {}))
        plan = None
        if text is None:
            versions.pop(version, None)
        else:
            plan = self._compile(f"{tenant}\x00shadow\x00{version}", text,
                                 shadow_source(tenant, version))  # fmt: skip
            versions[version] = (text, plan)
        if versions:
            tenants[tenant] = versions
        else:
            tenants.pop(tenant, None)
        self.shadows[partition] = tenants
        applied = self.applied.get(partition, {})
        self.applied[partition] = {**applied, shadow_applied_key(tenant): source_offset}
        self.pending.add(partition)
        return plan

    def was_shadow_applied(self, partition: int, tenant: str, source_offset: int) -> bool:
        done = self.applied.get(partition, {}).get(shadow_applied_key(tenant))
        return done is not None and done >= source_offset

    def running_shadows(self) -> dict[str, dict[str, list[int]]]:
        """tenant -> shadow version -> the partitions of this worker running it."""
        out: dict[str, dict[str, list[int]]] = {}
        for partition, tenants in sorted(list(self.shadows.items())):
            for tenant, versions in tenants.items():
                for version in versions:
                    out.setdefault(tenant, {}).setdefault(version, []).append(partition)
        return out

    def plan_for(self, partition: int, tenant: str | None) -> Plan:
        tenants = self.by_partition.get(partition)
        if not tenants:
            return self.default
        entry = tenants.get(tenant)  # type: ignore[arg-type]  # None: no tenant, the default
        return self.default if entry is None else entry[1]

    def was_applied(self, partition: int, tenant: str, source_offset: int) -> bool:
        """Whether the partition applied this plans record (or a later one) of the tenant."""
        done = self.applied.get(partition, {}).get(tenant)
        return done is not None and done >= source_offset

    def switch(self, partition: int, tenant: str, text: str | None,
               source_offset: int = -1) -> Plan:  # fmt: skip
        """Apply a plan record; returns the plan the tenant runs now on the partition.

        Raises ``PlanError`` if the text does not compile here (a worker of another version
        accepted it); the caller dead-letters the record and the old plan stays.
        """
        tenants = dict(self.by_partition.get(partition, {}))
        if text is None:
            tenants.pop(tenant, None)
            plan = self.default
        else:
            plan = self._compile(tenant, text)
            tenants[tenant] = (text, plan)
        self.by_partition[partition] = tenants
        self.applied[partition] = {**self.applied.get(partition, {}), tenant: source_offset}
        self.pending.add(partition)
        return plan

    def _compile(self, tenant: str, text: str, source: str | None = None) -> Plan:
        known = self.compiled.get(tenant)
        if known is not None and known[0] == text:
            return known[1]
        plan = load_plan(text, source=source or source_name(tenant))
        self.compiled[tenant] = (text, plan)
        return plan

    def blob(self, partition: int) -> bytes:
        """The partition's plan texts, as kept under :data:`PLANS_KEY`."""
        tenants = self.by_partition.get(partition, {})
        texts = {a: text for a, (text, _) in sorted(tenants.items())}
        body: dict[str, object] = {"texts": texts, "applied": self.applied.get(partition, {})}
        shadows = self.shadows.get(partition)
        if shadows:  # (a field older workers do not read)
            body["shadows"] = {tenant: {version: text for version, (text, _) in versions.items()}
                               for tenant, versions in sorted(shadows.items())}  # fmt: skip
        packed: bytes = msgpack.packb(body)
        return packed

    def load(self, partition: int, blob: bytes | None) -> list[str]:
        """The committed plans of a partition (its store's :data:`PLANS_KEY`), or none.

        Returns what could not be loaded: a text this version cannot compile (written by a
        worker of another version) leaves that tenant on the default plan here, loudly.
        """
        self.pending.discard(partition)
        self.by_partition.pop(partition, None)
        self.applied.pop(partition, None)
        self.shadows.pop(partition, None)
        if blob is None:
            return []
        body = msgpack.unpackb(blob)
        plans: dict[str, tuple[str, Plan]] = {}
        failed = []
        for tenant, text in body["texts"].items():
            try:
                plans[tenant] = (text, self._compile(tenant, text))
            except PlanError as exc:
                failed.append(f"tenant {tenant}: {exc}")
        self.by_partition[partition] = plans
        self.applied[partition] = dict(body["applied"])
        shadows: dict[str, dict[str, tuple[str, Plan]]] = {}
        for tenant, versions in body.get("shadows", {}).items():
            for version, text in versions.items():
                try:
                    plan = self._compile(f"{tenant}\x00shadow\x00{version}", text,
                                         shadow_source(tenant, version))  # fmt: skip
                except PlanError as exc:
                    failed.append(f"tenant {tenant}, shadow {version}: {exc}")
                    continue
                shadows.setdefault(tenant, {})[version] = (text, plan)
        self.shadows[partition] = shadows
        return failed

    def drop(self, partition: int) -> None:
        self.by_partition.pop(partition, None)
        self.applied.pop(partition, None)
        self.shadows.pop(partition, None)
        self.pending.discard(partition)

    def running(self) -> dict[str, dict[str, list[int]]]:
        """tenant -> version -> the partitions of this worker running it."""
        out: dict[str, dict[str, list[int]]] = {}
        for partition, tenants in sorted(list(self.by_partition.items())):
            for tenant, (_, plan) in tenants.items():
                out.setdefault(tenant, {}).setdefault(plan.version, []).append(partition)
        return out

    def tenant_plan(self, tenant: str | None) -> Plan:
        """The plan a tenant runs on most partitions of this worker (all of them, but while a
        new version reaches the partitions one by one); the default for no plan of its own."""
        versions = self.running().get(tenant or "")
        if not versions:
            return self.default
        version = max(versions, key=lambda v: len(versions[v]))
        partition = versions[version][0]
        return self.plan_for(partition, tenant)
