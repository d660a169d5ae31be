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

    def label(self) -> str:
        return f"consent {self.hash[:12]} (entry {self.index})"

    def covers(self, case: str, item: str) -> bool:
        """Whether the grant's scope names this item (no item list: the whole case)."""
        return self.case == case and (not self.items or item in self.items)


ConsentState = Consent


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
class KeyRegistered:
    """A party key becomes valid (registration, or the new key of a rotation)."""

    key: PartyKey


@dataclass(frozen=True)
class KeyEnded:
    """The active key of `name` ends at entry `index` (rotated or revoked)."""

    name: str
    index: int
    reason: str


Change = PutItem | SetHolder | PutConsent | RevokeConsent | SettleOffer | KeyRegistered | KeyEnded


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


@dataclass
class MemoryState:
    """Custody state in memory, built by applying the changes of entries in log order."""

    items: dict[tuple[str, str], ItemState] = field(default_factory=dict)
    consents: dict[str, Consent] = field(default_factory=dict)
    offers: dict[str, int] = field(default_factory=dict)
    keys: dict[str, list[PartyKey]] = field(default_factory=dict)

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
    else:
        history = state.keys[ch.name]
        history[-1] = history[-1].ended(ch.index, ch.reason)
