"""Custody state: what the rules need to know about the log so far (pure).

The custody rules (`custody.model.rules`) are a pure function of an entry and a
read-only view of the state the earlier entries built: who holds each item, which
consents exist and what they cover, which offers are settled, and every party's
key timeline.  A rule either refuses the entry or returns the `Change`s it makes;
whoever owns the state applies them.

Two states implement `StateView`:

* `MemoryState` (here): a replay from entries alone, used by `log verify`,
  verify-bundle, derive and imports;
* the database's indexed state (`custody.infra.state`), updated in the same
  transaction as each append, so that an append reads a few rows however large
  the case or the log is.

`log verify` replays into a `MemoryState` and compares it with the database's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Protocol

from custody.tlog.note import VerifierKey

# -- the state's records -------------------------------------------------------------------


@dataclass
class ItemState:
    """One item of one case, as the chain knows it."""

    case: str
    item: str
    exhibit: str
    holder: str
    legal_basis: str | None
    ref: str | None
    since: int  # index of the entry that introduced it
    parent: str | None = None
    #: index of the `review` that rejected its emergency disclosure (access, derive,
    #: analysis refused after it; handoff only to a court; disposal allowed)
    restricted_at: int | None = None
    disposed_at: int | None = None  # index of its `disposal` entry: nothing after it


@dataclass
class Consent:
    """One consent grant: its scope, and the index of its revocation if any."""

    hash: str
    index: int
    owner: str
    case: str
    items: frozenset[str]
    purpose: str
    until: date | None
    onward: str
    revoked_at: int | None = None
    request: str | None = None  # entry hash of the request it answers, if any

    def label(self) -> str:
        return f"consent {self.hash[:12]} (entry {self.index})"

    def covers(self, case: str, item: str) -> bool:
        """Whether the grant's scope names this item (no item list: the whole case)."""
        return self.case == case and (not self.items or item in self.items)


ConsentState = Consent


@dataclass
class RequestState:
    """A request for footage (entry.md §request) and the answers it received."""

    hash: str
    index: int
    case: str
    by: str
    owner: str | None  # the owner asked, if addressed to one
    start: str  # the window, as written (YYYY-MM-DDTHH:MM:SSZ)
    end: str
    area: str | None  # "LAT,LON,RADIUS_M"
    answer_by: date | None
    #: (index, owner, "consent" | "refusal") of each answer, in log order
    answers: tuple[tuple[int, str, str], ...] = ()

    def label(self) -> str:
        return f"request {self.hash[:12]} (entry {self.index})"


@dataclass
class EmergencyState:
    """An emergency disclosure (an ingest with legal-basis emergency) and its review."""

    hash: str  # entry hash of the ingest
    index: int
    case: str
    item: str
    by: str  # the ingesting party (who may not review it)
    time: str  # the ingest's claimed time
    due: str  # time + the review period of the policy in force at the ingest
    reviewed_at: int | None = None
    outcome: str | None = None  # "upheld" | "rejected"
    reviewer: str | None = None
    reviewed_time: str | None = None  # the review's claimed time

    def label(self) -> str:
        return f"emergency disclosure {self.hash[:12]} (entry {self.index})"


@dataclass
class HoldState:
    """A legal hold on a case (item None) or an item, and its release if any."""

    hash: str  # entry hash of the hold placed
    index: int
    case: str
    item: str | None
    by: str
    released_at: int | None = None

    def covers(self, case: str, item: str) -> bool:
        return self.case == case and (self.item is None or self.item == item)

    def label(self) -> str:
        return f"hold {self.hash[:12]} (entry {self.index})"


@dataclass(frozen=True)
class PolicyState:
    """The log's policy in force (the newest `policy` entry, signed with the log key)."""

    index: int
    forbid: frozenset[str]
    warrant_required: frozenset[str]
    review_hours: int


@dataclass(frozen=True)
class PartyKey:
    """One key of one party, valid for entries [registered_at, ended_at)."""

    name: str
    role: str
    org: str
    vkey: VerifierKey
    registered_at: int
    ended_at: int | None = None
    end_reason: str | None = None  # "rotated" | "revoked: <reason>"

    def ended(self, index: int, reason: str) -> PartyKey:
        """This key, ended at entry `index` (rotated or revoked there)."""
        return replace(self, ended_at=index, end_reason=reason)


def key_at(keys: Sequence[PartyKey], index: int) -> PartyKey | None:
    """The key among `keys` valid for ordinary entries at `index`, or None."""
    for key in keys:
        if key.registered_at <= index and (key.ended_at is None or index < key.ended_at):
            return key
    return None


# -- the changes an entry makes ---------------------------------------------------------------


@dataclass(frozen=True)
class PutItem:
    """A new item enters a case (ingest, derive)."""

    state: ItemState


@dataclass(frozen=True)
class SetHolder:
    """Custody of an item passes to `holder` (handoff)."""

    case: str
    item: str
    holder: str


@dataclass(frozen=True)
class PutConsent:
    """A consent grant is recorded."""

    consent: Consent


@dataclass(frozen=True)
class RevokeConsent:
    """Consent `hash` is revoked at entry `index`."""

    hash: str
    index: int


@dataclass(frozen=True)
class SettleOffer:
    """Offer `offer` was accepted or refused at entry `index`: it can never be used again."""

    offer: str
    index: int


@dataclass(frozen=True)
class PutRequest:
    """A request is recorded."""

    request: RequestState


@dataclass(frozen=True)
class AnswerRequest:
    """Request `hash` gets an answer at entry `index` by `owner`: "consent" or "refusal"."""

    hash: str
    index: int
    owner: str
    outcome: str


@dataclass(frozen=True)
class PutEmergency:
    """An emergency disclosure is recorded (with the ingest that makes it)."""

    emergency: EmergencyState


@dataclass(frozen=True)
class ReviewEmergency:
    """Emergency disclosure `hash` is reviewed at entry `index`; a rejection also
    restricts the item (`ItemState.restricted_at`)."""

    hash: str
    index: int
    outcome: str
    reviewer: str
    time: str  # the review's claimed time


@dataclass(frozen=True)
class PutHold:
    """A legal hold is placed."""

    hold: HoldState


@dataclass(frozen=True)
class ReleaseHold:
    """Hold `hash` is released at entry `index`."""

    hash: str
    index: int


@dataclass(frozen=True)
class Dispose:
    """Item `item` of `case` is disposed of at entry `index`."""

    case: str
    item: str
    index: int


@dataclass(frozen=True)
class SetPolicy:
    """A new policy is in force from entry `policy.index`."""

    policy: PolicyState


@dataclass(frozen=True)
class KeyRegistered:
    """A party key becomes valid (registration, or the new key of a rotation)."""

    key: PartyKey


@dataclass(frozen=True)
class KeyEnded:
    """The active key of `name` ends at entry `index` (rotated or revoked)."""

    name: str
    index: int
    reason: str


Change = (
    PutItem
    | SetHolder
    | PutConsent
    | RevokeConsent
    | SettleOffer
    | KeyRegistered
    | KeyEnded
    | PutRequest
    | AnswerRequest
    | PutEmergency
    | ReviewEmergency
    | PutHold
    | ReleaseHold
    | Dispose
    | SetPolicy
)


# -- the view the rules read ---------------------------------------------------------------------


class StateView(Protocol):
    """The look-ups the custody rules make (read-only)."""

    def item(self, case: str, item: str) -> ItemState | None:
        """The item's state in the case, or None if it is not in the case."""
        ...

    def consents_covering(self, case: str, item: str) -> Sequence[Consent]:
        """Every consent grant whose scope covers the item (revoked ones included)."""
        ...

    def consent(self, hash: str) -> Consent | None:
        """The consent grant with this entry hash, or None."""
        ...

    def offer_settled(self, offer: str) -> bool:
        """Whether the offer was already accepted or refused."""
        ...

    def party_keys(self, name: str) -> Sequence[PartyKey]:
        """The key history of party `name`, oldest first (empty if unknown)."""
        ...

    def request(self, hash: str) -> RequestState | None:
        """The request with this entry hash, or None."""
        ...

    def emergency(self, hash: str) -> EmergencyState | None:
        """The emergency disclosure made by the ingest with this entry hash, or None."""
        ...

    def hold(self, hash: str) -> HoldState | None:
        """The hold placed by the entry with this hash, or None."""
        ...

    def holds_covering(self, case: str, item: str) -> Sequence[HoldState]:
        """Every hold on the item or its case (released ones included)."""
        ...

    def policy(self) -> PolicyState | None:
        """The policy in force (the newest `policy` entry), or None."""
        ...

    def log_key(self) -> VerifierKey | None:
        """The log's verifier key, which signs `policy` entries; None where the state
        does not know it (another log's context): a `policy` entry is then refused."""
        ...


@dataclass
class MemoryState:
    """Custody state in memory, built by applying the changes of entries in log order."""

    items: dict[tuple[str, str], ItemState] = field(default_factory=dict)
    consents: dict[str, Consent] = field(default_factory=dict)
    offers: dict[str, int] = field(default_factory=dict)
    keys: dict[str, list[PartyKey]] = field(default_factory=dict)
    requests: dict[str, RequestState] = field(default_factory=dict)
    emergencies: dict[str, EmergencyState] = field(default_factory=dict)
    holds: dict[str, HoldState] = field(default_factory=dict)
    current_policy: PolicyState | None = None
    log_vkey: VerifierKey | None = None  # given by whoever replays (log verify, verify-bundle)

    def item(self, case: str, item: str) -> ItemState | None:
        return self.items.get((case, item))

    def consents_covering(self, case: str, item: str) -> Sequence[Consent]:
        return [c for c in self.consents.values() if c.covers(case, item)]

    def consent(self, hash: str) -> Consent | None:
        return self.consents.get(hash)

    def offer_settled(self, offer: str) -> bool:
        return offer in self.offers

    def party_keys(self, name: str) -> Sequence[PartyKey]:
        return self.keys.get(name, [])

    def request(self, hash: str) -> RequestState | None:
        return self.requests.get(hash)

    def emergency(self, hash: str) -> EmergencyState | None:
        return self.emergencies.get(hash)

    def hold(self, hash: str) -> HoldState | None:
        return self.holds.get(hash)

    def holds_covering(self, case: str, item: str) -> Sequence[HoldState]:
        return [h for h in self.holds.values() if h.covers(case, item)]

    def policy(self) -> PolicyState | None:
        return self.current_policy

    def log_key(self) -> VerifierKey | None:
        return self.log_vkey

    def apply(self, changes: Iterable[Change]) -> None:
        """Apply the changes an entry makes (as returned by the rules), in order."""
        for ch in changes:
            apply_change(self, ch)


def apply_change(state: MemoryState, ch: Change) -> None:
    """Apply one change to a MemoryState (records are replaced, never shared)."""
    if isinstance(ch, PutItem):
        state.items[(ch.state.case, ch.state.item)] = replace(ch.state)
    elif isinstance(ch, SetHolder):
        state.items[(ch.case, ch.item)].holder = ch.holder
    elif isinstance(ch, PutConsent):
        state.consents[ch.consent.hash] = replace(ch.consent)
    elif isinstance(ch, RevokeConsent):
        state.consents[ch.hash].revoked_at = ch.index
    elif isinstance(ch, SettleOffer):
        state.offers[ch.offer] = ch.index
    elif isinstance(ch, KeyRegistered):
        state.keys.setdefault(ch.key.name, []).append(ch.key)
    elif isinstance(ch, KeyEnded):
        history = state.keys[ch.name]
        history[-1] = history[-1].ended(ch.index, ch.reason)
    else:
        _apply_oversight(state, ch)


def _apply_oversight(state: MemoryState, ch: Change) -> None:
    """The changes of requests, emergencies, holds, disposals and policies (issue 12)."""
    if isinstance(ch, PutRequest):
        state.requests[ch.request.hash] = replace(ch.request)
    elif isinstance(ch, AnswerRequest):
        req = state.requests[ch.hash]
        req.answers = (*req.answers, (ch.index, ch.owner, ch.outcome))
    elif isinstance(ch, PutEmergency):
        state.emergencies[ch.emergency.hash] = replace(ch.emergency)
    elif isinstance(ch, ReviewEmergency):
        em = state.emergencies[ch.hash]
        em.reviewed_at, em.outcome = ch.index, ch.outcome
        em.reviewer, em.reviewed_time = ch.reviewer, ch.time
        if ch.outcome == "rejected":
            state.items[(em.case, em.item)].restricted_at = ch.index
    elif isinstance(ch, PutHold):
        state.holds[ch.hold.hash] = replace(ch.hold)
    elif isinstance(ch, ReleaseHold):
        state.holds[ch.hash].released_at = ch.index
    elif isinstance(ch, Dispose):
        state.items[(ch.case, ch.item)].disposed_at = ch.index
    elif isinstance(ch, SetPolicy):
        state.current_policy = ch.policy
    else:  # pragma: no cover - every Change is handled above
        raise TypeError(f"unknown state change {ch!r}")
