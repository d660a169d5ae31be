"""The custody state kept in the database, beside the log (docs/spec/entry.md rules).

`DbState` is the `custody.model.state.StateView` an append reads: a few indexed
rows (the item's holder, the consents covering it, an offer, a party's keys)
instead of a replay of the case, so an append costs the same however large the
case or the log.  Changes returned by the rule engine are written to the state
tables in the append's own transaction, so the state and the log commit together
or not at all.  A per-transaction cache keeps a batch of appends from reading the
same rows again.

The tables are insert-only (schema 3, docs/database.md): a handoff adds a
`state_holders` row, a revocation a `state_consent_revocations` row, the end of a
key a `state_key_ends` row, an answer, a review, a hold's release, a disposal and a
policy their own rows, and the reads return the newest value.  The log key, which
alone signs `policy` entries, is read from `meta` (`DbState.log_key`).  An append
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
    StateAnswerRow,
    StateConsentItemRow,
    StateConsentRequestRow,
    StateConsentRow,
    StateDisposalRow,
    StateEmergencyRow,
    StateHoldRow,
    StateItemRow,
    StateKeyEndRow,
    StateKeyRow,
    StateOfferRow,
    StatePolicyRow,
    StateReleaseRow,
    StateRequestRow,
    StateReviewRow,
    StateRevocationRow,
    Store,
)

# Rows come from prepared statements (attributes named as the tables' columns).
from custody.model.state import (
    AnswerRequest,
    Change,
    Consent,
    Dispose,
    EmergencyState,
    HoldState,
    ItemState,
    KeyEnded,
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
        self._requests: dict[str, RequestState | None] = {}
        self._emergencies: dict[str, EmergencyState | None] = {}
        self._holds: dict[str, HoldState | None] = {}
        self._holds_covering: dict[tuple[str, str], list[HoldState]] = {}
        self._policy: tuple[PolicyState | None] | None = None  # (policy,) once read
        self._log_key: tuple[VerifierKey | None] | None = None

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

    def request(self, hash: str) -> RequestState | None:
        if hash not in self._requests:
            found = Store.state_request(self.s, hash)
            self._requests[hash] = None if found is None else _request(*found)
        return self._requests[hash]

    def emergency(self, hash: str) -> EmergencyState | None:
        if hash not in self._emergencies:
            row = Store.state_emergency(self.s, hash)
            self._emergencies[hash] = None if row is None else _emergency(row)
        return self._emergencies[hash]

    def hold(self, hash: str) -> HoldState | None:
        if hash not in self._holds:
            row = Store.state_hold(self.s, hash)
            self._holds[hash] = None if row is None else _hold(row)
        return self._holds[hash]

    def holds_covering(self, case: str, item: str) -> Sequence[HoldState]:
        key = (case, item)
        if key not in self._holds_covering:
            found = []
            for row in Store.state_holds_covering(self.s, case, item):
                hold = self._holds.get(row.hash)
                if hold is None:
                    hold = self._holds[row.hash] = _hold(row)
                found.append(hold)
            self._holds_covering[key] = found
        return self._holds_covering[key]

    def policy(self) -> PolicyState | None:
        if self._policy is None:
            row = Store.state_policy(self.s)
            self._policy = (None if row is None else _policy(row),)
        return self._policy[0]

    def log_key(self) -> VerifierKey | None:
        """The log's verifier key (`meta` `log_vkey`, written when the home was made)."""
        if self._log_key is None:
            text = Store.log_vkey(self.s)
            self._log_key = (None if text is None else VerifierKey.parse(text),)
        return self._log_key[0]

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
                Store.state_insert(s, StateConsentRequestRow, _consent_request_rows(c))
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
            else:
                self._apply_oversight(ch)

    def _apply_oversight(self, ch: Change) -> None:
        """The changes of requests, emergencies, holds, disposals and policies."""
        s = self.s
        if isinstance(ch, PutRequest):
            r = ch.request
            Store.state_insert(s, StateRequestRow, [_request_row(r)])
            Store.state_insert(s, StateAnswerRow, _answer_rows(r))
            self._requests[r.hash] = RequestState(**vars(r))
        elif isinstance(ch, AnswerRequest):
            Store.state_insert(
                s,
                StateAnswerRow,
                [{"hash": ch.hash, "idx": ch.index, "owner": ch.owner, "outcome": ch.outcome}],
            )
            req = self.request(ch.hash)
            assert req is not None  # the rule found it
            req.answers = (*req.answers, (ch.index, ch.owner, ch.outcome))
        elif isinstance(ch, PutEmergency):
            em = ch.emergency
            Store.state_insert(s, StateEmergencyRow, [_emergency_row(em)])
            Store.state_insert(s, StateReviewRow, _review_rows(em))
            self._emergencies[em.hash] = EmergencyState(**vars(em))
        elif isinstance(ch, ReviewEmergency):
            target = self.emergency(ch.hash)
            assert target is not None  # the rule found it
            target.reviewed_at, target.outcome, target.reviewer, target.reviewed_time = (
                ch.index,
                ch.outcome,
                ch.reviewer,
                ch.time,
            )
            Store.state_insert(s, StateReviewRow, _review_rows(target))
            if ch.outcome == "rejected":
                item = self.item(target.case, target.item)
                assert item is not None  # an emergency disclosure is an ingested item
                item.restricted_at = ch.index
        elif isinstance(ch, PutHold):
            h = ch.hold
            Store.state_insert(s, StateHoldRow, [_hold_row(h)])
            Store.state_insert(s, StateReleaseRow, _release_rows(h))
            self._holds[h.hash] = HoldState(**vars(h))
            self._holds_covering.clear()  # the new hold may cover items looked up already
        elif isinstance(ch, ReleaseHold):
            Store.state_insert(s, StateReleaseRow, [{"hash": ch.hash, "idx": ch.index}])
            held = self.hold(ch.hash)
            assert held is not None  # the rule found it
            held.released_at = ch.index
        elif isinstance(ch, Dispose):
            Store.state_insert(
                s, StateDisposalRow, [{"case_id": ch.case, "item": ch.item, "idx": ch.index}]
            )
            item = self.item(ch.case, ch.item)
            assert item is not None  # the rule found it
            item.disposed_at = ch.index
        elif isinstance(ch, SetPolicy):
            Store.state_insert(s, StatePolicyRow, [_policy_row(ch.policy)])
            self._policy = (ch.policy,)


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
    Store.state_insert(
        s,
        StateConsentRequestRow,
        [r for c in state.consents.values() for r in _consent_request_rows(c)],
    )
    Store.state_insert(s, StateOfferRow, [{"offer": o, "idx": i} for o, i in state.offers.items()])
    _write_oversight(s, state)
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


def _write_oversight(s: Session, state: MemoryState) -> None:
    """`write_all` for the records of schema 3 (requests, emergencies, holds, disposals,
    the policy in force)."""
    requests = state.requests.values()
    Store.state_insert(s, StateRequestRow, [_request_row(r) for r in requests])
    Store.state_insert(s, StateAnswerRow, [a for r in requests for a in _answer_rows(r)])
    emergencies = state.emergencies.values()
    Store.state_insert(s, StateEmergencyRow, [_emergency_row(e) for e in emergencies])
    Store.state_insert(s, StateReviewRow, [r for e in emergencies for r in _review_rows(e)])
    holds = state.holds.values()
    Store.state_insert(s, StateHoldRow, [_hold_row(h) for h in holds])
    Store.state_insert(s, StateReleaseRow, [r for h in holds for r in _release_rows(h)])
    Store.state_insert(
        s,
        StateDisposalRow,
        [
            {"case_id": i.case, "item": i.item, "idx": i.disposed_at}
            for i in state.items.values()
            if i.disposed_at is not None
        ],
    )
    # Only the policy in force is state (an older one was replaced whole).
    if state.current_policy is not None:
        Store.state_insert(s, StatePolicyRow, [_policy_row(state.current_policy)])


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
    answers: dict[str, list[Any]] = {}
    for r in rows["state_request_answers"]:
        answers.setdefault(r.hash, []).append(r)
    for r in rows["state_requests"]:
        stored.requests[r.hash] = _request(r, answers.get(r.hash, []))
    for r in rows["state_emergencies"]:
        stored.emergencies[r.hash] = _emergency(r)
    for r in rows["state_holds"]:
        stored.holds[r.hash] = _hold(r)
    for r in rows["state_policy"]:
        stored.current_policy = _policy(r)
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
    return _oversight_difference(got, want)


def _oversight_difference(got: MemoryState, want: MemoryState) -> str | None:
    """`_difference` for requests, emergency disclosures, holds and the policy."""
    records: tuple[tuple[str, dict[str, Any], dict[str, Any]], ...] = (
        ("request", got.requests, want.requests),
        ("emergency disclosure", got.emergencies, want.emergencies),
        ("hold", got.holds, want.holds),
    )
    for what, g_all, w_all in records:
        for h in sorted(set(g_all) | set(w_all)):
            g, w = g_all.get(h), w_all.get(h)
            if g is None or w is None:
                where = "missing from the database" if g is None else "not on the log"
                return f"{what} {h[:12]} is {where}"
            if g != w:
                return f"the record of {w.label()} differs"
    gp, wp = got.current_policy, want.current_policy
    if gp != wp:
        g_at = "none" if gp is None else f"entry {gp.index}"
        w_at = "none" if wp is None else f"entry {wp.index}"
        return f"the policy in force differs ({g_at} in the database, {w_at} on the log)"
    return None


# -- rows <-> records ------------------------------------------------------------------------


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


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
        _opt_int(row.restricted_at),
        _opt_int(row.disposed_at),
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
        row.request,
    )


def _consent_request_rows(c: Consent) -> list[dict[str, Any]]:
    return [] if c.request is None else [{"hash": c.hash, "request": c.request}]


def _request(row: Any, answers: Sequence[Any]) -> RequestState:
    return RequestState(
        row.hash,
        int(row.idx),
        row.case_id,
        row.by_party,
        row.owner,
        row.start_at,
        row.end_at,
        row.area,
        date.fromisoformat(row.answer_by) if row.answer_by else None,
        tuple((int(a.idx), a.owner, a.outcome) for a in sorted(answers, key=lambda a: a.idx)),
    )


def _request_row(r: RequestState) -> dict[str, Any]:
    return {
        "hash": r.hash,
        "idx": r.index,
        "case_id": r.case,
        "by_party": r.by,
        "owner": r.owner,
        "start_at": r.start,
        "end_at": r.end,
        "area": r.area,
        "answer_by": r.answer_by.isoformat() if r.answer_by else None,
    }


def _answer_rows(r: RequestState) -> list[dict[str, Any]]:
    return [
        {"hash": r.hash, "idx": idx, "owner": owner, "outcome": outcome}
        for idx, owner, outcome in r.answers
    ]


def _emergency(row: Any) -> EmergencyState:
    return EmergencyState(
        row.hash,
        int(row.idx),
        row.case_id,
        row.item,
        row.by_party,
        row.claimed,
        row.due,
        _opt_int(row.reviewed_at),
        row.outcome,
        row.reviewer,
        row.reviewed_time,
    )


def _emergency_row(e: EmergencyState) -> dict[str, Any]:
    return {
        "hash": e.hash,
        "idx": e.index,
        "case_id": e.case,
        "item": e.item,
        "by_party": e.by,
        "claimed": e.time,
        "due": e.due,
    }


def _review_rows(e: EmergencyState) -> list[dict[str, Any]]:
    if e.reviewed_at is None:
        return []
    return [
        {
            "hash": e.hash,
            "idx": e.reviewed_at,
            "outcome": e.outcome,
            "reviewer": e.reviewer,
            "claimed": e.reviewed_time,
        }
    ]


def _hold(row: Any) -> HoldState:
    return HoldState(
        row.hash,
        int(row.idx),
        row.case_id,
        row.item,
        row.by_party,
        _opt_int(row.released_at),
    )


def _hold_row(h: HoldState) -> dict[str, Any]:
    return {"hash": h.hash, "idx": h.index, "case_id": h.case, "item": h.item, "by_party": h.by}


def _release_rows(h: HoldState) -> list[dict[str, Any]]:
    return [] if h.released_at is None else [{"hash": h.hash, "idx": h.released_at}]


def _kinds(text: str) -> frozenset[str]:
    return frozenset(text.split("\n")) if text else frozenset()


def _policy(row: Any) -> PolicyState:
    return PolicyState(
        int(row.idx), _kinds(row.forbid), _kinds(row.warrant_required), int(row.review_hours)
    )


def _policy_row(p: PolicyState) -> dict[str, Any]:
    return {
        "idx": p.index,
        "forbid": "\n".join(sorted(p.forbid)),
        "warrant_required": "\n".join(sorted(p.warrant_required)),
        "review_hours": p.review_hours,
    }


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
