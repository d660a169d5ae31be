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
* issue 12 (docs/spec/entry.md rules 6-14): a `request` by a non-owner; its
  answers (a consent `grant` naming it, a `refusal`), once per owner; an `ingest`
  under a consent that answers a request only within the request's window and
  area, and an emergency ingest only with a justification (its review due by the
  policy in force); a `review` by another party, once, a rejection restricting the
  item; `retention` and `hold` by an agency, lab or court; a `disposal` by the
  holder and under no hold, after which nothing names the item; an `analysis` by
  the holder as the policy allows; a `policy` signed by the log key alone
  (`StateView.log_key`), naming no case;
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
from datetime import datetime, timedelta
from typing import Protocol

from custody.errors import CustodyError
from custody.model.entry import Entry, SignedEntry, format_time, parse_time
from custody.model.parties import (
    EntryError,
    Parties,
    check_policy_signature,
    check_signatures,
    key_changes,
)
from custody.model.state import (
    AnswerRequest,
    Change,
    Consent,
    Dispose,
    EmergencyState,
    HoldState,
    ItemState,
    KeyRegistered,
    MemoryState,
    PartyKey,
    PolicyState,
    PutConsent,
    PutEmergency,
    PutHold,
    PutItem,
    PutRequest,
    ReleaseHold,
    RequestState,
    ReviewEmergency,
    RevokeConsent,
    SetHolder,
    SetPolicy,
    SettleOffer,
    StateView,
    key_at,
)
from custody.model.times import TIME_TOLERANCE, Stamp, claimed_time_of, span
from custody.model.types import (
    DEFAULT_REVIEW_HOURS,
    ONWARD,
    REGISTRY,
    Access,
    Analysis,
    Derive,
    DeriveRequest,
    Disposal,
    Handoff,
    Hold,
    Ingest,
    KeyEvent,
    Policy,
    Refusal,
    Reject,
    Request,
    Retention,
    Review,
    Typed,
    distance_m,
    parse_area,
    parse_location,
    parse_typed,
)
from custody.model.types import Consent as ConsentEntry
from custody.tlog.note import VerifierKey

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
            return _ingest(index, typed, signed.data, names, view)
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
        return _oversight(index, typed, signed.data, names, view)
    except EntryError:
        raise
    except CustodyError as exc:  # e.g. a key that does not parse
        raise RuleError(index, exc.message) from exc


def _oversight(
    index: int, typed: Typed, data: bytes, names: Sequence[str], view: StateView
) -> list[Change]:
    """The rules of the request, emergency, retention, analysis and policy entries."""
    if isinstance(typed, Request):
        return _request(index, typed, data, names, view)
    if isinstance(typed, Refusal):
        return _refusal(index, typed, names, view)
    if isinstance(typed, Review):
        return _review(index, typed, names, view)
    if isinstance(typed, Retention):
        _record_keeper(index, typed.by, names, view, "the party setting the retention")
        if typed.item is not None:
            _live(index, view, typed.case, typed.item, "have a retention period")
        return []
    if isinstance(typed, Hold):
        return _hold(index, typed, data, names, view)
    if isinstance(typed, Disposal):
        return _disposal(index, typed, names, view)
    if isinstance(typed, Analysis):
        _analysis(index, typed, names, view)
        return []
    if isinstance(typed, Policy):
        return _policy(index, typed, names, view)
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
    if entry.type == "policy":
        # Log-wide, signed by the log key alone (rule 9): no party, no case.
        log_key = view.log_key()
        if log_key is None:
            raise RuleError(index, _NO_LOG_KEY, hint=_NO_LOG_KEY_HINT)
        check_policy_signature(index, signed, log_key)
        typed = typed_of(index, entry)
        return Admitted(signed, typed, evaluate(index, signed, view, typed))
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


def _ingest(
    index: int, e: Ingest, data: bytes, names: Sequence[str], view: StateView
) -> list[Change]:
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
    changes: list[Change] = [
        PutItem(ItemState(e.case, e.item, e.exhibit, e.by, e.legal_basis, e.ref, index))
    ]
    if e.consent is not None:
        _ingest_consent(index, e, e.consent, view)
    if e.legal_basis == "emergency":
        if e.justification is None:
            raise RuleError(
                index,
                f"clip '{e.name}' is ingested with legal-basis emergency but the entry has no "
                "'justification' field",
                hint="say why it could not wait for consent or a warrant (--justification TEXT)",
            )
        policy = view.policy()
        hours = policy.review_hours if policy is not None else DEFAULT_REVIEW_HOURS
        due = format_time(e.claimed_time + timedelta(hours=hours))
        changes.append(
            PutEmergency(EmergencyState(entry_hash(data), index, e.case, e.item, e.by, e.time, due))
        )
    return changes


def _ingest_consent(index: int, e: Ingest, hash: str, view: StateView) -> None:
    """Rule 8: an ingest naming the consent it is taken under (and, through it, the request
    that consent answers: the clip's recorded time and place must lie in its scope)."""
    clip = f"clip '{e.name}'"
    if e.legal_basis != "consent":
        raise RuleError(
            index,
            f"{clip} names consent {hash[:12]} (field 'consent') but its legal-basis is "
            f"{e.legal_basis or 'not given'}, not consent",
            hint="ingest it with --legal-basis consent, or leave out --consent",
        )
    c = view.consent(hash)
    if c is None:
        raise RuleError(
            index,
            f"{clip} names consent {hash[:12]} (field 'consent'), which is not a consent grant "
            "on this log",
            hint="import the owner's consent first (custody log import ANSWER), and give its "
            "log index to --consent",
        )
    why = None
    if c.case != e.case:
        why = f"{c.label()} is for case {c.case}, not {e.case}"
    elif c.revoked_at is not None and c.revoked_at < index:
        why = f"{c.label()} was revoked at entry {c.revoked_at}"
    elif c.until is not None and e.claimed_time.date() > c.until:
        why = f"{c.label()} expired on {c.until.isoformat()}"
    elif c.items and e.item not in c.items:
        why = f"{c.label()} lists items and this clip (item {e.item[:16]}…) is not one of them"
    if why is not None:
        raise RuleError(
            index,
            f"{clip} cannot be taken in under the consent it names: {why}",
            hint="ask the owner for a consent that covers it, or ingest it under another legal "
            "basis (a warrant)",
        )
    if c.request is None:
        return
    req = view.request(c.request)
    if req is None:  # pragma: no cover - a grant naming a request is admitted only with it
        raise RuleError(index, f"{c.label()} answers a request that is not on this log")
    hint = (
        "this consent covers only what the request asked for: ingest the clip under another "
        "legal basis (a warrant), or ask the owner for a consent that covers it"
    )
    recorded = e.recorded_time
    if recorded is not None and not (parse_time(req.start) <= recorded <= parse_time(req.end)):
        raise RuleError(
            index,
            f"{clip} was recorded at {e.recorded} (field 'recorded'), outside the window "
            f"{req.start} to {req.end} of {req.label()}, which {c.label()} answers",
            hint=hint,
        )
    if e.location is not None and req.area is not None:
        area = parse_area(req.area)
        lat, lon = parse_location(e.location)
        if not area.contains(lat, lon):
            raise RuleError(
                index,
                f"{clip} was recorded at {e.location} (field 'location'), "
                f"{distance_m(area.lat, area.lon, lat, lon):.0f} m from the centre of the area "
                f"{req.area} (radius {area.radius_m:g} m) of {req.label()}, which "
                f"{c.label()} answers",
                hint=hint,
            )


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
            h,
            index,
            e.owner,
            e.case,
            frozenset(e.items),
            e.purpose,
            e.until_date,
            e.onward,
            request=e.request,
        )
        if e.request is None:
            return [PutConsent(grant)]
        req = _answerable(index, e.request, e.case, e.owner, view)
        return [PutConsent(grant), AnswerRequest(req.hash, index, e.owner, "consent")]
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
        if state.restricted_at is not None and (receiving is None or receiving.role != "court"):
            raise RuleError(
                index,
                f"{state.exhibit} may be handed off only to a court: its emergency disclosure "
                f"was rejected on review at entry {state.restricted_at}",
                hint=_RESTRICTED_HINT,
            )
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

    Only the holder accesses, never a disposed item or one whose emergency disclosure
    was rejected (rule 10), and consent-based footage only within a consent (rule 3).
    (Split out so that `log verify` can hand over access entries, the bulk of a
    busy log, as a few strings instead of whole parsed entries.)  Raises RuleError.
    """
    state = _held(index, view, case, item, by, "access")
    _unrestricted(index, state, "accessed")
    _check_consent(index, view, state, time, None, None)


def _derive(
    index: int, e: Derive | DeriveRequest, names: Sequence[str], view: StateView
) -> list[Change]:
    _signed_by(index, names, e.by, "the party deriving the copy")
    state = _held(index, view, e.case, e.parent, e.by, "derive from")
    _unrestricted(index, state, "derived from")
    _check_consent(index, view, state, e.time, None, None)
    if view.item(e.case, e.item) is not None:
        raise RuleError(index, f"derived item {e.item[:16]}… is already in case {e.case}")
    child = ItemState(
        e.case, e.item, e.exhibit, e.by, state.legal_basis, state.ref, index, parent=e.parent
    )
    return [PutItem(child)]


def _request(
    index: int, e: Request, data: bytes, names: Sequence[str], view: StateView
) -> list[Change]:
    """Rule 6: a request is signed by the asking party, who is not an owner."""
    _signed_by(index, names, e.by, "the asking party")
    key = key_at(view.party_keys(e.by), index)
    if key is not None and key.role == "owner":
        raise RuleError(
            index,
            f"request is made by '{e.by}', an owner party: owners answer requests, they do "
            "not make them",
            hint="make the request as the agency asking for the footage (--by AGENCY)",
        )
    h = entry_hash(data)
    existing = view.request(h)
    if existing is not None:
        raise RuleError(index, f"{existing.label()} is on this log already")
    state = RequestState(h, index, e.case, e.by, e.owner, e.start, e.end, e.area, e.answer_by_date)
    return [PutRequest(state)]


def _answerable(index: int, hash: str, case: str, owner: str, view: StateView) -> RequestState:
    """Rule 7: the request an owner's answer (a consent grant or a refusal) names."""
    req = view.request(hash)
    if req is None:
        raise RuleError(
            index,
            f"answers request {hash[:12]} (field 'request'), which is not on this log",
            hint="append the request entry first: the answer must follow the request it answers",
        )
    if req.case != case:
        raise RuleError(
            index,
            f"answers {req.label()}, which is for case {req.case}, not {case} (field 'case')",
            hint="answer the request with the case it names",
        )
    if req.owner is not None and req.owner != owner:
        raise RuleError(
            index,
            f"answers {req.label()}, which asks '{req.owner}', not '{owner}'",
            hint="only the owner a request is addressed to may answer it",
        )
    for at, who, outcome in req.answers:
        if who == owner:
            raise RuleError(
                index,
                f"'{owner}' answered {req.label()} already at entry {at} ({outcome})",
                hint="an owner answers a request once; a consent can be revoked with "
                "'custody consent revoke'",
            )
    return req


def _refusal(index: int, e: Refusal, names: Sequence[str], view: StateView) -> list[Change]:
    """Rule 7: an owner declines a request."""
    _signed_by(index, names, e.owner, "the owner")
    key = key_at(view.party_keys(e.owner), index)
    if key is None or key.role != "owner":
        raise RuleError(index, f"refusal is given by '{e.owner}', who is not an owner party")
    req = _answerable(index, e.request, e.case, e.owner, view)
    return [AnswerRequest(req.hash, index, e.owner, "refusal")]


def _review(index: int, e: Review, names: Sequence[str], view: StateView) -> list[Change]:
    """Rule 9: another party reviews an emergency disclosure, once."""
    _signed_by(index, names, e.by, "the reviewing party")
    em = view.emergency(e.ingest)
    if em is None:
        raise RuleError(
            index,
            f"reviews ingest {e.ingest[:12]} (field 'ingest'), which is not an emergency "
            "disclosure on this log",
            hint="review the ingest entry of an item taken in with legal-basis emergency",
        )
    if em.case != e.case or em.item != e.item:
        raise RuleError(
            index,
            f"{em.label()} is of item {em.item[:16]}… in case {em.case}, not item "
            f"{e.item[:16]}… in case {e.case} (fields 'case', 'item')",
        )
    if e.by == em.by:
        raise RuleError(
            index,
            f"'{e.by}' made {em.label()} and may not review it",
            hint="a review is made by another party (a supervisor, a court)",
        )
    if em.reviewed_at is not None:
        raise RuleError(
            index,
            f"{em.label()} was reviewed already at entry {em.reviewed_at} ({em.outcome})",
        )
    return [ReviewEmergency(em.hash, index, e.outcome, e.by, e.time)]


_KEEPERS = ("agency", "lab", "court")


def _record_keeper(index: int, by: str, names: Sequence[str], view: StateView, what: str) -> None:
    """Rule 11: retention and holds are set by an agency, a lab or a court."""
    _signed_by(index, names, by, what)
    key = key_at(view.party_keys(by), index)
    if key is None or key.role not in _KEEPERS:
        role = "unknown" if key is None else key.role
        raise RuleError(
            index,
            f"'{by}' has role {role}: only an agency, a lab or a court sets retention and holds",
            hint="sign it as the agency, lab or court keeping the evidence (--by PARTY)",
        )


def _hold(index: int, e: Hold, data: bytes, names: Sequence[str], view: StateView) -> list[Change]:
    """Rule 11: a hold is placed by an agency, a lab or a court; released by the party that
    placed it or a court."""
    if e.action == "place":
        _record_keeper(index, e.by, names, view, "the party placing the hold")
        if e.item is not None:
            _live(index, view, e.case, e.item, "be put under hold")
        h = entry_hash(data)
        if view.hold(h) is not None:
            raise RuleError(index, f"hold {h[:12]} is on this log already")
        return [PutHold(HoldState(h, index, e.case, e.item, e.by))]
    _signed_by(index, names, e.by, "the party releasing the hold")
    assert e.hold is not None  # Hold.check
    held = view.hold(e.hold)
    if held is None:
        raise RuleError(
            index,
            f"releases hold {e.hold[:12]} (field 'hold'), which is not on this log",
            hint="name the entry hash of the hold entry that placed it",
        )
    if held.case != e.case:
        raise RuleError(index, f"{held.label()} is on case {held.case}, not {e.case}")
    if held.released_at is not None:
        raise RuleError(index, f"{held.label()} was released already at entry {held.released_at}")
    key = key_at(view.party_keys(e.by), index)
    if e.by != held.by and (key is None or key.role != "court"):
        raise RuleError(
            index,
            f"{held.label()} was placed by '{held.by}': only that party or a court may release it",
            hint=f"release it as '{held.by}', or ask a court to",
        )
    return [ReleaseHold(held.hash, index)]


def _disposal(index: int, e: Disposal, names: Sequence[str], view: StateView) -> list[Change]:
    """Rule 12: the holder disposes of an item no hold covers."""
    _signed_by(index, names, e.by, "the disposing party")
    state = _held(index, view, e.case, e.item, e.by, "dispose of")
    for h in sorted(view.holds_covering(e.case, e.item), key=lambda h: h.index):
        if h.released_at is None and h.index < index:
            on = "its case" if h.item is None else "it"
            raise RuleError(
                index,
                f"{state.exhibit} is under hold {h.hash[:12]} (entry {h.index}) on {on}, placed "
                f"by {h.by}: release it first",
                hint="custody hold release, by the party that placed the hold or a court",
            )
    return [Dispose(e.case, e.item, index)]


def _analysis(index: int, e: Analysis, names: Sequence[str], view: StateView) -> None:
    """Rule 13: the holder records an analysis the log's policy allows."""
    _signed_by(index, names, e.by, "the party analysing the footage")
    state = _held(index, view, e.case, e.item, e.by, "analyse")
    _unrestricted(index, state, "analysed")
    policy = view.policy()
    if policy is not None and e.kind in policy.forbid:
        raise RuleError(
            index,
            f"the log's policy (entry {policy.index}) forbids {e.kind} analysis: "
            f"{state.exhibit} may not be analysed so",
            hint="the policy is the log operator's (custody policy show)",
        )
    if (
        policy is not None
        and e.kind in policy.warrant_required
        and e.warrant is None
        and state.legal_basis != "warrant"
    ):
        raise RuleError(
            index,
            f"the log's policy (entry {policy.index}) requires a warrant for {e.kind} analysis, "
            f"and {state.exhibit} was not taken in under a warrant (field 'warrant' not given)",
            hint="give the warrant it is done under (--warrant REF)",
        )
    _check_consent(index, view, state, e.time, None, None)


def _policy(index: int, e: Policy, names: Sequence[str], view: StateView) -> list[Change]:
    """Rule 14: a policy is signed by the log key and only by it."""
    log_key: VerifierKey | None = view.log_key()
    if log_key is None:
        raise RuleError(index, _NO_LOG_KEY, hint=_NO_LOG_KEY_HINT)
    others = sorted(set(names) - {log_key.name})
    if others or not names:
        raise RuleError(
            index,
            f"a policy entry is signed by the log key of {log_key.name} alone, not by "
            + (", ".join(f"'{n}'" for n in others) or "nobody"),
            hint="set the policy with 'custody policy set' in the home holding the log key",
        )
    state = PolicyState(index, frozenset(e.forbid), frozenset(e.warrant_required), e.review_hours)
    return [SetPolicy(state)]


# -- shared checks -------------------------------------------------------------------------------


_PAST = {
    "hand off": "handed off",
    "access": "accessed",
    "derive from": "derived from",
    "dispose of": "disposed of again",
    "analyse": "analysed",
}


def _signed_by(index: int, names: Sequence[str], party: str, role: str) -> None:
    if party not in names:
        raise RuleError(index, f"is not signed by {role} '{party}'")


def _live(index: int, view: StateView, case: str, item: str, verb: str) -> ItemState:
    """The item's state: it is in the case and not disposed of (rule 10)."""
    state = view.item(case, item)
    if state is None:
        raise RuleError(index, f"item {item[:16]}… is not on this log in case {case}")
    if state.disposed_at is not None:
        raise RuleError(
            index,
            f"{state.exhibit} was disposed of at entry {state.disposed_at}: it can no longer "
            f"{verb}",
            hint="a disposed item's record stays on the log, but nothing more can be done with it",
        )
    return state


def _unrestricted(index: int, state: ItemState, verb: str) -> None:
    """Refuse an item whose emergency disclosure was rejected on review (rule 10)."""
    if state.restricted_at is not None:
        raise RuleError(
            index,
            f"{state.exhibit} may not be {verb}: its emergency disclosure was rejected on "
            f"review at entry {state.restricted_at}",
            hint=_RESTRICTED_HINT,
        )


_RESTRICTED_HINT = (
    "after a rejected emergency disclosure only its disposal (custody dispose) or a handoff "
    "to a court is allowed"
)
_NO_LOG_KEY = "is a policy entry, and the log key that must sign it is not known here"
_NO_LOG_KEY_HINT = (
    "a policy entry is checked on its own log or in a bundle of that log, where the log "
    "key is known"
)


def _held(index: int, view: StateView, case: str, item: str, party: str, verb: str) -> ItemState:
    state = _live(index, view, case, item, "be " + _PAST.get(verb, verb))
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

    def request(self, hash: str) -> RequestState | None:
        return self.state.request(hash)

    def emergency(self, hash: str) -> EmergencyState | None:
        return self.state.emergency(hash)

    def hold(self, hash: str) -> HoldState | None:
        return self.state.hold(hash)

    def holds_covering(self, case: str, item: str) -> Sequence[HoldState]:
        return self.state.holds_covering(case, item)

    def policy(self) -> PolicyState | None:
        return self.state.policy()

    def log_key(self) -> VerifierKey | None:
        return self.state.log_key()


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
