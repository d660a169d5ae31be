"""Claimed times (custody.model.times): a handoff's time is its receiver's cosignature/v1
countersignature; the order rule (docs/spec/entry.md rule 5) and how it is reported."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from custody.errors import FormatError
from custody.model.entry import Entry, SignedEntry, countersign_entry, sign_entry
from custody.model.parties import EntryError, Parties, check_entry
from custody.model.rules import RuleError, admit, check_order
from custody.model.state import ItemState, KeyRegistered, MemoryState, PartyKey, PutItem
from custody.model.timeline import Event
from custody.model.times import (
    TIME_TOLERANCE,
    Stamp,
    claimed_time,
    claimed_time_of,
    find_disorder,
    offered_time,
)
from custody.tlog.note import Note, NoteSignature, Signer, add_signatures

OFFERED = datetime(2026, 11, 23, 13, 45, tzinfo=UTC)
ACCEPTED = OFFERED + timedelta(hours=2, minutes=5)
BOB = Signer.from_seed("bob", bytes(range(32)))
CORY = Signer.from_seed("cory", bytes(range(1, 33)))
ITEM = "ab" * 32


def _handoff(when: datetime = OFFERED) -> bytes:
    entry = Entry.build(
        "handoff",
        when,
        [
            ("case", "C1"),
            ("item", ITEM),
            ("from", "bob"),
            ("to", "cory"),
            ("purpose", "trial"),
            ("offer", "0f" * 16),
        ],
    )
    return sign_entry(entry, [BOB])


def _access(when: datetime) -> bytes:
    entry = Entry.build(
        "access",
        when,
        [("case", "C1"), ("item", ITEM), ("by", "bob"), ("purpose", "p"), ("action", "view")],
    )
    return sign_entry(entry, [BOB])


def _parties() -> Parties:
    return Parties(
        {
            "bob": [PartyKey("bob", "agency", "", BOB.verifier_key, 0)],
            "cory": [PartyKey("cory", "court", "", CORY.verifier_key, 1)],
        }
    )


def _state() -> MemoryState:
    state = MemoryState()
    for key in _parties().keys.values():
        state.apply([KeyRegistered(key[0])])
    state.apply([PutItem(ItemState("C1", ITEM, "C1/0001", "bob", "warrant", "W-1", 2))])
    return state


# -- the countersignature -----------------------------------------------------------------


def test_a_countersigned_handoff_claims_the_moment_of_the_countersignature() -> None:
    data = countersign_entry(_handoff(), CORY, ACCEPTED)
    signed = check_entry(5, data, _parties())
    assert claimed_time(signed) == ACCEPTED
    assert offered_time(signed) == OFFERED
    assert claimed_time_of(data, signed.entry) == ACCEPTED
    # The text is the sender's, unchanged; the sender's line is still Ed25519 (64 bytes).
    assert signed.entry.time == "2026-11-23T13:45:00Z"
    assert data.startswith(_handoff())
    assert [len(s.signature) for s in signed.note.signatures] == [64, 72]
    (cosig,) = signed.countersignatures
    assert (cosig.name, cosig.time) == ("cory", ACCEPTED)


def test_the_countersignature_is_c2sp_cosignature_v1_byte_for_byte() -> None:
    """Checked from the spec's words with the cryptography library, not custody's note code."""
    data = countersign_entry(_handoff(), CORY, ACCEPTED)
    text, _, sigs = data.decode().rpartition("\n\n")
    line = sigs.rstrip("\n").split("\n")[1]
    assert line.startswith("\u2014 cory ")
    raw = base64.b64decode(line.removeprefix("\u2014 cory "))
    key_id = hashlib.sha256(b"cory\n\x04" + CORY.public).digest()[:4]
    assert raw[:4] == key_id
    timestamp = int.from_bytes(raw[4:12], "big")
    assert timestamp == int(ACCEPTED.timestamp())
    message = b"cosignature/v1\ntime %d\n" % timestamp + (text + "\n").encode()
    Ed25519PublicKey.from_public_bytes(CORY.public).verify(raw[12:], message)  # raises if bad


def test_an_old_style_handoff_claims_its_time_line() -> None:
    data = add_signatures(_handoff(), [CORY])
    signed = check_entry(5, data, _parties())
    assert signed.countersignatures == ()
    assert claimed_time(signed) == OFFERED


def test_a_changed_countersignature_time_does_not_verify() -> None:
    data = countersign_entry(_handoff(), CORY, ACCEPTED)
    note = Note.parse(data)
    sender, receiver = note.signatures
    later = (int(ACCEPTED.timestamp()) + 3600).to_bytes(8, "big")
    forged = NoteSignature("cory", receiver.key_id, later + receiver.signature[8:])
    bad = Note(note.text, (sender, forged)).encode()
    with pytest.raises(EntryError, match="signature by 'cory' does not verify"):
        check_entry(5, bad, _parties())


def test_only_the_receiver_of_a_handoff_may_countersign() -> None:
    by_sender = countersign_entry(sign_entry(Entry.parse_text(_text()), [CORY]), BOB, ACCEPTED)
    with pytest.raises(EntryError, match="only the receiver of a handoff may add"):
        check_entry(5, by_sender, _parties())
    access = countersign_entry(_access(OFFERED), CORY, ACCEPTED)
    with pytest.raises(EntryError, match="cosignature/v1 line by 'cory'"):
        check_entry(5, access, _parties())


def test_a_handoff_is_countersigned_once() -> None:
    once = countersign_entry(_handoff(), CORY, ACCEPTED)
    note = Note.parse(once)
    other = Note.parse(countersign_entry(_handoff(), CORY, ACCEPTED + timedelta(seconds=1)))
    twice = Note(note.text, (*note.signatures, other.signatures[1])).encode()
    with pytest.raises(EntryError, match="more than one cosignature/v1 line"):
        check_entry(5, twice, _parties())


def test_a_countersignature_by_a_key_not_yet_registered_is_refused() -> None:
    data = countersign_entry(_handoff(), CORY, ACCEPTED)
    with pytest.raises(EntryError, match="registered only at entry 1"):
        check_entry(0, data, _parties())


def test_a_countersignature_past_year_9999_is_malformed() -> None:
    note = Note.parse(countersign_entry(_handoff(), CORY, ACCEPTED))
    sender, receiver = note.signatures
    far = (253402300800).to_bytes(8, "big")
    bad = Note(note.text, (sender, NoteSignature("cory", receiver.key_id, far + bytes(64))))
    with pytest.raises(FormatError, match="after 9999-12-31"):
        SignedEntry.parse(bad.encode())


def test_countersign_refuses_a_naive_time() -> None:
    with pytest.raises(FormatError, match="time zone"):
        countersign_entry(_handoff(), CORY, datetime(2026, 11, 23, 14, 0))


def _text() -> str:
    return SignedEntry.parse(_handoff()).note.text


# -- the order rule -----------------------------------------------------------------------


def test_the_tolerance_is_ten_minutes_inclusive() -> None:
    assert timedelta(minutes=10) == TIME_TOLERANCE
    base = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    prev = SignedEntry.parse(_access(base))
    ok = SignedEntry.parse(_access(base - TIME_TOLERANCE))
    late = SignedEntry.parse(_access(base - TIME_TOLERANCE - timedelta(seconds=1)))
    assert list(find_disorder([(8, prev), (9, ok)])) == []
    (found,) = find_disorder([(8, prev), (9, late)])
    assert (found.index, found.previous_index, found.gap) == (9, 8, timedelta(seconds=601))
    assert found.sentence() == (
        "log entry 9 (access) claims 2026-11-23T13:49:59Z, 10 min before log entry 8 "
        "(access) — more than the 10 min tolerance"
    )
    doc = found.to_json()
    assert doc["seconds_before"] == 601 and doc["tolerance_seconds"] == 600
    assert doc["previous_claimed"] == "2026-11-23T14:00:00Z"


def test_disorder_is_against_the_entry_just_before() -> None:
    base = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    entries = [
        (1, SignedEntry.parse(_access(base))),
        (2, SignedEntry.parse(_access(base - timedelta(hours=1)))),
        (3, SignedEntry.parse(_access(base - timedelta(minutes=55)))),
    ]
    assert [(d.index, d.previous_index) for d in find_disorder(entries)] == [(2, 1)]


def test_the_demo_disorder_is_gone_once_the_receiver_countersigns() -> None:
    """Offer at 13:45, the sender's access at 14:00, accept at 15:50 (issue 11's demo)."""
    access = SignedEntry.parse(_access(OFFERED + timedelta(minutes=15)))
    old = SignedEntry.parse(add_signatures(_handoff(), [CORY]))
    new = SignedEntry.parse(countersign_entry(_handoff(), CORY, ACCEPTED))
    (found,) = find_disorder([(9, access), (10, old)])
    assert "log entry 10 (handoff) claims 2026-11-23T13:45:00Z, 15 min before" in found.sentence()
    assert list(find_disorder([(9, access), (10, new)])) == []


def test_admit_refuses_an_entry_with_a_clock_set_back() -> None:
    state = _state()
    previous = Stamp(2, "ingest", OFFERED)
    early = _access(OFFERED - timedelta(minutes=25))
    with pytest.raises(RuleError) as err:
        admit(3, early, state, previous=previous)
    assert err.value.reason.startswith(
        "the access entry claims 2026-11-23T13:20:00Z, 25 min before log entry 2 (ingest)"
    )
    assert "clock may be set back" in (err.value.hint or "")
    # Imported (no previous given) or a replay: admitted; the verifier reports instead.
    admit(3, early, state)
    admit(3, _access(OFFERED - timedelta(minutes=9)), state, previous=previous)


def test_the_order_rule_reads_the_countersignature() -> None:
    signed = SignedEntry.parse(countersign_entry(_handoff(), CORY, ACCEPTED))
    check_order(3, signed, Stamp(2, "access", ACCEPTED - timedelta(minutes=30)))
    with pytest.raises(RuleError, match="the handoff entry claims 2026-11-23T15:50:00Z"):
        check_order(3, signed, Stamp(2, "access", ACCEPTED + timedelta(hours=1)))


def test_a_handoff_is_judged_against_consent_at_its_claimed_time() -> None:
    """A consent that ends the day of the offer does not cover an accept the day after."""
    from custody.model.state import Consent, PutConsent

    state = _state()
    state.items[("C1", ITEM)].legal_basis = "consent"
    owner = Signer.from_seed("ann", bytes(range(2, 34)))
    state.apply([KeyRegistered(PartyKey("ann", "owner", "", owner.verifier_key, 0))])
    until = OFFERED.date()
    state.apply([PutConsent(Consent("cd" * 32, 1, "ann", "C1", frozenset(), "x", until, "any"))])
    same_day = countersign_entry(_handoff(), CORY, OFFERED + timedelta(hours=1))
    next_day = countersign_entry(_handoff(), CORY, OFFERED + timedelta(days=1))
    admit(3, same_day, state)
    with pytest.raises(RuleError, match="expired on 2026-11-23"):
        admit(3, next_day, state)


# -- timelines and sentences --------------------------------------------------------------


def test_a_timeline_lists_a_handoff_at_its_accept_time() -> None:
    data = countersign_entry(_handoff(), CORY, ACCEPTED)
    ev = Event.of(10, SignedEntry.parse(data))
    assert (ev.time, ev.offered) == ("2026-11-23T15:50:00Z", "2026-11-23T13:45:00Z")
    assert ev.entry == SignedEntry.parse(data).entry  # the text as signed
    assert ev.describe().endswith(
        "; offered at 2026-11-23T13:45:00Z, accepted at 2026-11-23T15:50:00Z"
    )
    assert ev.as_json()["offered"] == "2026-11-23T13:45:00Z"
    assert ev.verdict_json()["time"] == "2026-11-23T15:50:00Z"
    old = Event.of(10, SignedEntry.parse(add_signatures(_handoff(), [CORY])))
    assert (old.time, old.offered) == ("2026-11-23T13:45:00Z", None)
    assert "offered at" not in old.describe()
    assert "offered" not in old.as_json()
    same = Event.of(10, SignedEntry.parse(countersign_entry(_handoff(), CORY, OFFERED)))
    assert same.offered is None and "offered at" not in same.describe()
