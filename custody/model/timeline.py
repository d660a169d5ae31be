"""Entries on a timeline: one log entry as an item's (or a case's) history lists it (pure).

`custody history`, the court report and `custody verify-bundle` all list the entries
about an item.  `Event` is that listing's unit: the entry's index, its text, who signed
it, and, once it is placed on a timeline, the sentence `custody.model.describe` gives it
from that timeline's point of view.  The entry is typed (`custody.model.types`) once,
when it is first needed, and the typed value is kept with the event.

Which entries belong to an item's timeline is decided here too (`named_items`,
`concerns`): by the entry's `item` and `parent` lines, for every entry, known type or
not, so that a timeline never hides an entry this version cannot type.  Which parties an
entry names is `named_parties`, over the typed entry.

An event's `time` is the entry's claimed time (`custody.model.times.claimed_time`): for
a handoff its receiver countersigned with cosignature/v1, the moment of that
countersignature, with the `time` line (the moment of the offer) kept as `offered`.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from custody.errors import FormatError
from custody.model.describe import describe, signed_with_shared_key
from custody.model.entry import Entry, SignedEntry, format_time
from custody.model.times import claimed_time
from custody.model.types import (
    Access,
    Analysis,
    Consent,
    Derive,
    Disposal,
    Handoff,
    Hold,
    Ingest,
    KeyEvent,
    Refusal,
    Reject,
    Request,
    Retention,
    Review,
    Typed,
    parse_typed,
)

__all__ = ["CASE_WIDE", "Event", "Keeping", "concerns", "named_items", "named_parties"]


def named_items(entry: Entry) -> frozenset[str]:
    """The items (BLAKE3) an entry is about: its `item` lines and its `parent`."""
    named = set(entry.get_all("item"))
    parent = entry.get("parent")
    if parent is not None:
        named.add(parent)
    return frozenset(named)


#: Entry types that, naming no item, are about every item of their case: a retention or
#: a legal hold of the whole case, and a request for footage or its refusal (the
#: footage asked for is the case's; which items came under which answer is for the
#: consent's own entry and the ingest naming it to say).
CASE_WIDE = frozenset({"retention", "hold", "request", "refusal"})


def concerns(type_: str, fields: Sequence[tuple[str, str]], item: str) -> bool:
    """Whether an entry of an item's case (its type and fields) is about the item: it
    names the item, derives from it, is a consent of the case that may cover it, or is
    about the whole case (`CASE_WIDE`: a retention or hold naming no item, a request, a
    refusal).  A review, disposal or analysis names its item, and concerns that item."""
    items = [v for k, v in fields if k == "item"]
    if type_ == "consent":
        action = next((v for k, v in fields if k == "action"), None)
        return not items or item in items or action == "revoke"
    if type_ in CASE_WIDE and not items:
        return True
    return item in items or any(k == "parent" and v == item for k, v in fields)


def named_parties(typed: Typed) -> tuple[str, ...]:
    """The parties a (non-key) entry names, besides those who sign it, in field order.

    These are the parties whose keys the custody rules may look up: the one who
    ingests, holds, consents, releases, receives, refuses, accesses or derives; the
    asking party of a request (not the owner it asks, who may have no key on this log),
    the owner of a refusal, the party
    who reviews, sets a retention, places or releases a hold, disposes or analyses.
    A `key` entry names its own party, which is the key timeline's business; a
    `policy` entry is signed by the log key and names no party.
    """
    if isinstance(typed, Ingest):
        return (typed.by,) + ((typed.holder,) if typed.holder else ())
    if isinstance(typed, Consent):
        return (typed.owner,)
    if isinstance(typed, Handoff):
        return (typed.sender, typed.receiver)
    if isinstance(typed, Reject):
        return (typed.sender, typed.receiver, typed.by)
    if isinstance(typed, Access | Derive):
        return (typed.by,)
    if isinstance(typed, Request):
        # Not its `owner`: the owner asked may have no key on this log (they answer
        # from their own home, or never); an answer they sign names them itself.
        return (typed.by,)
    if isinstance(typed, Refusal):
        return (typed.owner,)
    if isinstance(typed, Review | Retention | Hold | Disposal | Analysis):
        return (typed.by,)
    return ()


@dataclass(frozen=True)
class Event:
    """One log entry on a timeline: its index, type, claimed time, signers and fields.

    `time` is the claimed time (`custody.model.times.claimed_time`); `offered` is the
    entry's `time` line when that differs (a handoff countersigned later than it was
    offered), else None.  `what` is the sentence the timeline shows for it
    (`describe()` from the point of view of the timeline's item), or None where the
    caller describes it when showing it (`custody history`).  Equality is by these
    fields; the parsed entry and its typed form are computed once, on first use, and
    kept.
    """

    index: int
    type: str
    time: str
    signers: tuple[str, ...]
    fields: tuple[tuple[str, str], ...]
    what: str | None = None
    offered: str | None = None

    @classmethod
    def of(cls, index: int, signed: SignedEntry, *, what: str | None = None) -> Event:
        """The event of log entry `index`, from the entry as signed (parsed once, kept)."""
        entry = signed.entry
        when = format_time(claimed_time(signed))
        offered = entry.time if when != entry.time else None
        event = cls(index, entry.type, when, signed.signer_names, entry.fields, what, offered)
        # The entry is already parsed: seed the cached property instead of rebuilding it.
        event.__dict__["entry"] = entry
        return event

    @cached_property
    def entry(self) -> Entry:
        """The generic entry (`custody.model.entry.Entry`) of this event (its `time`
        line is `offered` when there is one)."""
        return Entry(self.type, self.offered or self.time, self.fields)

    @cached_property
    def typed(self) -> Typed | None:
        """The typed entry (`custody.model.types`), or None if this version cannot type it
        (an unknown type, or a field missing or malformed: the rules report those)."""
        try:
            return parse_typed(self.entry)
        except FormatError:
            return None

    @property
    def items(self) -> frozenset[str]:
        """The items this entry names (`named_items`)."""
        return named_items(self.entry)

    def concerns(self, item: str) -> bool:
        """Whether this entry belongs on `item`'s timeline (`concerns`)."""
        return concerns(self.type, self.fields, item)

    def describe(
        self,
        *,
        about: str | None = None,
        exhibits: Mapping[str, str] | None = None,
        indexes: Mapping[str, int] | None = None,
    ) -> str:
        """The sentence for this entry (`custody.model.describe.describe`; `indexes` maps
        entry hashes to log indexes); never raises."""
        accepted = self.time if self.offered is not None else None
        return describe(
            self.entry, about=about, exhibits=exhibits, accepted=accepted, indexes=indexes
        )

    def as_json(self) -> dict[str, Any]:
        """The event as `custody history --json` prints it (repeated fields as lists)."""
        fields: dict[str, Any] = {}
        for k, v in self.fields:
            if k in fields:
                existing = fields[k]
                fields[k] = [*existing, v] if isinstance(existing, list) else [existing, v]
            else:
                fields[k] = v
        out: dict[str, Any] = {
            "index": self.index,
            "type": self.type,
            "time": self.time,
            "signed_by": list(self.signers),
            "fields": fields,
        }
        if self.offered is not None:
            out["offered"] = self.offered
        return out

    def verdict_json(self) -> dict[str, Any]:
        """The event as `custody verify-bundle --json` lists it: its sentence, not its fields."""
        out: dict[str, Any] = {
            "index": self.index,
            "type": self.type,
            "time": self.time,
            "signers": list(self.signers),
            "what": self.what if self.what is not None else self.describe(),
        }
        if self.offered is not None:
            out["offered"] = self.offered
        return out


@dataclass(frozen=True)
class Keeping:
    """Where each party's keys were kept, from the `key` entries of a log or a bundle:
    the caveats (`custody.model.describe.signed_with_shared_key`) of a listed entry's
    signatures made with a key its party did not hold alone (docs/spec/entry.md §key)."""

    keys: Mapping[str, tuple[tuple[int, KeyEvent], ...]]

    @classmethod
    def of(cls, entries: Iterable[tuple[int, Entry]]) -> Keeping:
        """From (log index, entry) pairs; entries that are not well-formed key
        registrations or rotations are skipped (the rules report those)."""
        keys: dict[str, list[tuple[int, KeyEvent]]] = {}
        for index, entry in entries:
            if entry.type != "key":
                continue
            try:
                typed = parse_typed(entry)
            except FormatError:
                continue
            if isinstance(typed, KeyEvent) and typed.action in ("register", "rotate"):
                keys.setdefault(typed.party, []).append((index, typed))
        return cls({p: tuple(sorted(v, key=lambda kv: kv[0])) for p, v in keys.items()})

    def key_at(self, party: str, index: int) -> KeyEvent | None:
        """The key entry of `party`'s key in force at log entry `index`, or None."""
        found = None
        for at, key in self.keys.get(party, ()):
            if at <= index:
                found = key
        return found

    def caveats(self, event: Event) -> list[str]:
        """One sentence per signature on `event` made with a key kept shared (or, for a
        consent, acceptance or refusal, whose keeping is not recorded)."""
        out = []
        for signer in event.signers:
            text = signed_with_shared_key(event.entry, signer, self.key_at(signer, event.index))
            if text is not None:
                out.append(text)
        return out
