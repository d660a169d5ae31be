"""The custody rules: one engine, used by appends, `log verify`, verify-bundle and imports (pure).

The rules of docs/spec/entry.md are a pure function of an entry's index, the
signed entry and a read-only view of the custody state the earlier entries built
(`custody.model.state.StateView`).  `evaluate` either raises EntryError naming the
rule broken or returns the `Change`s the entry makes:

* `key`: a party key is registered, rotated or revoked (`custody.model.parties`);
* `ingest`: an item is ingested once per case, by the party that signs it, who
  holds it;
* `consent`: only an owner party consents, and only the owner revokes, once;
* `handoff`: only the current holder hands off, signed by both parties, and an
  offer is settled once;
* `reject`: only the receiver refuses an offer;
* `access`, `derive`: only the holder, and footage taken in on consent only
  within an active consent's scope;
* every entry made on this log: claimed times in order (`check_order`,
  docs/spec/entry.md rule 5), when the caller gives `admit` the previous entry's
  claimed time (`previous`).  The caller decides which entries that applies to:
  the log gives it for entries made in this home and not for entries imported
  from elsewhere (a key file, an owner's consent, a handoff's context), which keep
  their signer's time; a replay (`log verify`, verify-bundle) never refuses for
  it and reports disorder instead (`custody.model.times.find_disorder`).

`admit` is the whole check of one new entry (format, signatures by keys valid at
its index, then the rules) and `replay` feeds entries through it in log order over
a `MemoryState`.  `judge_in_context` judges an entry made on another log (a handoff
offer) in that log's own order, over a state built only from the context it came
with (docs/handoff.md, "Entries from another log").  The log applies the same
engine before appending, over its indexed state in the database, so it never
accepts an entry that a replay would refuse.

`Chain` is the older interface (items, consents, `apply` with a separate party
timeline), kept as a thin wrapper over the engine for its callers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from custody.errors import CustodyError
from custody.model.entry import Entry, SignedEntry, format_time, parse_time
from custody.model.parties import EntryError, Parties, check_signatures, key_changes
from custody.model.state import (
    Change,
    Consent,
    ItemState,
    KeyRegistered,
    MemoryState,
    PartyKey,
    PutConsent,
    PutItem,
    RevokeConsent,
    SetHolder,
    SettleOffer,
    StateView,
    key_at,
)
from custody.model.times import TIME_TOLERANCE, Stamp, claimed_time_of, span
from custody.model.types import (
    ONWARD,
    REGISTRY,
    Access,
    Derive,
    DeriveRequest,
    Handoff,
    Ingest,
    KeyEvent,
    Reject,
    Typed,
    parse_typed,
)
from custody.model.types import Consent as ConsentEntry

__all__ = [
    "KNOWN_TYPES",
    "ONWARD",
    "Admitted",
    "Chain",
    "Consent",
    "ContextError",
    "ItemState",
    "Parsed",
    "RuleError",
    "Signed",
    "admit",
    "check_access",
    "check_not_ahead",
    "check_order",
    "entry_hash",
    "evaluate",
    "judge_in_context",
    "replay",
]

KNOWN_TYPES = frozenset(REGISTRY)


class RuleError(EntryError):
    """An entry breaks a custody rule (not a signature or key rule): the log refuses it.

    The log reports it as a refusal (`PolicyError`, nothing appended); a verifier
    reports it as the EntryError it is.
    """


class Signed(Protocol):
    """What the rules need of an entry: its bytes, parsed text and signers' names."""

    @property
    def data(self) -> bytes: ...
    @property
    def entry(self) -> Entry: ...
    @property
    def signer_names(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Parsed:
    """A light `Signed` (what verification workers hand back)."""

    data: bytes
    entry: Entry
    signer_names: tuple[str, ...]


def entry_hash(data: bytes) -> str:
    """The entry hash other entries use to name this one: hex RFC 6962 leaf hash."""
    return hashlib.sha256(b"\x00" + data).hexdigest()


# -- the engine ------------------------------------------------------------------------------


def typed_of(index: int, entry: Entry) -> Typed:
    """The typed form of `entry`; EntryError (with the upgrade hint) if its type is unknown
    or a field is missing or malformed."""
    if entry.type not in KNOWN_TYPES:
        raise RuleError(
            index,
            f"has unknown type '{entry.type}'",
            hint="this log was written by a newer custody; upgrade to verify it",
        )
    try:
        return parse_typed(entry)
    except CustodyError as exc:  # a missing or malformed field
        raise RuleError(index, exc.message) from exc


def evaluate(
    index: int, signed: Signed, view: StateView, typed: Typed | None = None
) -> list[Change]:
    """The changes entry `index` makes to the custody state `view`, or RuleError naming
    the rule it breaks (EntryError for a key rule).

    Signatures are not checked here (`custody.model.parties.check_signatures`
    does that); this checks that the right parties signed.  `typed` is the entry
    already parsed, if the caller has it.
    """
    if typed is None:
        typed = typed_of(index, signed.entry)
    names = signed.signer_names
    try:
        if isinstance(typed, KeyEvent):
            return key_changes(index, typed, view.party_keys)
        if isinstance(typed, Ingest):
            return _ingest(index, typed, names, view)
        if isinstance(typed, ConsentEntry):
            return _consent(index, typed, signed.data, names, view)
        if isinstance(typed, Handoff):
            # A handoff's time is the receiver's countersignature's, when it has one.
            when = format_time(claimed_time_of(signed.data, signed.entry))
            return _handoff(index, typed, names, view, when)
        if isinstance(typed, Reject):
            return _reject(index, typed, names, view)
        if isinstance(typed, Access):
            _signed_by(index, names, typed.by, "the party accessing the footage")
            check_access(index, view, typed.case, typed.item, typed.by, typed.time)
            return []
        if isinstance(typed, Derive | DeriveRequest):
            return _derive(index, typed, names, view)
    except EntryError:
        raise
    except CustodyError as exc:  # e.g. a key that does not parse
        raise RuleError(index, exc.message) from exc
    raise RuleError(index, f"has unknown type '{typed.entry.type}'")  # pragma: no cover


@dataclass(frozen=True)
class Admitted:
    """An entry that passed every check: its parsed form, typed form and changes."""

    signed: SignedEntry
    typed: Typed
    changes: list[Change]


def admit(index: int, data: bytes, view: StateView, *, previous: Stamp | None = None) -> Admitted:
    """Check entry `index` (bytes from anywhere) as the log does before appending it.

    In order: the format; for a `key` entry, the key rules (the key it introduces
    may sign it); every signature, by a party key valid at `index`; that the entry
    names its case; the custody rules; with `previous` (the claimed time of the
    entry before it, given for entries made in this home), claimed times in order
    (`check_order`).  Raises EntryError naming the entry and what is wrong;
    RuleError (a subclass) when it is a custody rule that refuses it.
    """
    admitted = _admit(index, data, view)
    check_order(index, admitted.signed, previous)
    return admitted


def check_order(index: int, signed: SignedEntry, previous: Stamp | None) -> None:
    """Rule 5, claimed times in order (docs/spec/entry.md): entry `index` may not claim
    a time more than `custody.model.times.TIME_TOLERANCE` before `previous`, the
    entry before it (None: nothing to compare with).  Raises RuleError: the log
    refuses the entry (a clock set back)."""
    found = Stamp.of(index, signed).after(previous)
    if found is None:
        return
    raise RuleError(
        index,
        f"the {found.type} entry claims {format_time(found.claimed)}, {span(found.gap)} before "
        f"log entry {found.previous_index} ({found.previous_type}), the entry before it — "
        f"more than the {span(found.tolerance)} tolerance for claimed times "
        "(docs/spec/entry.md rule 5)",
        hint="this computer's clock may be set back: check its date and time, then try again",
    )


def check_not_ahead(index: int, signed: SignedEntry, now: datetime) -> None:
    """Rule 5's other half: entry `index` may not claim a time more than
    `custody.model.times.TIME_TOLERANCE` after `now`, the appending machine's clock.

    Checked for every append, imported entries included: an entry from a machine
    whose clock runs ahead would otherwise make every later entry of this log look
    set back, and be refused.  Raises RuleError."""
    claimed = Stamp.of(index, signed).claimed
    if claimed - now <= TIME_TOLERANCE:
        return
    raise RuleError(
        index,
        f"the {signed.entry.type} entry claims {format_time(claimed)}, "
        f"{span(claimed - now)} after this computer's clock ({format_time(now)}) — more "
        f"than the {span(TIME_TOLERANCE)} tolerance for claimed times "
        "(docs/spec/entry.md rule 5)",
        hint="the clock of the machine that signed it, or of this one, is wrong: check both; "
        f"the log takes it from {format_time(claimed - TIME_TOLERANCE)} on, or when it is "
        "signed again",
    )


def _admit(index: int, data: bytes, view: StateView) -> Admitted:
    try:
        signed = SignedEntry.parse(data)
    except CustodyError as exc:
        raise EntryError(index, f"malformed: {exc.message}") from exc
    entry = signed.entry
    names = set(signed.signer_names)
    if entry.type == "key":
        try:
            key = KeyEvent.from_entry(entry)
        except CustodyError as exc:
            raise EntryError(index, exc.message) from exc
        changes = key_changes(index, key, view.party_keys)
        parties = _parties_of(view, names | {key.party})
        parties.apply_changes(changes)
        check_signatures(index, signed, parties)
        return Admitted(signed, key, changes)
    check_signatures(index, signed, _parties_of(view, names))
    if entry.get("case") is None:
        raise RuleError(index, f"a {entry.type} entry must name its case")
    typed = typed_of(index, entry)
    return Admitted(signed, typed, evaluate(index, signed, view, typed))


def replay(entries: Iterable[tuple[int, bytes]], state: MemoryState | None = None) -> MemoryState:
    """Admit `entries` (index, bytes) in log order into `state` (a new one by default).

    This is the whole custody check from the entries alone: formats, signatures by
    the keys valid at each index, the key timeline and the custody rules.  Raises
    EntryError naming the first entry that fails.
    """
    state = state if state is not None else MemoryState()
    for index, data in entries:
        state.apply(admit(index, data, state).changes)
    return state


def judge_in_context(
    context: Sequence[bytes],
    signed: Signed,
    *,
    known_keys: Mapping[str, PartyKey] | None = None,
) -> MemoryState:
    """Judge `signed`, an entry made on another log, in that log's order and state.

    `context` is what the other log sent with the entry (an offer's context): exact
    entry bytes in that log's order.  They are admitted one by one (format,
    signatures by the keys valid at each position, key and custody rules) over a
    `MemoryState` that starts empty, at positions 0 to n-1; then the custody rules
    of `signed` are evaluated at position n.  Only the relative order of the
    context matters: a key is valid for the entries after its registration and
    before its end, a consent for the entries after its grant, as on the log that
    wrote them.  Nothing of the judging log's own state is read, so entries of
    another log are never re-ordered against local ones.

    The signatures of `signed` itself are not checked here (the log that appends it
    does that).  A party who signed `signed` but whom the context does not
    introduce (the receiver of an offer, whose key the sender may not have) is
    taken from `known_keys`, as a key valid from position n: the rules read only
    its role.

    Returns the state after `signed`.  Raises ContextError naming the context
    entry (1-based) that fails and why; RuleError (position n) if `signed` breaks
    a custody rule in that state.
    """
    state = MemoryState()
    total = len(context)
    for position, data in enumerate(context):
        # An entry may appear twice, as on the log that wrote it (two identical
        # accesses in one second are the same bytes): it is judged each time.
        try:
            state.apply(admit(position, data, state).changes)
        except EntryError as exc:
            raise ContextError(position + 1, total, _type_of(data), exc.reason) from exc
    index = total
    for name in signed.signer_names:
        if not state.party_keys(name) and known_keys is not None and name in known_keys:
            key = replace(known_keys[name], registered_at=index, ended_at=None, end_reason=None)
            state.apply([KeyRegistered(key)])
    state.apply(evaluate(index, signed, state))
    return state


class ContextError(EntryError):
    """An entry of another log's context fails when replayed in that log's own order.

    `position` counts from 1 among the context's `total` entries.  That is tampering,
    or a sending log that does not hold up: a verification failure (exit 1), not a
    refusal by the judging log's rules.
    """

    def __init__(self, position: int, total: int, etype: str, reason: str) -> None:
        super().__init__(
            position,
            reason,
            hint="the offer was altered, or the sender's log does not hold up: ask the sender "
            "to run 'custody log verify' and to make a new offer",
        )
        self.position = position
        self.total = total
        what = f" ({etype})" if etype else ""
        # EntryError says "log entry N: ..."; a context entry is not one of this log's.
        self.message = f"the offer's context entry {position} of {total}{what}: {reason}"
        self.args = (self.message,)


def _type_of(data: bytes) -> str:
    try:
        return SignedEntry.parse(data).entry.type
    except CustodyError:
        return ""


def _parties_of(view: StateView, names: Iterable[str]) -> Parties:
    """The key histories of `names` (all a signature check of one entry reads)."""
    return Parties({n: list(view.party_keys(n)) for n in names if view.party_keys(n)})


# -- rules per type ------------------------------------------------------------------------------


def _ingest(index: int, e: Ingest, names: Sequence[str], view: StateView) -> list[Change]:
    _signed_by(index, names, e.by, "the ingesting party")
    existing = view.item(e.case, e.item)
    if existing is not None:
        raise RuleError(
            index,
            f"item {e.item[:16]}… was already ingested in case {e.case} at entry {existing.since}",
        )
    holder = e.holder or e.by
    if holder != e.by:
        raise RuleError(index, f"ingest by '{e.by}' names '{holder}' as holder")
    return [PutItem(ItemState(e.case, e.item, e.exhibit, e.by, e.legal_basis, e.ref, index))]


def _consent(
    index: int, e: ConsentEntry, data: bytes, names: Sequence[str], view: StateView
) -> list[Change]:
    _signed_by(index, names, e.owner, "the owner")
    key = key_at(view.party_keys(e.owner), index)
    if key is None or key.role != "owner":
        raise RuleError(index, f"consent is given by '{e.owner}', who is not an owner party")
    if e.action == "grant":
        assert e.case is not None and e.purpose is not None and e.onward is not None
        h = entry_hash(data)
        grant = Consent(
            h, index, e.owner, e.case, frozenset(e.items), e.purpose, e.until_date, e.onward
        )
        return [PutConsent(grant)]
    assert e.consent is not None  # ConsentEntry.check
    target = view.consent(e.consent)
    if target is None:
        raise RuleError(index, f"revokes consent {e.consent[:12]}, which is not on this log")
    if target.owner != e.owner:
        raise RuleError(index, f"{target.label()} was given by '{target.owner}', not '{e.owner}'")
    if target.revoked_at is not None:
        raise RuleError(index, f"{target.label()} was already revoked at entry {target.revoked_at}")
    return [RevokeConsent(target.hash, index)]


def _handoff(
    index: int, e: Handoff, names: Sequence[str], view: StateView, when: str
) -> list[Change]:
    _signed_by(index, names, e.sender, "the releasing party")
    _signed_by(index, names, e.receiver, "the receiving party")
    if e.sender == e.receiver:
        raise RuleError(index, "a handoff needs two different parties")
    if view.offer_settled(e.offer):
        raise RuleError(index, f"offer {e.offer[:12]} was already accepted or refused")
    if not e.items:
        raise RuleError(index, "handoff names no item")
    receiving = key_at(view.party_keys(e.receiver), index)
    for item in e.items:
        state = _held(index, view, e.case, item, e.sender, "hand off")
        _check_consent(
            index, view, state, when, e.sender, receiving.role if receiving is not None else None
        )
    changes: list[Change] = [SetHolder(e.case, item, e.receiver) for item in e.items]
    changes.append(SettleOffer(e.offer, index))
    return changes


def _reject(index: int, e: Reject, names: Sequence[str], view: StateView) -> list[Change]:
    _signed_by(index, names, e.by, "the party refusing the offer")
    if e.by != e.receiver:
        raise RuleError(index, f"only the receiver '{e.receiver}' may refuse this offer")
    if view.offer_settled(e.offer):
        raise RuleError(index, f"offer {e.offer[:12]} was already accepted or refused")
    return [SettleOffer(e.offer, index)]


def check_access(index: int, view: StateView, case: str, item: str, by: str, time: str) -> None:
    """The rule for an `access` entry whose signature by `by` is already checked.

    (Split out so that `log verify` can hand over access entries, the bulk of a
    busy log, as a few strings instead of whole parsed entries.)  Raises RuleError.
    """
    state = _held(index, view, case, item, by, "access")
    _check_consent(index, view, state, time, None, None)


def _derive(
    index: int, e: Derive | DeriveRequest, names: Sequence[str], view: StateView
) -> list[Change]:
    _signed_by(index, names, e.by, "the party deriving the copy")
    state = _held(index, view, e.case, e.parent, e.by, "derive from")
    _check_consent(index, view, state, e.time, None, None)
    if view.item(e.case, e.item) is not None:
        raise RuleError(index, f"derived item {e.item[:16]}… is already in case {e.case}")
    child = ItemState(
        e.case, e.item, e.exhibit, e.by, state.legal_basis, state.ref, index, parent=e.parent
    )
    return [PutItem(child)]


# -- shared checks -------------------------------------------------------------------------------


def _signed_by(index: int, names: Sequence[str], party: str, role: str) -> None:
    if party not in names:
        raise RuleError(index, f"is not signed by {role} '{party}'")


def _held(index: int, view: StateView, case: str, item: str, party: str, verb: str) -> ItemState:
    state = view.item(case, item)
    if state is None:
        raise RuleError(index, f"item {item[:16]}… is not on this log in case {case}")
    if state.holder != party:
        raise RuleError(
            index,
            f"'{party}' may not {verb} {state.exhibit}: the current holder is '{state.holder}'",
            hint="only the current holder may do that; the chain has no gaps",
        )
    return state


def _check_consent(
    index: int,
    view: StateView,
    state: ItemState,
    time: str,
    sender: str | None,
    receiver_role: str | None,
) -> None:
    """Refuse use of consent-based footage outside every consent's scope."""
    if state.legal_basis != "consent":
        return
    when = parse_time(time).date()
    candidates = view.consents_covering(state.case, state.item)
    if not candidates:
        raise RuleError(
            index,
            f"no consent on this log covers {state.exhibit}, which was taken in on consent",
            hint="record the owner's consent with 'custody consent grant'",
        )
    reasons = []
    for c in sorted(candidates, key=lambda c: c.index, reverse=True):
        if c.index > index:
            continue
        if c.revoked_at is not None and c.revoked_at < index:
            reasons.append(f"{c.label()} was revoked at entry {c.revoked_at}")
            continue
        if c.until is not None and when > c.until:
            reasons.append(f"{c.label()} expired on {c.until.isoformat()}")
            continue
        if sender is not None and sender != c.owner:
            if c.onward == "none":
                reasons.append(f"{c.label()} does not allow onward sharing (onward none)")
                continue
            if c.onward == "court" and receiver_role != "court":
                reasons.append(f"{c.label()} allows onward sharing only to a court (onward court)")
                continue
        return
    raise RuleError(
        index,
        f"outside the owner's consent for {state.exhibit}: " + "; ".join(reasons),
        hint="ask the owner for a consent that covers this, or record the warrant it is done under",
    )


# -- the older interface ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _WithParties:
    """A state whose party keys come from a separate `Parties` timeline (what `Chain` takes)."""

    state: MemoryState
    parties: Parties

    def item(self, case: str, item: str) -> ItemState | None:
        return self.state.item(case, item)

    def consents_covering(self, case: str, item: str) -> Sequence[Consent]:
        return self.state.consents_covering(case, item)

    def consent(self, hash: str) -> Consent | None:
        return self.state.consent(hash)

    def offer_settled(self, offer: str) -> bool:
        return self.state.offer_settled(offer)

    def party_keys(self, name: str) -> Sequence[PartyKey]:
        return self.parties.party_keys(name)


@dataclass
class Chain:
    """The custody chain replayed entry by entry: the engine over a `MemoryState`.

    Party keys are the caller's: `apply` takes the `Parties` timeline to read and
    leaves `key` entries to it (`Parties.apply`).
    """

    state: MemoryState = field(default_factory=MemoryState)

    @property
    def items(self) -> dict[tuple[str, str], ItemState]:
        return self.state.items

    @property
    def consents(self) -> dict[str, Consent]:
        return self.state.consents

    @property
    def offers(self) -> set[str]:
        return set(self.state.offers)

    def item(self, case: str, item: str) -> ItemState | None:
        return self.state.item(case, item)

    def apply(self, index: int, signed: Signed, parties: Parties) -> None:
        """Take entry `index` into the chain, or raise EntryError naming the rule it breaks."""
        if signed.entry.type == "key":
            return  # party keys are the business of custody.model.parties
        self.state.apply(evaluate(index, signed, _WithParties(self.state, parties)))

    def check_access(self, index: int, case: str, item: str, by: str, time: str) -> None:
        """The rule for an `access` entry whose signature by `by` is already checked."""
        check_access(index, self.state, case, item, by, time)
