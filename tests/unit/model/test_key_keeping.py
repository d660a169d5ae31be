"""Where a party's private key is kept: the `kept` fields of `key` entries (entry.md §key),
the caveat sentences (custody.model.describe) and `Keeping` over a log's key entries."""

from __future__ import annotations

import pytest

from custody.errors import FormatError
from custody.model.describe import describe, keeping, signed_with_shared_key
from custody.model.entry import Entry
from custody.model.timeline import Event, Keeping
from custody.model.types import KeyEvent, kept_fields, parse_typed

TIME = "2026-11-23T13:36:50Z"
VKEY = "owner-garcia+264da313+AfvikqVrAqRmza6hwsCLc8DwajCV2OYwxTGXg2VSxpBA"
ORIGIN = "metro-police.example/custody"


def _key(*kept: tuple[str, str], party: str = "owner-garcia", action: str = "register") -> Entry:
    fields = [("action", action), ("party", party)]
    if action == "register":
        fields.append(("role", "owner"))
    if action != "revoke":
        fields.append(("vkey", VKEY))
    return Entry("key", TIME, (*fields, *kept))


def _consent(owner: str = "owner-garcia") -> Entry:
    return Entry(
        "consent",
        TIME,
        (
            ("action", "grant"),
            ("owner", owner),
            ("case", "C1"),
            ("purpose", "x"),
            ("onward", "none"),
        ),
    )


def _handoff() -> Entry:
    return Entry(
        "handoff",
        TIME,
        (
            ("case", "C1"),
            ("item", "ab" * 32),
            ("from", "det-jones"),
            ("to", "clerk-okafor"),
            ("purpose", "trial"),
            ("offer", "cd" * 32),
        ),
    )


def _typed(entry: Entry) -> KeyEvent:
    typed = parse_typed(entry)
    assert isinstance(typed, KeyEvent)
    return typed


# -- building the fields from a home's key files ------------------------------------------


def test_a_key_alone_in_its_home_is_kept_own_and_names_the_log_key() -> None:
    fields = kept_fields(
        "owner-garcia", ["owner-garcia", "garcia.example/log"], "garcia.example/log"
    )
    assert fields == [("kept", "own"), ("kept-log", "garcia.example/log")]
    assert kept_fields("owner-garcia", []) == [("kept", "own")]


def test_other_party_keys_make_it_shared_counted_and_retired_files_do_not_count() -> None:
    names = ["zed", "det-jones", "owner-garcia", ORIGIN, "det-jones.0a1b2c3d.retired", ".x.new"]
    assert kept_fields("owner-garcia", names, ORIGIN) == [
        ("kept", "shared"),
        ("kept-others", "2"),
        ("kept-log", ORIGIN),
    ]
    # Deterministic, and no other party is named (a key entry travels in every bundle).
    assert kept_fields("owner-garcia", list(reversed(names)), ORIGIN) == kept_fields(
        "owner-garcia", names, ORIGIN
    )
    assert "zed" not in str(kept_fields("owner-garcia", names, ORIGIN))


def test_held_by_implies_shared_even_alone() -> None:
    assert kept_fields("owner-garcia", ["owner-garcia"], held_by="det-jones") == [
        ("kept", "shared"),
        ("held-by", "det-jones"),
    ]


@pytest.mark.parametrize("bad", ["owner-garcia", "Det", "det jones", ""])
def test_a_bad_held_by_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(FormatError, match="held-by"):
        kept_fields("owner-garcia", [], held_by=bad)


# -- parsing, building, round trip --------------------------------------------------------


def test_fields_round_trip_through_the_canonical_text() -> None:
    entry = _key(
        ("kept", "shared"),
        ("kept-others", "2"),
        ("kept-log", ORIGIN),
        ("held-by", "det-jones"),
    )
    typed = _typed(Entry.parse_text(entry.text()))
    assert typed.kept == "shared" and typed.others == 2
    assert typed.kept_log == ORIGIN and typed.held_by == "det-jones"
    rebuilt = Entry.build("key", entry.claimed_time, typed.fields())
    assert rebuilt.text() == entry.text()


def test_an_entry_without_the_fields_still_parses_and_says_not_recorded() -> None:
    typed = _typed(_key())
    assert typed.kept is None and typed.others == 0 and typed.held_by is None
    assert keeping(typed) == "where the key was kept is not recorded"
    assert describe(_key()) == "key of owner-garcia registered (owner)"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ((("kept", "alone"),), "'kept'"),
        ((("kept", "own"), ("kept-others", "1")), "'kept'"),
        ((("kept", "shared"),), "'kept'"),
        ((("kept-others", "1"),), "'kept-others'"),
        ((("held-by", "det-jones"),), "'held-by'"),
        ((("kept-log", ORIGIN),), "'kept-log'"),
        ((("kept", "shared"), ("kept-others", "0")), "'kept-others'"),
        ((("kept", "shared"), ("kept-others", "01")), "'kept-others'"),
        ((("kept", "shared"), ("kept-others", "two")), "'kept-others'"),
        ((("kept", "shared"), ("held-by", "owner-garcia")), "'held-by'"),
        ((("kept", "shared"), ("held-by", "det jones")), "'held-by'"),
        ((("kept", "own"), ("kept-log", "bad//origin")), "'kept-log'"),
    ],
)
def test_bad_values_are_refused_naming_the_field(
    fields: tuple[tuple[str, str], ...], named: str
) -> None:
    with pytest.raises(FormatError, match=named):
        parse_typed(_key(*fields))


def test_kept_is_refused_on_a_revoke_entry() -> None:
    entry = Entry("key", TIME, (("action", "revoke"), ("party", "x"), ("kept", "own")))
    with pytest.raises(FormatError, match="'kept'"):
        parse_typed(entry)


# -- sentences ----------------------------------------------------------------------------


def test_key_sentences_say_where_the_key_was_kept() -> None:
    shared = _key(("kept", "shared"), ("kept-others", "1"), ("kept-log", ORIGIN))
    assert describe(shared) == (
        "key of owner-garcia registered (owner); kept in a home shared with another "
        f"party's key (with the log key of {ORIGIN})"
    )
    own = _key(("kept", "own"))
    assert describe(own) == (
        "key of owner-garcia registered (owner); kept in a home holding no other party's key"
    )
    held = _key(("kept", "shared"), ("kept-others", "2"), ("held-by", "det-jones"), action="rotate")
    assert describe(held) == (
        "key of owner-garcia rotated; held by det-jones, in a home that also held "
        "2 other parties' keys"
    )


def test_a_consent_signed_with_a_shared_key_has_the_caveat() -> None:
    key = _typed(_key(("kept", "shared"), ("kept-others", "1"), ("kept-log", ORIGIN)))
    assert signed_with_shared_key(_consent(), "owner-garcia", key) == (
        "owner-garcia's consent was signed with a key kept in a home shared with another "
        "party's key"
    )
    held = _typed(_key(("kept", "shared"), ("held-by", "det-jones")))
    assert signed_with_shared_key(_consent(), "owner-garcia", held) == (
        "owner-garcia's consent was signed with a key held by det-jones"
    )


def test_a_consent_signed_with_an_own_key_has_none_and_unrecorded_says_so() -> None:
    assert signed_with_shared_key(_consent(), "owner-garcia", _typed(_key(("kept", "own")))) is None
    assert signed_with_shared_key(_consent(), "owner-garcia", _typed(_key())) == (
        "where the key that signed owner-garcia's consent was kept is not recorded"
    )
    assert signed_with_shared_key(_consent(), "owner-garcia", None) is None


def test_only_the_receivers_acceptance_of_a_handoff_is_flagged() -> None:
    held = _typed(_key(("kept", "shared"), ("held-by", "det-jones"), party="clerk-okafor"))
    assert signed_with_shared_key(_handoff(), "clerk-okafor", held) == (
        "clerk-okafor's acceptance was signed with a key held by det-jones"
    )
    assert signed_with_shared_key(_handoff(), "det-jones", held) is None


# -- Keeping over a log's key entries -----------------------------------------------------


def test_keeping_uses_the_key_in_force_at_the_entry() -> None:
    log = [
        (0, _key(("kept", "own"))),
        (2, _key(("kept", "shared"), ("held-by", "det-jones"), action="rotate")),
        (4, _key(("kept", "own"), action="rotate")),
    ]
    k = Keeping.of(log)

    def caveats(index: int) -> list[str]:
        return k.caveats(Event(index, "consent", TIME, ("owner-garcia",), _consent().fields))

    assert caveats(1) == []
    assert caveats(3) == ["owner-garcia's consent was signed with a key held by det-jones"]
    assert caveats(5) == []
    assert k.key_at("nobody", 3) is None
