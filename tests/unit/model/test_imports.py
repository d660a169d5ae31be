"""Entries from another log are judged in that log's order (`judge_in_context`; no I/O).

The sending log (ann's agency) writes its entries in its order; the receiving log
(cory's court) holds some of them already, in another order.  An offer is judged by
replaying only its context, in the sender's order, and evaluating the handoff after it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from custody.model.entry import Entry, SignedEntry, sign_entry
from custody.model.parties import EntryError
from custody.model.rules import ContextError, Parsed, RuleError, judge_in_context, replay
from custody.model.state import PartyKey
from custody.tlog.note import Signer

WHEN = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CASE = "C1"
ITEM1, ITEM2, ITEM3 = "a1" * 32, "a2" * 32, "a3" * 32
Fields = list[tuple[str, str | int | None]]


def _signer(name: str, seed: int) -> Signer:
    return Signer.from_seed(name, bytes([seed]) * 32)


ANN, CORY, OLGA = _signer("ann", 1), _signer("cory", 2), _signer("olga", 3)
ROLE = {"ann": "agency", "cory": "court", "olga": "owner"}


def sign(type_: str, fields: Fields, *signers: Signer) -> bytes:
    return sign_entry(Entry.build(type_, WHEN, fields), list(signers))


def register(s: Signer) -> bytes:
    fields: Fields = [
        ("action", "register"),
        ("party", s.name),
        ("role", ROLE[s.name]),
        ("vkey", s.verifier_key.encode()),
    ]
    return sign("key", fields, s)


def ingest(item: str, number: int, basis: str = "warrant") -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("exhibit", f"{CASE}/{number:04d}"),
        ("item", item),
        ("name", f"f{number}.bin"),
        ("size", 1),
        ("kind", "attachment"),
        ("legal-basis", basis),
        ("by", "ann"),
    ]
    return sign("ingest", fields, ANN)


def access(item: str, by: Signer = ANN, purpose: str = "send to the court") -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("item", item),
        ("by", by.name),
        ("purpose", purpose),
        ("action", "export"),
    ]
    return sign("access", fields, by)


def handoff(item: str, offer: str, *signers: Signer, to: Signer = CORY) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("item", item),
        ("from", "ann"),
        ("to", to.name),
        ("purpose", "trial"),
        ("offer", offer),
    ]
    return sign("handoff", fields, *(signers or (ANN, to)))


def grant(onward: str) -> bytes:
    fields: Fields = [
        ("action", "grant"),
        ("owner", "olga"),
        ("case", CASE),
        ("purpose", "investigation"),
        ("onward", onward),
    ]
    return sign("consent", fields, OLGA)


def parsed(data: bytes) -> Parsed:
    signed = SignedEntry.parse(data)
    return Parsed(data, signed.entry, signed.signer_names)


FIRST = handoff(ITEM1, "01" * 16)
# The sending log, in its order: ann took a copy of ITEM1 to send it *before* the
# receipt of the first handoff came back (and so before that handoff is on this log).
SENDER_LOG = [
    register(ANN),
    ingest(ITEM1, 1),
    ingest(ITEM2, 2),
    access(ITEM1),
    register(CORY),
    FIRST,
    access(ITEM2),
]


def test_an_offer_is_judged_in_the_senders_order() -> None:
    second = handoff(ITEM2, "02" * 16)
    state = judge_in_context(SENDER_LOG, parsed(second))
    item2, item1 = state.item(CASE, ITEM2), state.item(CASE, ITEM1)
    assert item2 is not None and item2.holder == "cory"
    assert item1 is not None and item1.holder == "cory"
    assert state.offer_settled("02" * 16) and state.offer_settled("01" * 16)


def test_the_same_entries_in_the_receivers_order_would_be_refused() -> None:
    # What the receiving log held before the fix: its own key, the first offer's
    # context, the first handoff; then the second offer's context appended after it.
    receiver_order = [register(CORY), register(ANN), ingest(ITEM1, 1), ingest(ITEM2, 2), FIRST]
    receiver_order.append(access(ITEM1))
    with pytest.raises(RuleError, match="'ann' may not access C1/0001: the current holder is"):
        replay(enumerate(receiver_order))


def test_a_context_that_does_not_hold_up_in_its_own_order_is_named() -> None:
    # An access after the handoff, in the context's own order: not what any log wrote.
    context = [*SENDER_LOG[:6], access(ITEM1, purpose="a second copy")]
    with pytest.raises(ContextError) as caught:
        judge_in_context(context, parsed(handoff(ITEM2, "02" * 16)))
    err = caught.value
    assert (err.position, err.total) == (7, 7)
    assert err.message.startswith("the offer's context entry 7 of 7 (access): 'ann' may not")
    assert not isinstance(err, RuleError)  # a context that fails is not a local refusal


def test_a_forged_context_entry_is_refused() -> None:
    forged = bytearray(SENDER_LOG[2])
    forged[forged.index(b"f2.bin")] = ord("g")
    context = [*SENDER_LOG[:2], bytes(forged), *SENDER_LOG[3:]]
    with pytest.raises(ContextError, match=r"context entry 3 of 7 \(ingest\)"):
        judge_in_context(context, parsed(handoff(ITEM2, "02" * 16)))


def test_an_entry_twice_in_the_context_is_judged_twice() -> None:
    # The same bytes twice, as a log holds two identical accesses made in one second.
    context = [*SENDER_LOG[:4], SENDER_LOG[3], *SENDER_LOG[4:]]
    state = judge_in_context(context, parsed(handoff(ITEM2, "02" * 16)))
    held = state.item(CASE, ITEM2)
    assert held is not None and held.holder == "cory"
    # An ingest twice is not what any log holds: the second is refused.
    context = [*SENDER_LOG, SENDER_LOG[1]]
    with pytest.raises(ContextError, match=r"context entry 8 of 8 \(ingest\): item .* already"):
        judge_in_context(context, parsed(handoff(ITEM2, "02" * 16)))


def test_a_handoff_of_an_item_the_sender_no_longer_holds_is_refused() -> None:
    with pytest.raises(RuleError, match="'ann' may not hand off C1/0001") as caught:
        judge_in_context(SENDER_LOG, parsed(handoff(ITEM1, "03" * 16)))
    assert caught.value.index == len(SENDER_LOG)


def test_an_item_not_in_the_context_is_refused() -> None:
    with pytest.raises(RuleError, match="is not on this log in case C1"):
        judge_in_context(SENDER_LOG, parsed(handoff(ITEM3, "03" * 16)))


def test_the_receivers_role_comes_from_its_own_log_when_the_context_lacks_it() -> None:
    # Consent-based footage, onward sharing to a court only: the rule reads the
    # receiver's role.  The sender's log has never seen the court's key.
    context = [register(ANN), register(OLGA), ingest(ITEM1, 1, "consent"), grant("court")]
    offer = parsed(handoff(ITEM1, "04" * 16))
    with pytest.raises(RuleError, match=r"onward court"):
        judge_in_context(context, offer)
    court_key = PartyKey("cory", "court", "County Court", CORY.verifier_key, registered_at=40)
    state = judge_in_context(context, offer, known_keys={"cory": court_key})
    held = state.item(CASE, ITEM1)
    assert held is not None and held.holder == "cory"
    # A key the context does carry is the one used: here cory is an agency party.
    agency_cory = PartyKey("cory", "agency", "", CORY.verifier_key, registered_at=0)
    with pytest.raises(RuleError, match=r"onward court"):
        judge_in_context(context, offer, known_keys={"cory": agency_cory})


def test_keys_are_valid_in_the_context_order() -> None:
    # An entry signed before its signer's key is registered, in the context's order.
    context = [ingest(ITEM1, 1), register(ANN)]
    with pytest.raises(ContextError, match=r"context entry 1 of 2 \(ingest\)") as caught:
        judge_in_context(context, parsed(handoff(ITEM1, "05" * 16)))
    assert isinstance(caught.value, EntryError)
