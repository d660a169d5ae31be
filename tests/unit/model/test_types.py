"""The typed entry registry (custody.model.types): every type a real home writes parses;
a missing or malformed field is a FormatError naming it; an unknown type is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import PASSPHRASE

from custody.app import events
from custody.app.evidence import Source, ingest
from custody.app.home import Custody
from custody.errors import FormatError
from custody.model.entry import Entry, SignedEntry
from custody.model.types import (
    REGISTRY,
    Access,
    Consent,
    Derive,
    Handoff,
    Ingest,
    KeyEvent,
    Reject,
    build,
    parse_typed,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
# The home fixture's key entries claim the real time, and a home refuses an entry that
# claims a time well before the one before it (docs/spec/entry.md rule 5): the entries
# the library writes here claim the real time too.
# They are read when the test runs, not when the module is collected: a run of the whole
# suite can take longer than the tolerance.
UNTIL = (datetime.now(UTC) + timedelta(days=60)).date().isoformat()


def _pw(_prompt: str) -> str:
    return PASSPHRASE


def _real_home_entries(tmp_path: Path) -> list[Entry]:
    """Every kind of entry, written by the library as the commands write them."""
    exhibit = tmp_path / "note.txt"
    exhibit.write_text("statement of the owner\n")
    later = datetime.now(UTC).replace(microsecond=0)
    with Custody.open() as c:
        c.new_key("cory", "court", "County Court", _pw, later)
        bob = c.signer("bob", _pw)
        source = Source(exhibit, "owner's laptop", "consent", "CONSENT-1")
        from custody.app.evidence import new_case

        new_case(c, "T-1", "test", later)
        [outcome] = list(ingest(c, [source], case_id="T-1", by=bob, now=lambda: later))
        assert outcome.status == "ingested", outcome
        ref = "T-1/0001"
        events.grant_consent(
            c,
            owner="alice",
            case="T-1",
            items=[],
            purpose="court",
            until=UNTIL,
            onward="court",
            passphrase=_pw,
            now=later,
        )
        events.open_item(
            c,
            ref,
            by="bob",
            purpose="review",
            out=tmp_path / "out.txt",
            case=None,
            passphrase=_pw,
            now=later,
        )
        refused = events.make_offer(
            c,
            [ref],
            sender="bob",
            receiver="cory",
            purpose="trial",
            authority=None,
            case=None,
            passphrase=_pw,
            now=later,
        )
        events.reject_offer(c, refused, by="cory", reason="wrong court", passphrase=_pw, now=later)
        offer = events.make_offer(
            c,
            [ref],
            sender="bob",
            receiver="cory",
            purpose="trial",
            authority="order 7",
            case=None,
            passphrase=_pw,
            now=later,
        )
        events.accept_offer(c, offer, by="cory", media=None, passphrase=_pw)
        grant_index = next(i for i, d in c.store.iter_entries() if b"action grant" in d)
        events.revoke_consent(c, str(grant_index), "alice", _pw, later)
        events.rotate_key(c, "bob", _pw, later)
        events.revoke_key(c, "bob", "left the force", _pw, later)
        return [SignedEntry.parse(d).entry for _i, d in c.store.iter_entries()]


def test_every_type_a_home_writes_parses(home: Path, tmp_path: Path) -> None:
    entries = _real_home_entries(tmp_path)
    typed = [parse_typed(e) for e in entries]
    kinds = {type(t) for t in typed}
    assert kinds == {KeyEvent, Ingest, Consent, Access, Handoff, Reject}
    ing = next(t for t in typed if isinstance(t, Ingest))
    assert (ing.case, ing.exhibit, ing.kind, ing.legal_basis, ing.by) == (
        "T-1",
        "T-1/0001",
        "attachment",
        "consent",
        "bob",
    )
    hand = next(t for t in typed if isinstance(t, Handoff))
    assert (hand.sender, hand.receiver, hand.authority) == ("bob", "cory", "order 7")
    grant = next(t for t in typed if isinstance(t, Consent) and t.action == "grant")
    assert grant.until_date is not None and grant.until_date.isoformat() == UNTIL
    actions = [t.action for t in typed if isinstance(t, KeyEvent)]
    assert actions == ["register", "register", "register", "rotate", "revoke"]
    # Every field a home wrote is a declared field of its type, in the spec's order.
    for t in typed:
        assert Entry.build(t.entry.type, NOW, t.fields()).fields == t.entry.fields


def test_a_derive_entry_parses() -> None:
    fields: list[tuple[str, str | int | None]] = [
        ("case", "T-1"),
        ("exhibit", "T-1/0002"),
        ("parent", "ab" * 32),
        ("item", "cd" * 32),
        ("name", "trim.mp4"),
        ("size", 10),
        ("kind", "media"),
        ("op", "trim"),
        ("param", "start 00:00:01.000"),
        ("param", "end 00:00:02.000"),
        ("tool", "ffmpeg 6"),
        ("reason", "jury excerpt"),
        ("by", "bob"),
    ]
    d = parse_typed(Entry.build("derive", NOW, fields))
    assert isinstance(d, Derive)
    assert d.param("end") == "00:00:02.000" and d.item_ids == ("ab" * 32, "cd" * 32)
    assert d.size == 10


ACCESS = [("case", "T-1"), ("item", "ab" * 32), ("by", "bob"), ("purpose", "p"), ("action", "view")]


@pytest.mark.parametrize(
    ("type_", "fields", "message"),
    [
        ("access", ACCESS[1:], "access entry has no 'case' field"),
        ("access", [f for f in ACCESS if f[0] != "by"], "access entry has no 'by' field"),
        (
            "access",
            [*ACCESS[:4], ("action", "print")],
            "access entry field 'action' is 'print', not one of view, export",
        ),
        (
            "ingest",
            [
                ("case", "T"),
                ("exhibit", "T/0001"),
                ("item", "ab"),
                ("name", "n"),
                ("size", "12a"),
                ("kind", "media"),
                ("by", "bob"),
            ],
            "ingest entry field 'size' is not a decimal number: '12a'",
        ),
        (
            "ingest",
            [
                ("case", "T"),
                ("exhibit", "T/0001"),
                ("item", "ab"),
                ("name", "n"),
                ("size", "012"),
                ("kind", "media"),
                ("by", "bob"),
            ],
            "ingest entry field 'size' is not a decimal number: '012'",
        ),
        (
            "ingest",
            [
                ("case", "T"),
                ("exhibit", "T/0001"),
                ("item", "ab"),
                ("name", "n"),
                ("size", "1"),
                ("kind", "video"),
                ("by", "bob"),
            ],
            "ingest entry field 'kind' is 'video', not one of media, attachment",
        ),
        (
            "key",
            [("action", "register"), ("party", "bob"), ("vkey", "x")],
            "key entry has no 'role' field",
        ),
        ("key", [("action", "rotate"), ("party", "bob")], "key entry has no 'vkey' field"),
        ("key", [("action", "lend"), ("party", "bob")], "unknown key action 'lend'"),
        (
            "consent",
            [("action", "grant"), ("owner", "a"), ("case", "T"), ("onward", "any")],
            "consent entry has no 'purpose' field",
        ),
        (
            "consent",
            [("action", "revoke"), ("owner", "a"), ("case", "T")],
            "consent entry has no 'consent' field",
        ),
        (
            "consent",
            [
                ("action", "grant"),
                ("owner", "a"),
                ("case", "T"),
                ("purpose", "p"),
                ("onward", "all"),
            ],
            "onward 'all' is not one of none, court, any",
        ),
        (
            "consent",
            [
                ("action", "grant"),
                ("owner", "a"),
                ("case", "T"),
                ("purpose", "p"),
                ("onward", "any"),
                ("until", "2026-02-30"),
            ],
            "'until' is not a date like 2026-12-31: '2026-02-30'",
        ),
        (
            "handoff",
            [("case", "T"), ("item", "ab"), ("from", "a"), ("to", "b"), ("purpose", "p")],
            "handoff entry has no 'offer' field",
        ),
        (
            "reject",
            [("case", "T"), ("from", "a"), ("to", "b"), ("offer", "o"), ("by", "b")],
            "reject entry has no 'reason' field",
        ),
        (
            "derive",
            [
                ("case", "T"),
                ("exhibit", "T/0002"),
                ("item", "cd"),
                ("name", "n"),
                ("size", 1),
                ("kind", "media"),
                ("parent", "ab"),
                ("op", "blur"),
                ("reason", "r"),
                ("by", "b"),
            ],
            "derive entry field 'op' is 'blur', not one of trim, redact, transcode",
        ),
    ],
)
def test_a_missing_or_malformed_field_is_named(
    type_: str, fields: list[tuple[str, str | int | None]], message: str
) -> None:
    with pytest.raises(FormatError) as info:
        parse_typed(Entry.build(type_, NOW, fields))
    assert info.value.message == message


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(FormatError, match="unknown entry type 'teleport'") as info:
        parse_typed(Entry.build("teleport", NOW, [("case", "T")]))
    assert info.value.hint is not None and "newer custody" in info.value.hint
    assert "teleport" not in REGISTRY


def test_a_class_refuses_an_entry_of_another_type() -> None:
    with pytest.raises(FormatError, match="a access entry is not a ingest entry"):
        Ingest.from_entry(Entry.build("access", NOW, ACCESS))


def test_build_lays_fields_out_in_the_spec_order() -> None:
    typed = build(Access, NOW, case="T-1", item="ab" * 32, by="bob", purpose="p", action="view")
    assert [k for k, _v in typed.entry.fields] == ["case", "item", "by", "purpose", "action"]
    assert parse_typed(typed.entry) == typed
