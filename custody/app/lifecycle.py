"""What happens to evidence after it is taken in: emergency reviews, retention, legal
holds and disposal (docs/lifecycle.md).

The library behind `custody review`, `custody retention set|due`, `custody hold` /
`custody hold release`, `custody dispose`, and the disposal-aware `custody vault
check`.  Every step is a signed entry appended through `append_indexed_one`; the
rules (who may review, place a hold, dispose; a hold blocks a disposal; a disposed
item is named by nothing after) are `custody.model.rules`, applied by the log before
it appends.  What this module reads back (retentions, holds, disposals) it reads
from the entries themselves, so what it reports is what the log says.

A disposal is, in order:

1. the signed `disposal` entry is committed (`dispose.entry-committed`);
2. the object and its sidecars leave the evidence store (`dispose.object-removed`),
   unless another case still holds the same file (same BLAKE3) undisposed: then they
   stay, and the caller is told which exhibits keep them.

A crash between 1 and 2 leaves the object in the store with its disposal on the
log: `custody vault check` lists it as disposed but still stored, and running
`custody dispose ITEM` again removes it and says the item was already disposed of.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from custody.app.evidence import VaultCheck, check_vault, resolve_item
from custody.app.home import Custody
from custody.errors import CustodyError, FormatError, NotFoundError, UsageError
from custody.infra.crash import crash_point
from custody.infra.indexer import append_indexed_one
from custody.infra.store import ItemRow, Store
from custody.infra.vault import Removed, Vault
from custody.model.entry import SignedEntry, sign_entry
from custody.model.oversight import newest_retention
from custody.model.rules import entry_hash
from custody.model.types import (
    REVIEW_OUTCOMES,
    Disposal,
    Hold,
    Ingest,
    Retention,
    Review,
    Typed,
    build,
    parse_typed,
)

PassphraseFn = Callable[[str], str]

__all__ = [
    "Disposed",
    "DisposedObject",
    "DueItem",
    "HoldInForce",
    "Reviewed",
    "StoreCheck",
    "Target",
    "check_store",
    "disposals",
    "dispose",
    "holds_in_force",
    "place_hold",
    "release_hold",
    "resolve_target",
    "retention_due",
    "review",
    "set_retention",
]


def _typed(fields: Callable[[], Any]) -> Any:
    """`build(...)`, its FormatError turned into a UsageError (a bad option: exit 2)."""
    try:
        return fields()
    except FormatError as exc:
        raise UsageError(exc.message, hint=exc.hint) from None


def _required(value: str, option: str, why: str) -> str:
    if not value.strip():
        raise UsageError(f"{option} is required: {why}")
    return value


def _entries_of_type(c: Custody, etype: str) -> list[tuple[int, bytes]]:
    with c.store.session() as s:
        return Store.type_entries(s, etype)


def _case_typed(c: Custody, case: str) -> list[tuple[int, str, Typed]]:
    """(index, entry hash, typed entry) of every entry of `case`, in log order."""
    with c.store.session() as s:
        rows = Store.case_entries(s, case)
    out = []
    for index, data in rows:
        out.append((index, entry_hash(data), parse_typed(SignedEntry.parse(data).entry)))
    return out


# -- targets: a case or an item ---------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a retention or a hold applies to: a whole case (`item` None) or one item."""

    case: str
    item: ItemRow | None = None

    @property
    def label(self) -> str:
        return f"case {self.case}" if self.item is None else self.item.exhibit

    @property
    def blake3(self) -> str | None:
        return None if self.item is None else self.item.blake3


def resolve_target(c: Custody, ref: str, case: str | None = None) -> Target:
    """A case id, or an item as the other commands name it (exhibit `CASE/NNNN`, or a
    BLAKE3 digest prefix; `case` narrows a prefix).

    A name with `/` is an exhibit; a name that is a case on this log is that case;
    anything else is tried as a digest prefix.  Raises NotFoundError naming `ref` when
    it is none of these, UsageError for an ambiguous prefix.
    """
    if "/" not in ref and c.store.case(ref) is not None:
        return Target(ref)
    if "/" in ref or re.fullmatch(r"[0-9a-fA-F]{6,64}", ref):
        row = resolve_item(c, ref, case)
        return Target(row.case_id, row)
    raise NotFoundError(
        f"no case or item {ref!r} on this log",
        hint="give a case id ('custody case list'), an exhibit number CASE/NNNN or a "
        "BLAKE3 digest prefix",
    )


# -- emergency reviews ----------------------------------------------------------------------


@dataclass(frozen=True)
class Reviewed:
    """What `review` did: the review's index, the exhibit and the emergency ingest it
    reviews, the outcome, when the review was due and whether it came after that."""

    index: int
    exhibit: str
    ingest_index: int
    outcome: str
    due: str | None
    late: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "exhibit": self.exhibit,
            "ingest": self.ingest_index,
            "outcome": self.outcome,
            "due": self.due,
            "late": self.late,
        }


def _emergency_ingest(c: Custody, ref: str) -> tuple[int, bytes, Ingest, ItemRow]:
    """The emergency ingest `ref` names: a log index, an entry hash, or the exhibit it
    ingested (`CASE/NNNN`).  Raises NotFoundError or UsageError naming `ref`."""
    if "/" in ref:
        row = resolve_item(c, ref)
        index = row.ingest_idx
    elif ref.isascii() and ref.isdigit():
        if len(ref) > 19 or int(ref) >= 1 << 63:
            raise NotFoundError(f"the log has no entry {ref}")
        index = int(ref)
    else:
        with c.store.session() as s:
            found = Store.index_of(s, ref.lower())
        if found is None:
            raise NotFoundError(
                f"no entry with hash {ref}",
                hint="give the log index of the emergency ingest, its full entry hash, or "
                "the exhibit CASE/NNNN",
            )
        index = found
    data = c.store.entry(index)
    if data is None:
        raise NotFoundError(f"the log has no entry {ref}")
    typed = parse_typed(SignedEntry.parse(data).entry)
    if not isinstance(typed, Ingest):
        raise UsageError(
            f"entry {index} is a {typed.entry.type} entry, not an ingest: only an emergency "
            "disclosure (an ingest with legal basis emergency) is reviewed"
        )
    if typed.legal_basis != "emergency":
        raise UsageError(
            f"{typed.exhibit} (entry {index}) was taken in under legal basis "
            f"{typed.legal_basis or '(none)'}, not emergency: there is nothing to review"
        )
    found_row = c.store.item_in_case(typed.case, typed.item)
    if found_row is None:  # pragma: no cover - every ingest on the log has its item row
        raise NotFoundError(f"no exhibit {typed.exhibit} on this log")
    return index, data, typed, found_row


def review(
    c: Custody,
    ref: str,
    *,
    by: str,
    outcome: str,
    note: str,
    passphrase: PassphraseFn,
    now: datetime,
) -> Reviewed:
    """Record `by`'s review of the emergency disclosure `ref` names (signed `review`).

    `ref`: the emergency ingest's log index or entry hash, or its exhibit.  The rules
    decide the rest (the reviewer is not the disclosing party; one review each); a
    rejection restricts the item: no access, derive or analysis after it, a handoff
    only to a court, disposal allowed.  A review after its due time is accepted and
    said to be late.

    Raises UsageError for a bad outcome, an empty note or an entry that is no
    emergency disclosure; NotFoundError for an unknown entry; PolicyError when the
    rules refuse the review.
    """
    if outcome not in REVIEW_OUTCOMES:
        raise UsageError(f"--outcome {outcome!r} is not one of: {', '.join(REVIEW_OUTCOMES)}")
    _required(note, "--note", "say what the review found")
    index, data, ingest, row = _emergency_ingest(c, ref)
    ehash = entry_hash(data)
    typed = _typed(
        lambda: build(
            Review,
            now,
            case=ingest.case,
            item=ingest.item,
            ingest=ehash,
            by=by,
            outcome=outcome,
            note=note,
        )
    )
    signer = c.signer(by, passphrase)
    done = append_indexed_one(c.log, sign_entry(typed.entry, [signer]))
    due: str | None = None
    with c.log.state() as view:
        state = view.emergency(ehash)
        if state is not None:
            due = state.due
    late = due is not None and typed.entry.time > due
    return Reviewed(done, row.exhibit, index, outcome, due, late)


# -- retention ----------------------------------------------------------------------------


def _date_option(text: str, option: str) -> str:
    try:
        if len(text) == 10:
            date.fromisoformat(text)
            return text
    except ValueError:
        pass
    raise UsageError(f"{option} {text!r} is not a date like 2026-12-31")


def set_retention(
    c: Custody,
    ref: str,
    *,
    until: str,
    basis: str,
    by: str,
    case: str | None = None,
    passphrase: PassphraseFn,
    now: datetime,
) -> tuple[int, Target]:
    """Record how long a case or an item may be kept (signed `retention` entry).

    An item's own newest retention applies to it, else its case's newest (so a later
    entry can extend or shorten either).  Returns the entry's index and the target.
    Raises UsageError for a bad date or an empty basis, NotFoundError for an unknown
    target, PolicyError when the rules refuse it (the role of `by`, a disposed item).
    """
    _date_option(until, "--until")
    _required(basis, "--basis", "say on what basis (a law, a policy, a court order) it is kept")
    target = resolve_target(c, ref, case)
    typed = _typed(
        lambda: build(
            Retention, now, case=target.case, item=target.blake3, until=until, basis=basis, by=by
        )
    )
    signer = c.signer(by, passphrase)
    return append_indexed_one(c.log, sign_entry(typed.entry, [signer])), target


@dataclass(frozen=True)
class HoldInForce:
    """A legal hold placed and not released."""

    index: int
    hash: str
    case: str
    item: str | None  # None: the whole case
    by: str
    reason: str
    time: str

    def covers(self, case: str, item: str) -> bool:
        return self.case == case and (self.item is None or self.item == item)

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "hash": self.hash,
            "case": self.case,
            "item": self.item,
            "by": self.by,
            "reason": self.reason,
            "time": self.time,
        }


def _holds(entries: Iterable[tuple[int, str, Typed]]) -> list[HoldInForce]:
    placed: dict[str, HoldInForce] = {}
    for index, ehash, typed in entries:
        if not isinstance(typed, Hold):
            continue
        if typed.action == "place":
            placed[ehash] = HoldInForce(
                index, ehash, typed.case, typed.item, typed.by, typed.reason, typed.time
            )
        elif typed.hold is not None:
            placed.pop(typed.hold, None)
    return sorted(placed.values(), key=lambda h: h.index)


def holds_in_force(c: Custody, case: str) -> list[HoldInForce]:
    """The holds on `case` or its items that are not released, oldest first."""
    return _holds(_case_typed(c, case))


@dataclass(frozen=True)
class DueItem:
    """An item past its retention date and not disposed of (`custody retention due`)."""

    case: str
    exhibit: str
    item: str
    name: str
    until: str
    basis: str
    by: str
    index: int  # the retention entry that applies
    scope: str  # "item" (its own retention) or "case" (its case's)
    days_over: int
    holds: tuple[HoldInForce, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "exhibit": self.exhibit,
            "item": self.item,
            "name": self.name,
            "until": self.until,
            "basis": self.basis,
            "by": self.by,
            "retention_entry": self.index,
            "scope": self.scope,
            "days_over": self.days_over,
            "holds": [h.as_json() for h in self.holds],
        }


def retention_due(c: Custody, *, today: date, case: str | None = None) -> list[DueItem]:
    """The items whose retention date is before `today` and that are not disposed of:
    the item's own newest retention applies, else its case's newest.  Each says the
    holds in force on it (a held item may not be disposed of until they are released).

    Raises NotFoundError for an unknown `case`.
    """
    if case is not None and c.store.case(case) is None:
        raise NotFoundError(f"no case {case!r}", hint="list cases with 'custody case list'")
    cases = [case] if case is not None else [row.case_id for row in c.store.cases()]
    out: list[DueItem] = []
    for case_id in cases:
        typed = _case_typed(c, case_id)
        retentions = [(index, t) for index, _hash, t in typed if isinstance(t, Retention)]
        disposed = {t.item for _index, _hash, t in typed if isinstance(t, Disposal)}
        holds = _holds(typed)
        for row in c.store.items_in_case(case_id):
            if row.blake3 in disposed:
                continue
            found = newest_retention(retentions, row.blake3)
            if found is None:
                continue
            index, ret = found
            scope = "case" if ret.item is None else "item"
            if ret.until_date >= today:
                continue
            out.append(
                DueItem(
                    case=case_id,
                    exhibit=row.exhibit,
                    item=row.blake3,
                    name=row.name,
                    until=ret.until,
                    basis=ret.basis,
                    by=ret.by,
                    index=index,
                    scope=scope,
                    days_over=(today - ret.until_date).days,
                    holds=tuple(h for h in holds if h.covers(case_id, row.blake3)),
                )
            )
    return out


# -- legal holds ------------------------------------------------------------------------------


def place_hold(
    c: Custody,
    ref: str,
    *,
    reason: str,
    by: str,
    case: str | None = None,
    passphrase: PassphraseFn,
    now: datetime,
) -> tuple[int, Target]:
    """Place a legal hold on a case or an item (signed `hold` entry, action place): no
    item it covers may be disposed of until it is released.

    Raises UsageError for an empty reason, NotFoundError for an unknown target,
    PolicyError when the rules refuse it (the role of `by`, a disposed item).
    """
    _required(reason, "--reason", "say why the evidence must be kept (a case, an order)")
    target = resolve_target(c, ref, case)
    typed = _typed(
        lambda: build(
            Hold, now, case=target.case, item=target.blake3, action="place", reason=reason, by=by
        )
    )
    signer = c.signer(by, passphrase)
    return append_indexed_one(c.log, sign_entry(typed.entry, [signer])), target


def _pick_hold(c: Custody, target: Target, hold_ref: str | None) -> HoldInForce:
    held = [h for h in holds_in_force(c, target.case) if h.item == target.blake3]
    if hold_ref is not None:
        ref = hold_ref.lower()
        # A log index when it is all digits (as everywhere else, `custody.app.events`
        # `_find_entry`), else an entry-hash prefix: "7" must not also match the hold
        # whose hash happens to start with a 7.
        if ref.isascii() and ref.isdigit():
            chosen = [h for h in held if str(h.index) == ref]
        else:
            chosen = [h for h in held if h.hash.startswith(ref)]
        if len(chosen) != 1:
            listed = ", ".join(f"entry {h.index}" for h in held) or "none"
            raise NotFoundError(
                f"--hold {hold_ref} is not a hold in force on {target.label} "
                f"(holds in force on it: {listed})"
            )
        return chosen[0]
    if not held:
        in_case = holds_in_force(c, target.case)
        items = [h for h in in_case if h.item is not None]
        whole = [h for h in in_case if h.item is None]
        if target.item is None and items:
            hint = "a hold on an item is released by naming the item; holds on items of this " + (
                "case: " + ", ".join(f"entry {h.index}" for h in items)
            )
        elif target.item is not None and whole:
            hint = (
                f"the hold is on the whole case (entry {whole[0].index}): release it with "
                f"'custody hold release {target.case}'"
            )
        else:
            hint = "list the holds with 'custody history ITEM' or 'custody audit --case CASE'"
        raise NotFoundError(f"there is no hold in force on {target.label}", hint=hint)
    if len(held) > 1:
        listed = ", ".join(f"entry {h.index} by {h.by}" for h in held)
        raise UsageError(
            f"{target.label} has {len(held)} holds in force ({listed})",
            hint="say which one to release with --hold ENTRY (its log index)",
        )
    return held[0]


def release_hold(
    c: Custody,
    ref: str,
    *,
    reason: str,
    by: str,
    hold: str | None = None,
    case: str | None = None,
    passphrase: PassphraseFn,
    now: datetime,
) -> tuple[int, Target, HoldInForce]:
    """Release the hold in force on a case or an item (signed `hold` entry, action
    release, naming the hold placed).  `hold` picks one (log index or entry hash
    prefix) where the target has several.  The rules allow the party who placed it or
    a court.

    Raises UsageError for an empty reason or several holds and no `hold`,
    NotFoundError when no hold is in force on the target, PolicyError when the rules
    refuse it.
    """
    _required(reason, "--reason", "say why the hold ends")
    target = resolve_target(c, ref, case)
    chosen = _pick_hold(c, target, hold)
    typed = _typed(
        lambda: build(
            Hold,
            now,
            case=target.case,
            item=target.blake3,
            action="release",
            hold=chosen.hash,
            reason=reason,
            by=by,
        )
    )
    signer = c.signer(by, passphrase)
    return append_indexed_one(c.log, sign_entry(typed.entry, [signer])), target, chosen


# -- disposal -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DisposedObject:
    """A disposal on the log: which exhibit, by whom, when, at which entry, and why."""

    case: str
    item: str
    index: int
    by: str
    time: str
    reason: str

    def says(self) -> str:
        return f"disposed by {self.by} at {self.time} (entry {self.index})"


def disposals(c: Custody) -> dict[tuple[str, str], DisposedObject]:
    """Every disposal on the log, by (case, item)."""
    out: dict[tuple[str, str], DisposedObject] = {}
    for index, data in _entries_of_type(c, "disposal"):
        t = parse_typed(SignedEntry.parse(data).entry)
        if isinstance(t, Disposal):
            out.setdefault(
                (t.case, t.item), DisposedObject(t.case, t.item, index, t.by, t.time, t.reason)
            )
    return out


@dataclass(frozen=True)
class Disposed:
    """What `dispose` did.

    `index` is the disposal entry (this run's, or the earlier one when `already`);
    `removed` what left the evidence store in this run; `kept_for` the exhibits of
    other cases that still hold the same file, which is then kept.
    """

    exhibit: str
    item: str
    index: int
    already: bool
    removed: Removed | None
    kept_for: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "exhibit": self.exhibit,
            "item": self.item,
            "index": self.index,
            "already": self.already,
            "object_removed": self.removed is not None and self.removed.object,
            "sidecars_removed": 0 if self.removed is None else self.removed.sidecars,
            "kept_for": list(self.kept_for),
        }


def dispose(
    c: Custody,
    ref: str,
    *,
    by: str,
    reason: str,
    case: str | None = None,
    passphrase: PassphraseFn,
    now: datetime,
) -> Disposed:
    """Dispose of an item: the signed `disposal` entry, then its object and sidecars
    leave the evidence store, unless an exhibit of another case, not disposed of,
    still holds the same file (module docstring).

    An item already disposed of (a re-run after a crash) gets no second entry: the
    removal is finished, and `already` says so.  Raises UsageError for an empty
    reason, NotFoundError for an unknown item, PolicyError when the rules refuse
    (not the holder; a hold in force on it or its case), StorageError when the store
    cannot be written.
    """
    row = resolve_item(c, ref, case)
    done = disposals(c)
    prior = done.get((row.case_id, row.blake3))
    if prior is None:
        _required(reason, "--reason", "say why the item is disposed of (retention ended, ...)")
        typed = _typed(
            lambda: build(Disposal, now, case=row.case_id, item=row.blake3, by=by, reason=reason),
        )
        signer = c.signer(by, passphrase)
        index = append_indexed_one(c.log, sign_entry(typed.entry, [signer]))
        crash_point("dispose.entry-committed")
        done = disposals(c)
    else:
        index = prior.index
    kept_for = tuple(
        other.exhibit
        for other in c.store.items_by_digest(row.blake3)
        if other.case_id != row.case_id and (other.case_id, other.blake3) not in done
    )
    removed = None
    if not kept_for:
        removed = Vault(c.vault_root).remove(row.blake3)
        crash_point("dispose.object-removed")
    return Disposed(row.exhibit, row.blake3, index, prior is not None, removed, kept_for)


# -- the evidence store, disposal-aware --------------------------------------------------------


@dataclass(frozen=True)
class StoreCheck:
    """`check_vault`'s findings, with disposals taken into account.

    An exhibit whose object is gone because it was disposed of is `disposed`, not
    missing; an object whose every exhibit was disposed of but which is still in the
    store (a crash before its removal) is `still_stored`, a problem that `custody
    dispose ITEM` again resolves.
    """

    check: VaultCheck
    disposed: tuple[tuple[str, DisposedObject], ...] = ()  # (exhibit, its disposal)
    still_stored: tuple[tuple[str, DisposedObject], ...] = ()

    @property
    def ok(self) -> bool:
        return self.check.ok and not self.still_stored

    def as_json(self) -> dict[str, Any]:
        out = self.check.as_json()
        out["ok"] = self.ok
        out["disposed"] = [_disposed_json(e, d) for e, d in self.disposed]
        out["disposed_still_stored"] = [_disposed_json(e, d) for e, d in self.still_stored]
        return out


def _disposed_json(exhibit: str, d: DisposedObject) -> dict[str, Any]:
    return {
        "exhibit": exhibit,
        "item": d.item,
        "entry": d.index,
        "by": d.by,
        "time": d.time,
        "reason": d.reason,
    }


def check_store(c: Custody, *, repair: bool = False, rehash: bool = True) -> StoreCheck:
    """`custody vault check`: `custody.app.evidence.check_vault`, then each exhibit whose
    object is missing and that was disposed of is reported as disposed (by whom, when,
    at which entry), never as missing evidence; a missing object without a disposal
    stays a problem.  Raises what `check_vault` raises."""
    found = check_vault(c, repair=repair, rehash=rehash)
    done = disposals(c)
    if not done:
        return StoreCheck(found)
    exhibits = {(i.case_id, i.blake3): i.exhibit for i in c.store.all_items()}
    gone = [m for m in found.missing if (_case_of(m.exhibit), m.blake3) in done]
    missing = tuple(m for m in found.missing if m not in gone)
    disposed = tuple((m.exhibit, done[(_case_of(m.exhibit), m.blake3)]) for m in gone)
    by_digest: dict[str, list[tuple[str, str]]] = {}
    for (case, b3), exhibit in exhibits.items():
        by_digest.setdefault(b3, []).append((case, exhibit))
    vault = Vault(c.vault_root)
    still = []
    for (case, b3), d in sorted(done.items(), key=lambda kv: kv[1].index):
        holders = by_digest.get(b3, [])
        if all((k, b3) in done for k, _ in holders) and _stored(vault, b3):
            still.append((exhibits.get((case, b3), f"{case}/?"), d))
    return StoreCheck(replace(found, missing=missing), disposed, tuple(still))


def _case_of(exhibit: str) -> str:
    return exhibit.rsplit("/", 1)[0]


def _stored(vault: Vault, blake3: str) -> bool:
    try:
        return vault.has(blake3)
    except CustodyError:
        return False
