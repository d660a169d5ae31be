"""The custody chain: who holds each item, under what consent (pure).

`Chain` replays entries in log order and enforces the custody rules of
docs/spec/entry.md: an item is ingested once per case; only its current holder
may hand it off, access it or derive from it; a handoff is signed by both
parties; footage taken in on consent is used only within an active consent's
scope.  The log applies it before appending (so it never accepts an entry that
breaks a rule) and every verifier applies it again, from the entries alone.

Signatures are not checked here (`custody.model.parties.check_entry` does that);
this module checks that the right parties signed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from custody.errors import CustodyError
from custody.model.entry import Entry, parse_time
from custody.model.parties import EntryError, Parties

ONWARD = ("none", "court", "any")
KNOWN_TYPES = frozenset({"key", "ingest", "consent", "handoff", "reject", "access", "derive"})


class Signed(Protocol):
    """What the chain needs of an entry: its bytes, parsed text and signers' names."""

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


@dataclass
class Chain:
    items: dict[tuple[str, str], ItemState] = field(default_factory=dict)
    consents: dict[str, Consent] = field(default_factory=dict)
    offers: set[str] = field(default_factory=set)

    def item(self, case: str, item: str) -> ItemState | None:
        return self.items.get((case, item))

    def apply(self, index: int, signed: Signed, parties: Parties) -> None:
        """Take entry `index` into the chain, or raise EntryError naming the rule it breaks."""
        entry = signed.entry
        if entry.type not in KNOWN_TYPES:
            raise EntryError(
                index,
                f"has unknown type '{entry.type}'",
                hint="this log was written by a newer custody; upgrade to verify it",
            )
        try:
            getattr(self, f"_{entry.type}")(index, signed, parties)
        except EntryError:
            raise
        except CustodyError as exc:  # a missing or malformed field
            raise EntryError(index, exc.message) from exc

    # -- rules per type ------------------------------------------------------------

    def _key(self, index: int, signed: Signed, parties: Parties) -> None:
        return None  # party keys are the business of custody.model.parties

    def _ingest(self, index: int, signed: Signed, parties: Parties) -> None:
        e = signed.entry
        case, item, by = e.require("case"), e.require("item"), e.require("by")
        _signed_by(index, signed, by, "the ingesting party")
        existing = self.item(case, item)
        if existing is not None:
            raise EntryError(
                index,
                f"item {item[:16]}… was already ingested in case {case} at entry {existing.since}",
            )
        holder = e.get("holder") or by
        if holder != by:
            raise EntryError(index, f"ingest by '{by}' names '{holder}' as holder")
        self.items[(case, item)] = ItemState(
            case,
            item,
            e.require("exhibit"),
            by,
            e.get("legal-basis"),
            e.get("ref"),
            index,
        )

    def _consent(self, index: int, signed: Signed, parties: Parties) -> None:
        e = signed.entry
        owner = e.require("owner")
        _signed_by(index, signed, owner, "the owner")
        key = parties.key_at(owner, index)
        if key is None or key.role != "owner":
            raise EntryError(index, f"consent is given by '{owner}', who is not an owner party")
        action = e.require("action")
        if action == "grant":
            onward = e.require("onward")
            if onward not in ONWARD:
                raise EntryError(index, f"onward {onward!r} is not one of {', '.join(ONWARD)}")
            until = e.get("until")
            h = entry_hash(signed.data)
            self.consents[h] = Consent(
                h,
                index,
                owner,
                e.require("case"),
                frozenset(e.get_all("item")),
                e.require("purpose"),
                _date(index, until) if until else None,
                onward,
            )
        elif action == "revoke":
            target = e.require("consent")
            grant = self.consents.get(target)
            if grant is None:
                raise EntryError(index, f"revokes consent {target[:12]}, which is not on this log")
            if grant.owner != owner:
                raise EntryError(
                    index, f"{grant.label()} was given by '{grant.owner}', not '{owner}'"
                )
            if grant.revoked_at is not None:
                raise EntryError(
                    index, f"{grant.label()} was already revoked at entry {grant.revoked_at}"
                )
            grant.revoked_at = index
        else:
            raise EntryError(index, f"unknown consent action {action!r}")

    def _handoff(self, index: int, signed: Signed, parties: Parties) -> None:
        e = signed.entry
        case, sender, receiver = e.require("case"), e.require("from"), e.require("to")
        _signed_by(index, signed, sender, "the releasing party")
        _signed_by(index, signed, receiver, "the receiving party")
        if sender == receiver:
            raise EntryError(index, "a handoff needs two different parties")
        offer = e.require("offer")
        if offer in self.offers:
            raise EntryError(index, f"offer {offer[:12]} was already accepted or refused")
        items = e.get_all("item")
        if not items:
            raise EntryError(index, "handoff names no item")
        receiving = parties.key_at(receiver, index)
        for item in items:
            state = self._held(index, case, item, sender, "hand off")
            self._check_consent(
                index, state, e.time, sender, receiving.role if receiving is not None else None
            )
        for item in items:
            self.items[(case, item)].holder = receiver
        self.offers.add(offer)

    def _reject(self, index: int, signed: Signed, parties: Parties) -> None:
        e = signed.entry
        by, receiver, offer = e.require("by"), e.require("to"), e.require("offer")
        _signed_by(index, signed, by, "the party refusing the offer")
        if by != receiver:
            raise EntryError(index, f"only the receiver '{receiver}' may refuse this offer")
        if offer in self.offers:
            raise EntryError(index, f"offer {offer[:12]} was already accepted or refused")
        self.offers.add(offer)

    def _access(self, index: int, signed: Signed, parties: Parties) -> None:
        e = signed.entry
        case, item, by = e.require("case"), e.require("item"), e.require("by")
        _signed_by(index, signed, by, "the party accessing the footage")
        self.check_access(index, case, item, by, e.time)

    def check_access(self, index: int, case: str, item: str, by: str, time: str) -> None:
        """The rule for an `access` entry whose signature by `by` is already checked.

        (Split out so that `log verify` can hand over access entries, the bulk of a
        busy log, as a few strings instead of whole parsed entries.)
        """
        state = self._held(index, case, item, by, "access")
        self._check_consent(index, state, time, None, None)

    def _derive(self, index: int, signed: Signed, parties: Parties) -> None:
        e = signed.entry
        case, parent, child, by = (
            e.require("case"),
            e.require("parent"),
            e.require("item"),
            e.require("by"),
        )
        _signed_by(index, signed, by, "the party deriving the copy")
        state = self._held(index, case, parent, by, "derive from")
        self._check_consent(index, state, e.time, None, None)
        if self.item(case, child) is not None:
            raise EntryError(index, f"derived item {child[:16]}… is already in case {case}")
        self.items[(case, child)] = ItemState(
            case,
            child,
            e.require("exhibit"),
            by,
            state.legal_basis,
            state.ref,
            index,
            parent=parent,
        )

    # -- shared checks -------------------------------------------------------------

    def _held(self, index: int, case: str, item: str, party: str, verb: str) -> ItemState:
        state = self.item(case, item)
        if state is None:
            raise EntryError(index, f"item {item[:16]}… is not on this log in case {case}")
        if state.holder != party:
            raise EntryError(
                index,
                f"'{party}' may not {verb} {state.exhibit}: the current holder is '{state.holder}'",
                hint="only the current holder may do that; the chain has no gaps",
            )
        return state

    def _check_consent(
        self, index: int, state: ItemState, time: str, sender: str | None, receiver_role: str | None
    ) -> None:
        """Refuse use of consent-based footage outside every consent's scope."""
        if state.legal_basis != "consent":
            return
        when = parse_time(time).date()
        candidates = [
            c
            for c in self.consents.values()
            if c.case == state.case and (not c.items or state.item in c.items)
        ]
        if not candidates:
            raise EntryError(
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
                    reasons.append(
                        f"{c.label()} allows onward sharing only to a court (onward court)"
                    )
                    continue
            return
        raise EntryError(
            index,
            f"outside the owner's consent for {state.exhibit}: " + "; ".join(reasons),
            hint="ask the owner for a consent that covers this, or record the "
            "warrant it is done under",
        )


def _signed_by(index: int, signed: Signed, party: str, role: str) -> None:
    if party not in signed.signer_names:
        raise EntryError(index, f"is not signed by {role} '{party}'")


def _date(index: int, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise EntryError(index, f"'until' is not a date like 2026-12-31: {text!r}") from None
