"""Party keys over time: registration, rotation and revocation (docs/spec/entry.md §key)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from custody.model.entry import Entry, sign_entry
from custody.model.parties import EntryError, Parties, check_entry
from custody.tlog.note import Signer

WHEN = datetime(2026, 11, 23, tzinfo=UTC)
OLD = Signer.from_seed("bob", bytes(range(32)))
NEW = Signer.from_seed("bob", bytes(range(1, 33)))


def key_entry(action: str, signers: list[Signer], **fields: str) -> bytes:
    items = [("action", action), ("party", "bob"), *fields.items()]
    return sign_entry(Entry.build("key", WHEN, items), signers)


def access(signer: Signer) -> bytes:
    return sign_entry(Entry.build("access", WHEN, [("by", signer.name)]), [signer])


def log_of(*entries: bytes) -> Parties:
    """Apply and check entries as the log does, in order."""
    parties = Parties()
    for index, data in enumerate(entries):
        trial = parties.copy()
        from custody.model.entry import SignedEntry

        trial.apply(index, SignedEntry.parse(data).entry)
        check_entry(index, data, trial)
        parties = trial
    return parties


REGISTER = key_entry("register", [OLD], role="agency", vkey=OLD.verifier_key.encode())


def test_register_then_sign() -> None:
    p = log_of(REGISTER, access(OLD))
    assert p.current("bob") is not None and p.key_at("bob", 1) is not None


def test_registration_needs_proof_of_possession() -> None:
    other = Signer.from_seed("bob", bytes(range(2, 34)))
    forged = key_entry("register", [other], role="agency", vkey=OLD.verifier_key.encode())
    with pytest.raises(EntryError, match="entry 0"):
        log_of(forged)


def test_rotation_hands_over_to_the_new_key() -> None:
    rotate = key_entry("rotate", [OLD, NEW], vkey=NEW.verifier_key.encode())
    p = log_of(REGISTER, access(OLD), rotate, access(NEW))
    assert p.current("bob").vkey == NEW.verifier_key  # type: ignore[union-attr]
    # The old key's earlier entry still verifies; it may sign nothing after the rotation.
    check_entry(1, access(OLD), p)
    with pytest.raises(EntryError, match="rotated at entry 2"):
        check_entry(3, access(OLD), p)


def test_a_revoked_key_signs_nothing_new() -> None:
    revoke = key_entry("revoke", [OLD], reason="laptop stolen")
    p = log_of(REGISTER, access(OLD), revoke)
    check_entry(1, access(OLD), p)  # earlier entries still verify
    with pytest.raises(EntryError, match="revoked: laptop stolen at entry 2"):
        check_entry(3, access(OLD), p)
    with pytest.raises(EntryError, match="no active key"):
        log_of(REGISTER, revoke, revoke)


def test_names_cannot_be_registered_twice_or_mislabelled() -> None:
    with pytest.raises(EntryError, match="already registered"):
        log_of(REGISTER, REGISTER)
    alice = Signer.from_seed("alice", bytes(range(32)))
    wrong = key_entry("register", [alice], role="agency", vkey=alice.verifier_key.encode())
    with pytest.raises(EntryError):
        log_of(wrong)
    with pytest.raises(EntryError, match="role"):
        log_of(key_entry("register", [OLD], role="pirate", vkey=OLD.verifier_key.encode()))


def test_a_rotation_must_be_signed_by_the_old_key_too() -> None:
    # Signed by the new key alone, a rotate would let anyone replace bob's key.
    rotate = key_entry("rotate", [NEW], vkey=NEW.verifier_key.encode())
    with pytest.raises(EntryError, match="entry 1: a key rotate entry for 'bob' must be signed"):
        log_of(REGISTER, rotate)


def test_a_revoke_must_be_signed_by_the_key_it_revokes() -> None:
    alice = Signer.from_seed("alice", bytes(range(3, 35)))
    reg_alice = sign_entry(
        Entry.build(
            "key",
            WHEN,
            [
                ("action", "register"),
                ("party", "alice"),
                ("role", "agency"),
                ("vkey", alice.verifier_key.encode()),
            ],
        ),
        [alice],
    )
    by_alice = key_entry("revoke", [alice], reason="not hers to revoke")
    with pytest.raises(EntryError, match="entry 2: a key revoke entry for 'bob' must be signed"):
        log_of(REGISTER, reg_alice, by_alice)
    # The key is valid at its own revoke entry: it signs it, and nothing after.
    log_of(REGISTER, reg_alice, key_entry("revoke", [OLD, alice], reason="lost"))
