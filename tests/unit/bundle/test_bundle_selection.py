"""Which entries a bundle carries (docs/spec/bundle.md §2.1), and what the verifier
checks of that selection: pure, no home, no CLI."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from custody.bundle.verify import (
    Trust,
    _Verifier,
    cosigner_names,
    parties_needed,
    parties_of,
    select_entries,
)
from custody.media.digest import FileDigests
from custody.model.entry import Entry, SignedEntry, sign_entry
from custody.model.timeline import Event
from custody.tlog.checkpoint import Checkpoint, cosign, sign_checkpoint
from custody.tlog.note import Signer

WHEN = datetime(2026, 11, 23, 13, 45, tzinfo=UTC)
LOG = Signer.from_seed("log.example/custody", bytes(32))
BOB = Signer.from_seed("bob", bytes([1]) * 32)
CAROL = Signer.from_seed("carol", bytes([2]) * 32)
IVY = Signer.from_seed("ivy", bytes([3]) * 32)
CLERK = Signer.from_seed("clerk", bytes([4]) * 32)
ITEM = "ab" * 32


def event(index: int, type_: str, fields: list[tuple[str, str | int | None]], *by: Signer) -> Event:
    data = sign_entry(Entry.build(type_, WHEN, fields), list(by))
    return Event.of(index, SignedEntry.parse(data))


def register(index: int, s: Signer, role: str) -> Event:
    fields: list[tuple[str, str | int | None]] = [
        ("action", "register"),
        ("party", s.name),
        ("role", role),
        ("vkey", s.verifier_key.encode()),
    ]
    return event(index, "key", fields, s)


def revoke(index: int, s: Signer) -> Event:
    return event(index, "key", [("action", "revoke"), ("party", s.name), ("reason", "x")], s)


def reject(index: int) -> Event:
    """A refusal: names bob (the sender) without his signature."""
    fields: list[tuple[str, str | int | None]] = [
        ("case", "A-1"),
        ("item", ITEM),
        ("from", "bob"),
        ("to", "carol"),
        ("offer", "cd" * 16),
        ("by", "carol"),
        ("reason", "wrong lab"),
    ]
    return event(index, "reject", fields, CAROL)


def access(index: int, s: Signer) -> Event:
    fields: list[tuple[str, str | int | None]] = [
        ("case", "A-1"),
        ("item", ITEM),
        ("by", s.name),
        ("purpose", "review"),
        ("action", "view"),
    ]
    return event(index, "access", fields, s)


KEYS = [
    register(0, BOB, "agency"),
    register(1, CAROL, "lab"),
    register(2, IVY, "owner"),
    register(3, CLERK, "court"),
    revoke(6, IVY),
    revoke(7, CAROL),
]


def test_parties_needed_are_signers_and_named_parties() -> None:
    assert parties_needed([reject(4), access(5, BOB), *KEYS]) == {"carol": 4, "bob": 4}


def test_selection_keeps_the_whole_key_timeline_of_needed_parties_only() -> None:
    events = [*KEYS, reject(4), access(5, BOB)]
    # ivy (another case's informant) and the clerk are left out; carol's later revocation
    # stays (her timeline up to the checkpoint), bob's registration stays.
    assert select_entries(events) == [0, 1, 4, 5, 7]
    # Key entries at or beyond the checkpoint cannot be proven: left out.
    assert select_entries(events, size=7) == [0, 1, 4, 5]
    # A witness on the checkpoint brings its key entries.
    assert select_entries(events, cosigners=("clerk",)) == [0, 1, 3, 4, 5, 7]


def test_cosigner_names_are_every_signer_but_the_log() -> None:
    note = sign_checkpoint(Checkpoint(LOG.name, 8, bytes(32)), LOG)
    assert cosigner_names(note, LOG.name) == ()
    assert cosigner_names(cosign(note, CLERK, 1767225600), LOG.name) == ("clerk",)


class _NoFiles:
    """A bundle source with no files: `_key_timeline` reads none."""

    label = "test"

    def names(self) -> Collection[str]:
        return ()

    def read(self, name: str, limit: int) -> bytes:
        raise AssertionError(name)

    def digests(self, name: str) -> FileDigests:
        raise AssertionError(name)


def _key_timeline(events: list[Event], checkpoint: bytes) -> _Verifier:
    v = _Verifier(_NoFiles(), Trust(), None)
    v._key_timeline({e.index: e for e in events}, parties_of(events), checkpoint, LOG.verifier_key)
    return v


def test_verifier_fails_a_bundle_without_the_keys_of_a_named_party() -> None:
    note = sign_checkpoint(Checkpoint(LOG.name, 8, bytes(32)), LOG)
    v = _key_timeline([KEYS[1], reject(4)], note)
    [failure] = v.report.failures
    assert failure.check == "keys" and failure.index == 4
    assert "lists no key entry of party 'bob', whom log entry 4 names" in failure.message


def test_verifier_notes_key_entries_carried_beyond_need() -> None:
    note = cosign(sign_checkpoint(Checkpoint(LOG.name, 8, bytes(32)), LOG), CLERK, 1767225600)
    v = _key_timeline([*KEYS[:4], reject(4)], note)
    assert v.report.failures == []
    assert [n for n in v.report.notes if "tells more than it must" in n] == [
        "the bundle carries the key entries of ivy, whom none of its entries signs or names: "
        "it tells more than it must (docs/spec/bundle.md §2.1)"
    ]


def test_one_timeline_event_for_history_report_and_verdict() -> None:
    import custody.app.evidence

    assert custody.app.evidence.Event is Event
    ev = access(5, BOB)
    # The report builds events positionally from an entry's parts: the same event.
    assert ev == Event(ev.index, ev.type, ev.time, ev.signers, ev.fields)
    assert ev.typed is not None and ev.typed.case_id == "A-1" and ev.items == {ITEM}
    assert ev.as_json() == {
        "index": 5,
        "type": "access",
        "time": "2026-11-23T13:45:00Z",
        "signed_by": ["bob"],
        "fields": {
            "case": "A-1",
            "item": ITEM,
            "by": "bob",
            "purpose": "review",
            "action": "view",
        },
    }
    assert ev.verdict_json()["what"] == "view by bob for review" == ev.describe(about=ITEM)
