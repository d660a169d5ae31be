"""The custody state kept in the database, beside the log (docs/spec/entry.md rules).

`DbState` is the `custody.model.state.StateView` an append reads: a few indexed
rows (the item's holder, the consents covering it, an offer, a party's keys)
instead of a replay of the case, so an append costs the same however large the
case or the log.  Changes returned by the rule engine are written to the state
tables in the append's own transaction, so the state and the log commit together
or not at all.  A per-transaction cache keeps a batch of appends from reading the
same rows again.

The tables are insert-only (schema 2, docs/database.md): a handoff adds a
`state_holders` row, a revocation a `state_consent_revocations` row, the end of a
key a `state_key_ends` row, and the reads return the newest value.  An append
therefore needs only SELECT and INSERT on the database.

`log verify` never trusts these tables: it replays the entries and compares
(`compare`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from custody.errors import VerificationError
from custody.infra.store import (
    Session,
    StateConsentItemRow,
    StateConsentRow,
    StateItemRow,
    StateKeyEndRow,
    StateKeyRow,
    StateOfferRow,
    StateRevocationRow,
    Store,
)

# Rows come from prepared statements (attributes named as the tables' columns).
from custody.model.state import (
    Change,
    Consent,
    ItemState,
    KeyEnded,
    KeyRegistered,
    MemoryState,
    PartyKey,
    PutConsent,
    PutItem,
    RevokeConsent,
    SetHolder,
    SettleOffer,
)
from custody.tlog.note import VerifierKey


class DbState:
    """The custody state of the log in the database, read and written in session `s`.

    Only valid inside one transaction (the cache is not shared with other writers,
    whose appends the transaction's write lock keeps out).
    """

    def __init__(self, s: Session) -> None:
        self.s = s
        self._items: dict[tuple[str, str], ItemState | None] = {}
        self._holder_seq: dict[tuple[str, str], int] = {}  # the newest handoff's seq
        self._covering: dict[tuple[str, str], list[Consent]] = {}
        self._consents: dict[str, Consent | None] = {}
        self._offers: dict[str, bool] = {}
        self._keys: dict[str, list[PartyKey]] = {}

    # -- StateView ----------------------------------------------------------------------

    def item(self, case: str, item: str) -> ItemState | None:
        key = (case, item)
        if key not in self._items:
            row = Store.state_item(self.s, case, item)
            self._items[key] = None if row is None else _item(row)
            if row is not None:
                self._holder_seq[key] = int(row.holder_seq)
        return self._items[key]

    def consents_covering(self, case: str, item: str) -> Sequence[Consent]:
        key = (case, item)
        if key not in self._covering:
            found = []
            for row in Store.state_consents_covering(self.s, case, item):
                consent = self._consents.get(row.hash)
                if consent is None:
                    consent = self._consents[row.hash] = _consent(row)
                found.append(consent)
            self._covering[key] = found
        return self._covering[key]

    def consent(self, hash: str) -> Consent | None:
        if hash not in self._consents:
            row = Store.state_consent(self.s, hash)
            self._consents[hash] = None if row is None else _consent(row)
        return self._consents[hash]

    def offer_settled(self, offer: str) -> bool:
        if offer not in self._offers:
            self._offers[offer] = Store.state_offer(self.s, offer)
        return self._offers[offer]

    def party_keys(self, name: str) -> Sequence[PartyKey]:
        if name not in self._keys:
            self._keys[name] = [_key(row) for row in Store.state_keys(self.s, name)]
        return self._keys[name]

    # -- writing ------------------------------------------------------------------------

    def apply(self, changes: Iterable[Change]) -> None:
        """Write the changes of one admitted entry (to the tables and the cache)."""
        s = self.s
        for ch in changes:
            if isinstance(ch, PutItem):
                st = ch.state
                Store.state_insert(s, StateItemRow, [_item_row(st)])
                self._items[(st.case, st.item)] = ItemState(**vars(st))
                self._holder_seq[(st.case, st.item)] = 0
            elif isinstance(ch, SetHolder):
                current = self.item(ch.case, ch.item)
                assert current is not None  # the rule checked the holder
                key = (ch.case, ch.item)
                seq = self._holder_seq[key] = self._holder_seq[key] + 1
                Store.state_set_holder(s, ch.case, ch.item, seq, ch.holder)
                current.holder = ch.holder
            elif isinstance(ch, PutConsent):
                c = ch.consent
                rows, items = _consent_rows(c)
                Store.state_insert(s, StateConsentRow, [rows])
                Store.state_insert(s, StateConsentItemRow, items)
                self._consents[c.hash] = Consent(**vars(c))
                self._covering.clear()  # the new grant may cover items looked up already
            elif isinstance(ch, RevokeConsent):
                Store.state_revoke_consent(s, ch.hash, ch.index)
                target = self.consent(ch.hash)
                assert target is not None  # the rule found it
                target.revoked_at = ch.index
            elif isinstance(ch, SettleOffer):
                Store.state_insert(s, StateOfferRow, [{"offer": ch.offer, "idx": ch.index}])
                self._offers[ch.offer] = True
            elif isinstance(ch, KeyRegistered):
                k = ch.key
                Store.state_insert(s, StateKeyRow, [_key_row(k)])
                self._keys[k.name] = [*self.party_keys(k.name), k]
            elif isinstance(ch, KeyEnded):
                history = list(self.party_keys(ch.name))
                last = history[-1]
                Store.state_end_key(s, ch.name, last.registered_at, ch.index, ch.reason)
                history[-1] = last.ended(ch.index, ch.reason)
                self._keys[ch.name] = history


def write_all(s: Session, state: MemoryState) -> None:
    """Insert a whole replayed state into the (empty) state tables."""
    Store.state_insert(s, StateItemRow, [_item_row(i) for i in state.items.values()])
    consents, items = [], []
    for c in state.consents.values():
        row, its = _consent_rows(c)
        consents.append(row)
        items.extend(its)
    Store.state_insert(s, StateConsentRow, consents)
    Store.state_insert(
        s,
        StateRevocationRow,
        [
            {"hash": c.hash, "idx": c.revoked_at}
            for c in state.consents.values()
            if c.revoked_at is not None
        ],
    )
    Store.state_insert(s, StateConsentItemRow, items)
    Store.state_insert(s, StateOfferRow, [{"offer": o, "idx": i} for o, i in state.offers.items()])
    keys = [k for ks in state.keys.values() for k in ks]
    Store.state_insert(s, StateKeyRow, [_key_row(k) for k in keys])
    Store.state_insert(
        s,
        StateKeyEndRow,
        [
            {
                "name": k.name,
                "registered_at": k.registered_at,
                "ended_at": k.ended_at,
                "reason": k.end_reason or "",
            }
            for k in keys
            if k.ended_at is not None
        ],
    )


def compare(s: Session, state: MemoryState) -> None:
    """Compare the state tables with a replay of the entries.

    Raises VerificationError naming the first record that disagrees: "indexed
    custody state disagrees with the entries: ...".
    """
    rows = Store.state_all(s)
    stored = MemoryState()
    for r in rows["state_items"]:
        stored.items[(r.case_id, r.item)] = _item(r)
    for r in rows["state_consents"]:
        stored.consents[r.hash] = _consent(r)
    stored.offers = {r.offer: int(r.idx) for r in rows["state_offers"]}
    for r in sorted(rows["state_keys"], key=lambda r: (r.name, r.registered_at)):
        stored.keys.setdefault(r.name, []).append(_key(r))
    listed = {(r.hash, r.item) for r in rows["state_consent_items"]}
    want_listed = {(c.hash, i) for c in state.consents.values() for i in c.items}
    orphans = rows["orphans"]
    problem = (
        _difference(stored, state)
        or ("the consent item index differs" if listed != want_listed else None)
        or (f"the {orphans[0]} names nothing on the log" if orphans else None)
    )
    if problem is not None:
        raise VerificationError(
            f"indexed custody state disagrees with the entries: {problem}",
            hint="the database was altered outside custody; the entries are the record",
        )


def _difference(got: MemoryState, want: MemoryState) -> str | None:
    for key in sorted(set(got.items) | set(want.items)):
        g, w = got.items.get(key), want.items.get(key)
        label = (w or g).exhibit if (w or g) is not None else key[1]  # type: ignore[union-attr]
        if g is None:
            return f"{label} (item {key[1][:16]}…) is missing from the database"
        if w is None:
            return f"{label} (item {key[1][:16]}…) is not on the log"
        if g.holder != w.holder:
            return f"holder of {label} is '{g.holder}' in the database, '{w.holder}' on the log"
        if g != w:
            return f"the record of {label} differs"
    for h in sorted(set(got.consents) | set(want.consents)):
        gc, wc = got.consents.get(h), want.consents.get(h)
        if gc is None or wc is None:
            where = "missing from the database" if gc is None else "not on the log"
            return f"consent {h[:12]} is {where}"
        if gc != wc:
            return f"{wc.label()} differs (revoked at {gc.revoked_at} vs {wc.revoked_at})"
    if got.offers != want.offers:
        extra = sorted(set(got.offers) ^ set(want.offers)) or sorted(got.offers)
        return f"settled offers differ (offer {extra[0][:12]})"
    for name in sorted(set(got.keys) | set(want.keys)):
        if got.keys.get(name, []) != want.keys.get(name, []):
            return f"the key timeline of '{name}' differs"
    return None


# -- rows <-> records ------------------------------------------------------------------------


def _item(row: Any) -> ItemState:
    return ItemState(
        row.case_id,
        row.item,
        row.exhibit,
        row.holder,
        row.legal_basis,
        row.ref,
        int(row.since),
        row.parent,
    )


def _item_row(st: ItemState) -> dict[str, Any]:
    return {
        "case_id": st.case,
        "item": st.item,
        "exhibit": st.exhibit,
        "holder": st.holder,
        "legal_basis": st.legal_basis,
        "ref": st.ref,
        "since": st.since,
        "parent": st.parent,
    }


def _consent(row: Any) -> Consent:
    return Consent(
        row.hash,
        int(row.idx),
        row.owner,
        row.case_id,
        frozenset(row.items.split("\n")) if row.items else frozenset(),
        row.purpose,
        date.fromisoformat(row.until) if row.until else None,
        row.onward,
        None if row.revoked_at is None else int(row.revoked_at),
    )


def _consent_rows(c: Consent) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    row = {
        "hash": c.hash,
        "idx": c.index,
        "owner": c.owner,
        "case_id": c.case,
        "items": "\n".join(sorted(c.items)),
        "purpose": c.purpose,
        "until": c.until.isoformat() if c.until else None,
        "onward": c.onward,
    }
    items = [{"hash": c.hash, "item": i, "case_id": c.case} for i in sorted(c.items)]
    return row, items


def _key(row: Any) -> PartyKey:
    return PartyKey(
        row.name,
        row.role,
        row.org,
        VerifierKey.parse(row.vkey),
        int(row.registered_at),
        None if row.ended_at is None else int(row.ended_at),
        row.end_reason,
    )


def _key_row(k: PartyKey) -> dict[str, Any]:
    return {
        "name": k.name,
        "registered_at": k.registered_at,
        "role": k.role,
        "org": k.org,
        "vkey": k.vkey.encode(),
    }
