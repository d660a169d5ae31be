"""Number fields of typed entries accept ASCII digits only (fuzzing finding, issue 9).

str.isdigit() is true of superscripts such as '²', which int() refuses with ValueError;
a number field holding one must be the FormatError that names the field.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from custody.errors import FormatError
from custody.model.entry import Entry
from custody.model.types import Ingest, parse_typed

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _ingest(size: str) -> Entry:
    fields = [
        ("case", "T"),
        ("exhibit", "T/0001"),
        ("item", "ab" * 32),
        ("name", "clip.mp4"),
        ("size", size),
        ("kind", "media"),
        ("by", "bob"),
    ]
    return Entry.build("ingest", NOW, fields)


@pytest.mark.parametrize(
    "size",
    [
        "\u00b2",  # SUPERSCRIPT TWO: isdigit(), but int() refuses it
        "1\u00b2",
        "\u0663",  # ARABIC-INDIC DIGIT THREE: int() would read it as 3
        "\uff11",  # FULLWIDTH DIGIT ONE
        "9" * 5000,  # beyond int()'s 4300-digit limit
    ],
)
def test_non_ascii_or_overlong_number_is_a_format_error(size: str) -> None:
    with pytest.raises(FormatError) as info:
        parse_typed(_ingest(size))
    assert info.value.message == (
        f"ingest entry field 'size' is not a decimal number: {size[:40]!r}"
    )


def test_ascii_number_still_parses() -> None:
    typed = parse_typed(_ingest("12345"))
    assert isinstance(typed, Ingest)
    assert typed.size == 12345
