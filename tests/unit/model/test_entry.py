"""custody/entry/v1: encoding, parsing and its refusals (docs/spec/entry.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody.errors import FormatError
from custody.model.entry import Entry, SignedEntry, format_time, parse_time, sign_entry
from custody.tlog.note import Signer

WHEN = datetime(2026, 11, 23, 13, 45, tzinfo=UTC)
BOB = Signer.from_seed("bob", bytes(range(32)))


def test_text_is_exactly_as_specified() -> None:
    e = Entry.build(
        "ingest",
        WHEN,
        [
            ("case", "2026-0142"),
            ("size", 10),
            ("ref", None),
            ("stream", "0 video"),
            ("stream", "1 audio"),
        ],
    )
    assert e.text() == (
        "custody/entry/v1\ntype ingest\ntime 2026-11-23T13:45:00Z\n"
        "case 2026-0142\nsize 10\nstream 0 video\nstream 1 audio\n"
    )
    assert e.get_all("stream") == ["0 video", "1 audio"] and e.get("ref") is None
    assert Entry.parse_text(e.text()) == e


def test_signed_entry_round_trip() -> None:
    e = Entry.build("access", WHEN, [("by", "bob")])
    data = sign_entry(e, [BOB])
    parsed = SignedEntry.parse(data)
    assert parsed.entry == e and parsed.signer_names == ("bob",) and parsed.data == data


def test_times_are_utc_seconds() -> None:
    assert format_time(datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))) == (
        "2026-01-01T00:00:00Z"
    )
    with pytest.raises(FormatError):
        format_time(datetime(2026, 1, 1))  # naive: no zone
    for bad in ("2026-11-23 13:45:00Z", "2026-11-23T13:45:00+00:00", "2026-13-01T00:00:00Z"):
        with pytest.raises(FormatError):
            parse_time(bad)


@pytest.mark.parametrize(
    "text",
    [
        "custody/entry/v2\ntype x\ntime 2026-11-23T13:45:00Z\n",
        "custody/entry/v1\ntime 2026-11-23T13:45:00Z\ntype x\n",
        "custody/entry/v1\ntype X\ntime 2026-11-23T13:45:00Z\n",
        "custody/entry/v1\ntype x\ntime 2026-11-23T13:45:00Z\nkey\n",
        "custody/entry/v1\ntype x\ntime 2026-11-23T13:45:00Z\nkey  two spaces\n",
        "custody/entry/v1\ntype x\ntime 2026-11-23T13:45:00Z\nKey v\n",
        "custody/entry/v1\ntype x\ntime 2026-11-23T13:45:00Z\nkey v\r\n",
        "custody/entry/v1\ntype x\ntime 2026-11-23T13:45:00Z\ntype again\n",
        "custody/entry/v1\ntype x\ntime 2026-11-23T13:45:00Z\nk v",
    ],
)
def test_malformed_text_is_refused(text: str) -> None:
    with pytest.raises(FormatError):
        Entry.parse_text(text)


def test_oversized_entries_are_refused() -> None:
    big = Entry.build("access", WHEN, [("notes", "x" * 70_000)])
    with pytest.raises(FormatError, match="64"):
        sign_entry(big, [BOB])


values = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\x7f"),
        min_size=1,
        max_size=40,
    )
    .map(lambda s: s.strip(" "))
    .filter(bool)
)
keys = st.from_regex(r"[a-z][a-z0-9._-]{0,10}", fullmatch=True).filter(
    lambda k: k not in ("type", "time")
)


@given(st.lists(st.tuples(keys, values), max_size=8))
def test_round_trip_any_fields(fields: list[tuple[str, str]]) -> None:
    e = Entry(type="access", time="2026-11-23T13:45:00Z", fields=tuple(fields))
    assert Entry.parse_text(e.text()) == e
