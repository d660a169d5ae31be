"""Party names and log origins that cannot be mistaken for one another (custody.model.names)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody.errors import FormatError
from custody.model.entry import Entry, SignedEntry, sign_entry
from custody.model.names import (
    ORIGIN_MAX,
    PARTY_NAME_MAX,
    check_origin,
    check_party_name,
    find_confusable,
    skeleton,
)
from custody.model.parties import EntryError, Parties
from custody.tlog.note import Signer, check_key_name

CYRILLIC_E = "\u0435"  # looks like the Latin 'e'


@pytest.mark.parametrize(
    "name",
    ["det-jones", "owner-garcia", "lab1", "a", "0day", "bench_agency", "x.y", "a" * PARTY_NAME_MAX],
)
def test_party_names_that_are_allowed(name: str) -> None:
    assert check_party_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "is empty"),
        ("DET", "upper-case letter 'D'"),
        ("PeterNeumann", "upper-case letter 'P'"),
        (f"d{CYRILLIC_E}t", "non-ASCII character U+0435 at position 2"),
        ("caf\u00e9", "non-ASCII character U+00E9"),
        ("a" * (PARTY_NAME_MAX + 1), "65 characters long; at most 64"),
        ("a" * 300, "300 characters long"),
        ("-x", "starts with '-'"),
        (".x", "starts with '.'"),
        ("_x", "starts with '_'"),
        ("bad name", "character U+0020 at position 4"),
        ("a+b", "character '+' at position 2"),
        ("a/b", "character '/' at position 2"),
        ("\x1b[2J", "character U+001B at position 1"),
    ],
)
def test_party_names_that_are_refused(name: str, reason: str) -> None:
    with pytest.raises(FormatError, match="party name") as caught:
        check_party_name(name)
    assert reason in caught.value.message
    assert "\n" not in caught.value.message and "\x1b" not in caught.value.message


def test_note_key_names_keep_the_signed_note_rule() -> None:
    # The party-name rule is for names custody registers: a signed note by the
    # x/mod test key still parses.
    assert check_key_name("PeterNeumann") == "PeterNeumann"
    assert check_key_name("agency.example/officer-7") == "agency.example/officer-7"


@pytest.mark.parametrize(
    "origin",
    [
        "test.example/custody",
        "metro-police.example/custody",
        "garcia.example/doorbell-log",
        "other",
        "a/b/c_d",
        "a" * ORIGIN_MAX,
    ],
)
def test_origins_that_are_allowed(origin: str) -> None:
    assert check_origin(origin) == origin


@pytest.mark.parametrize(
    ("origin", "reason"),
    [
        ("", "is empty"),
        ("Metro.example/custody", "upper-case letter 'M'"),
        (f"m{CYRILLIC_E}tro.example/custody", "non-ASCII character U+0435"),
        ("a" * (ORIGIN_MAX + 1), "129 characters long; at most 128"),
        ("/custody", "starts with '/'"),
        ("a//b", "empty path segment"),
        ("a/b/", "empty path segment"),
        ("https://x.example/log", "character ':' at position 6"),
        ("x+y", "character '+'"),
        ("x y", "character U+0020"),
    ],
)
def test_origins_that_are_refused(origin: str, reason: str) -> None:
    with pytest.raises(FormatError, match="log origin") as caught:
        check_origin(origin)
    assert reason in caught.value.message


@pytest.mark.parametrize(
    "lookalike",
    [
        "DET",
        "Det",
        f"d{CYRILLIC_E}t",  # Cyrillic e
        "\uff44\uff45\uff54",  # fullwidth
        "d\u00e9t",  # an accent
        "d\u0395T",  # Greek capital epsilon
    ],
)
def test_skeletons_of_lookalikes(lookalike: str) -> None:
    assert skeleton(lookalike) == "det"


def test_find_confusable() -> None:
    existing = ["alice", "DET", "bob"]
    assert find_confusable("det", existing) == "DET"
    assert find_confusable(f"d{CYRILLIC_E}t", ["det"]) == "det"
    assert find_confusable("det", ["det"]) is None  # the same name is a different question
    assert find_confusable("carol", existing) is None
    assert find_confusable("\u0412\u041e\u0412", ["bob"]) == "bob"  # Cyrillic capitals
    # Cyrillic д is not drawn like a Latin d: this name does not pass for 'det'.
    assert find_confusable("\u0434\u0435\u0442", ["det"]) is None


_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-._"


@given(st.text(alphabet=_NAME_CHARS, min_size=1, max_size=PARTY_NAME_MAX))
def test_allowed_names_are_their_own_skeletons(name: str) -> None:
    # So two different names under the rule never look alike.
    try:
        check_party_name(name)
    except FormatError:
        assert name[0] in "-._"
        return
    assert skeleton(name) == name


@given(st.text(max_size=80))
def test_the_rule_only_raises_format_errors(name: str) -> None:
    try:
        assert check_party_name(name) == name
    except FormatError as exc:
        assert "\n" not in exc.message


def _register(name: str) -> bytes:
    signer = Signer.from_seed(name, bytes(range(32)))
    entry = Entry.build(
        "key",
        datetime(2026, 11, 23, tzinfo=UTC),
        [
            ("action", "register"),
            ("party", name),
            ("role", "agency"),
            ("vkey", signer.verifier_key.encode()),
        ],
    )
    return sign_entry(entry, [signer])


@pytest.mark.parametrize("name", ["DET", f"d{CYRILLIC_E}t", "a" * 65])
def test_the_key_rule_refuses_registering_a_bad_name(name: str) -> None:
    with pytest.raises(EntryError, match="log entry 3: party name"):
        Parties().apply(3, SignedEntry.parse(_register(name)).entry)


def test_the_key_rule_registers_a_good_name() -> None:
    parties = Parties()
    parties.apply(0, SignedEntry.parse(_register("det-jones")).entry)
    assert parties.current("det-jones") is not None
