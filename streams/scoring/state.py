"""Per-entity state: seen ids, profile/deal properties, per-score ledgers.

Ownership rule (for speed): ``apply``/``advance`` *consume* the state they are given and return
the updated one (it may be the same object, mutated). Callers must not keep using the input
state object; the stream shell loads a fresh state from bytes for every item anyway. Everything
else in the state is plain data (ints, strings, tuples, lists, dicts) so that it serializes
quickly and compares by value.

A *contribution* is the tuple ``(rule_id, points, category, occurred_at_ms, expires_at_ms,
source_id)``; the index constants below name its positions.
"""

from __future__ import annotations

from decimal import Decimal
from hashlib import blake2b
from typing import Final, cast

C_RULE: Final = 0
C_POINTS: Final = 1
C_CATEGORY: Final = 2
C_OCCURRED: Final = 3
C_EXPIRES: Final = 4
C_SOURCE: Final = 5
Contribution = tuple[str, int, str | None, int, int | None, str]
#: (due_ms, source_id, contributions) of awards deferred by quiet hours.
Pending = tuple[int, str, tuple[Contribution, ...]]
#: An attribute / deal property value with the event time that set it (LWW); None = deleted.
Prop = tuple[str | Decimal | bool | None, int]

NO_EPOCH = -(2**62)

#: A contribution (or any of the state's tuples) as hot loops read it: the same object under a
#: static type compiled code does not unbox. mypyc keeps a fixed-length tuple as a C struct, so
#: a loop over ``list[Contribution]`` takes a reference to all six items of each (touching three
#: objects of its own in memory) and putting one back into a list builds a new tuple; a ``Raw``
#: one is read item by item (``cast`` each to its type) and stays the tuple it was.
Raw = tuple[object, ...]
#: A ledger's live contributions, in the order they were recorded: a tuple, not a list, so that
#: the collector stops tracking it (a tuple of tuples of atomic values leaves its scans at the
#: first collection that sees it) where a list would stay tracked for the entity's life; adding
#: one makes a new tuple (``contribs.appended``).
Contribs = tuple[Contribution, ...]


#: Shared empty lists a new ledger or entity starts with, instead of four new lists each: most
#: stay empty for good (no deferred award, no inactivity, no deal, no sealed segment), and an
#: empty list is one more object for the garbage collector to track and scan with the rest of
#: the states. Never changed in place: each in-place addition (``ledger.record``,
#: ``ledger.defer``, ``inactivity``, ``rollup``) assigns a new list when the one it has is empty,
#: ``segments`` always assigns a new list, and a list that empties goes back to the shared one
#: (``ledger.release``; ``tests/scoring/test_state.py``).
NO_PENDING: Final[list[Pending]] = []
NO_TIMES: Final[list[int]] = []
NO_LINKS: Final[list[str]] = []
NO_SEGS: Final[list[int]] = []
#: A ledger's cap histories: one flat tuple, (rule id, n, its n award times) per rule (``capping``).
CapHistory = tuple[object, ...]
NO_CAPS: Final[CapHistory] = ()
#: Shared empty dicts, likewise, for the ledger's maps that most ledgers never fill (folded
#: totals, repeat-once flags, stand-by matches, state-rule holds and anchors,
#: roll-up members, their versions): an empty dict is no object the collector scans, but each
#: one allocated counts toward its next young collection, and a ledger allocated nine
#: containers. Never changed in place: what adds to each (``compaction``; ``evaluate`` and
#: ``once``; ``once``; ``ledger.hold``; none; ``rollup``, twice)
#: assigns a new dict when it has the shared one (``tests/scoring/test_state.py``).
NO_FOLDED: Final[dict[tuple[str, str | None], int]] = {}
NO_HOLDS: Final[dict[str, Contribution | None]] = {}
NO_SEALED: Final[dict[str, int]] = {}  # an entity's ``past_sealed`` (only ever replaced whole)
NO_STATICS: Final[dict[str, int]] = {}
NO_STANDBY: Final[dict[str, Contribution]] = {}
NO_ANCHORS: Final[dict[str, int]] = {}
NO_MEMBERS: Final[dict[str, int]] = {}
NO_VERSIONS: Final[dict[str, int]] = {}

#: Field names (also read by ``__eq__``: compiled classes have no ``__slots__`` to read).
LEDGER_FIELDS: Final = (
    "active",
    "anchors",
    "caps",
    "contribs",
    "decay_due_ms",
    "decayed_ms",
    "epoch_ms",
    "folded",
    "holds",
    "inactive_due_ms",
    "members",
    "next_due_ms",
    "pending",
    "rolled",
    "seq",
    "standby",
    "statics",
    "sums",
    "total",
    "versions",
)
ENTITY_FIELDS: Final = (
    "account_link",
    "compacted_ms",
    "deal_links",
    "floor_ms",
    "next_due_ms",
    "past",
    "props",
    "rv",
    "scores",
    "seen",
    "watermark_ms",
)
#: How ``seen`` is kept in the store (``segments``): not part of an entity's equality.
SEGMENT_FIELDS: Final = ("past_sealed", "seen_tail", "segs", "seg_bytes", "seg_next")


class Ledger:
    """The ledger of one score of one entity: its contributions, holds, deferred awards and
    the totals and due times derived from them (changed by ``streams.scoring.ledger``)."""

    __slots__ = (*LEDGER_FIELDS, "memo")

    def __init__(self) -> None:
        #: ``decay_memo.Memo``: a cache of sums, not state (not compared, copied or stored)
        self.memo: object = None
        self.seq = 0  # seq of the last change emitted
        self.total = 0  # value after the last change (clamped)
        self.epoch_ms = NO_EPOCH  # start of the current epoch (last set/reset)
        self.contribs: Contribs = ()  # live event/adjustment contributions (see ``Contribs``)
        self.sums: dict[str | None, int] = {}  # unclamped per-category sums (None = uncategorised)
        self.folded: dict[tuple[str, str | None], int] = NO_FOLDED  # (rule, category) -> points
        self.statics: dict[str, int] = NO_STATICS  # repeat-once rule -> occurred_at of its award
        #: repeat-once rule -> its latest match refused only because the rule had awarded
        #: (awarded instead if a late set/reset drops that award; see ``once``)
        self.standby: dict[str, Contribution] = NO_STANDBY
        self.caps: CapHistory = NO_CAPS  # capped rules' award times (``capping``)
        #: matching state rule -> its points, occurred_at = when the match began;
        #: None = suppressed by a set/reset until the rule stops matching (see ``holds``)
        self.holds: dict[str, Contribution | None] = NO_HOLDS
        #: state rule -> when the match in progress at the entity's ``floor_ms`` began
        self.anchors: dict[str, int] = NO_ANCHORS
        self.pending: list[Pending] = NO_PENDING  # deferred awards
        #: decaying scores only: the instant ``total`` was evaluated at (see ``decay``), and
        #: the next instant decay must be looked at (None: nothing decays)
        self.decayed_ms = NO_EPOCH
        self.decay_due_ms: int | None = None
        #: scores with inactivity only: the entity's event times from the lateness horizon on
        #: (and the newest before it), ascending, and when the next deduction falls due
        self.active: list[int] = NO_TIMES
        self.inactive_due_ms: int | None = None
        #: roll-ups only (``rollup``): counted contacts' values, each contact's last update
        #: version (left ones too), the aggregate. Ints: the collector never tracks these maps
        self.members: dict[str, int] = NO_MEMBERS
        self.versions: dict[str, int] = NO_VERSIONS
        self.rolled = 0
        self.next_due_ms: int | None = None  # earliest expiry, deferred award or decay

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ledger):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in LEDGER_FIELDS)

    def __repr__(self) -> str:
        return f"Ledger(seq={self.seq}, total={self.total}, contribs={len(self.contribs)})"

    def rebuild_sums(self) -> None:
        """Rebuild ``sums`` from the contributions, folded points and holds (after bulk
        removals), then ``next_due_ms`` (``refresh_due``)."""
        sums: dict[str | None, int] = {}
        for contrib in cast("tuple[Raw, ...]", self.contribs):  # (see ``Raw``)
            category = cast("str | None", contrib[C_CATEGORY])
            sums[category] = sums.get(category, 0) + cast(int, contrib[C_POINTS])
        for (_, category), points in self.folded.items():
            sums[category] = sums.get(category, 0) + points
        for hold in self.holds.values():
            if hold is not None:
                sums[hold[C_CATEGORY]] = sums.get(hold[C_CATEGORY], 0) + hold[C_POINTS]
        self.sums = sums
        self.refresh_due()

    def refresh_due(self) -> None:
        """Set ``next_due_ms`` to the earliest expiry, deferred award, decay or inactivity due
        (one pass, no list of them: it runs after every change of a ledger)."""
        self.next_due_ms = event_due(self, self._timed_due())

    def refresh_due_after(self, soonest: int | None) -> None:
        """``refresh_due`` when the earliest expiry of the live contributions is known:
        ``soonest`` (None: none expires), as ``decay.evaluate`` finds it on its pass."""
        due = self._timed_due()
        if soonest is not None and (due is None or soonest < due):
            due = soonest
        self.next_due_ms = pending_due(self, due)

    def _timed_due(self) -> int | None:
        """The earlier of the decay and the inactivity due."""
        due = self.decay_due_ms
        inactive = self.inactive_due_ms
        if inactive is not None and (due is None or inactive < due):
            due = inactive
        return due


def event_due(ledger: Ledger, due: int | None = None) -> int | None:
    """The earliest of ``due`` and the ledger's expiries and deferred awards (the dues that are
    not decay or inactivity), in one pass."""
    for contrib in cast("tuple[Raw, ...]", ledger.contribs):  # (see ``Raw``)
        expires = contrib[C_EXPIRES]
        if expires is not None:
            at = cast(int, expires)
            if due is None or at < due:
                due = at
    return pending_due(ledger, due)


def pending_due(ledger: Ledger, due: int | None) -> int | None:
    """The earlier of ``due`` and the ledger's first deferred award."""
    for pending in ledger.pending:
        if due is None or pending[0] < due:
            due = pending[0]
    return due


class EntityState:
    """Everything kept for one entity (contact, deal or account) of one tenant."""

    __slots__ = ENTITY_FIELDS + SEGMENT_FIELDS

    def __init__(self) -> None:
        self.watermark_ms: int | None = None  # latest event time applied
        self.compacted_ms = NO_EPOCH  # watermark at the last compaction
        self.seen: dict[int, int] = {}  # hash64(event/command id) -> occurred_at_ms
        self.props: dict[str, Prop] = {}  # contact attributes / deal stage, pipeline, ...
        #: earlier values of each property, oldest first (the history state rules are replayed
        #: on when an update arrives out of order; see ``profile``), complete from ``floor_ms``
        self.past: dict[str, list[Prop]] = {}
        self.floor_ms = NO_EPOCH
        self.scores: dict[str, Ledger] = {}
        self.next_due_ms: int | None = None
        #: contacts of plans with roll-ups (see ``rollup``): the version of the last update
        #: sent to a roll-up, the account and the deals the contact is counted in
        self.rv = 0
        self.account_link: str | None = None
        self.deal_links: list[str] = NO_LINKS
        #: the newest ``seen_tail`` entries of ``seen`` are in no sealed segment, nor are the
        #: values of ``past`` after the first ``past_sealed[name]``; ``segs``: the seqs of the
        #: sealed segments holding the others, ``seg_bytes`` their size, ``seg_next`` the next
        #: seq (see ``segments``)
        self.seen_tail = 0
        self.past_sealed: dict[str, int] = NO_SEALED
        self.segs: list[int] = NO_SEGS
        self.seg_bytes = 0
        self.seg_next = 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EntityState):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in ENTITY_FIELDS)

    def __repr__(self) -> str:
        return f"EntityState(watermark_ms={self.watermark_ms}, scores={self.scores!r})"

    def score(self, name: str) -> Ledger:
        ledger = self.scores.get(name)
        if ledger is None:
            ledger = self.scores[name] = Ledger()
        return ledger

    def refresh_due(self) -> None:
        """Set ``next_due_ms`` to the earliest of its ledgers' (after they changed)."""
        due: int | None = None
        for ledger in self.scores.values():  # (a loop: no list, no call of ``min``)
            at = ledger.next_due_ms
            if at is not None and (due is None or at < due):
                due = at
        self.next_due_ms = due

    def view(self, kind: str) -> dict[str, object]:
        """What ``while`` conditions see: ``{attributes: {...}}`` or the deal's properties."""
        live: dict[str, object] = {
            name: value for name, (value, _) in self.props.items() if value is not None
        }
        return {"attributes": live} if kind == "contact" else live


_HASHERS: Final = {kind: blake2b(digest_size=8, person=kind.encode()) for kind in ("e", "c")}


def id_hash(kind: str, item_id: str) -> int:
    """Stable 64-bit hash of an event id (kind ``e``) or command id (kind ``c``).

    With n ids remembered per entity the chance of any false duplicate is about n^2 / 2^65:
    for 10,000 ids in the dedup horizon of one entity, 2.7e-12.
    """
    hasher = _HASHERS[kind].copy()  # (a copy skips parsing keyword arguments per call)
    hasher.update(item_id.encode())
    digest = hasher.digest()
    return int.from_bytes(digest, "big") or 1
