"""custody/entry/v1: the text of a log entry (docs/spec/entry.md).

A log entry is a C2SP signed note whose text is::

    custody/entry/v1
    type <event type>
    time <claimed time, RFC 3339 UTC, e.g. 2026-11-23T13:45:00Z>
    <key> <value>
    ...

followed by one signature line per signing party.  The Merkle leaf is the whole
note, signatures included, and the bytes are stored exactly as signed.

This module only encodes and parses; the event types and their fields are
`custody.model.types` (REGISTRY), the custody rules `custody.model.rules`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from custody.errors import FormatError
from custody.tlog.note import Note, Signer, sign_note

VERSION = "custody/entry/v1"
MAX_ENTRY_BYTES = 64 * 1024

_KEY_RE = re.compile(r"[a-z][a-z0-9._-]{0,63}")
_TIME_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def format_time(when: datetime) -> str:
    """RFC 3339 in UTC with seconds precision and a `Z` suffix: the only form entries use.

    Raises FormatError for a naive datetime: a claimed time must say its zone.
    """
    if when.tzinfo is None:
        raise FormatError("a claimed time must carry a time zone", hint="pass an aware datetime")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, field: str = "time") -> datetime:
    """Parse the strict `YYYY-MM-DDTHH:MM:SSZ` form; FormatError otherwise."""
    m = _TIME_RE.fullmatch(text)
    if m is None:
        raise FormatError(
            f"entry field '{field}' is not a UTC time like 2026-11-23T13:45:00Z: {text!r}"
        )
    try:
        y, mo, d, h, mi, sec = (int(g) for g in m.groups())
        return datetime(y, mo, d, h, mi, sec, tzinfo=UTC)
    except ValueError as exc:
        raise FormatError(f"entry field '{field}' is not a valid date: {text!r}") from exc


def _check_value(key: str, value: str) -> str:
    if not value or value != value.strip(" "):
        raise FormatError(
            f"entry field '{key}' must be non-empty without leading or trailing spaces"
        )
    if _CONTROL_RE.search(value):
        raise FormatError(f"entry field '{key}' contains a control character")
    return value


@dataclass(frozen=True)
class Entry:
    """The parsed text of one custody/entry/v1 entry.

    `fields` keeps every `key value` line after `type` and `time`, in order;
    a key may repeat (e.g. one `stream` line per media stream).  The
    constructor enforces the format, so a malformed Entry cannot exist.
    """

    type: str
    time: str
    fields: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not _KEY_RE.fullmatch(self.type):
            raise FormatError(f"entry type {self.type!r} is not a lower-case word")
        parse_time(self.time)
        for key, value in self.fields:
            if not _KEY_RE.fullmatch(key) or key in ("type", "time"):
                raise FormatError(f"entry field name {key!r} is not allowed")
            _check_value(key, value)

    @classmethod
    def build(
        cls, type: str, when: datetime, fields: Iterable[tuple[str, str | int | None]]
    ) -> Entry:
        """Build an entry, dropping fields whose value is None and formatting ints."""
        kept = tuple((k, str(v)) for k, v in fields if v is not None and v != "")
        return cls(type=type, time=format_time(when), fields=kept)

    @property
    def claimed_time(self) -> datetime:
        return parse_time(self.time)

    def get(self, key: str) -> str | None:
        """The first value of `key`, or None."""
        for k, v in self.fields:
            if k == key:
                return v
        return None

    def get_all(self, key: str) -> list[str]:
        return [v for k, v in self.fields if k == key]

    def require(self, key: str) -> str:
        """The first value of `key`; FormatError naming the field if it is absent."""
        value = self.get(key)
        if value is None:
            raise FormatError(f"{self.type} entry has no '{key}' field")
        return value

    def text(self) -> str:
        """The note text, exactly as signed (ends with a newline)."""
        lines = [VERSION, f"type {self.type}", f"time {self.time}"]
        lines.extend(f"{k} {v}" for k, v in self.fields)
        return "\n".join(lines) + "\n"

    @classmethod
    def parse_text(cls, text: str) -> Entry:
        """Parse note text into an Entry; FormatError names the line that is wrong."""
        if not text.endswith("\n"):
            raise FormatError("entry text does not end with a newline")
        lines = text[:-1].split("\n")
        if lines[0] != VERSION:
            raise FormatError(
                f"entry does not start with '{VERSION}' (found {lines[0][:40]!r})",
                hint="this entry was written by another tool or a newer version of custody",
            )
        if len(lines) < 3 or not lines[1].startswith("type ") or not lines[2].startswith("time "):
            raise FormatError("entry must have 'type' and 'time' as its 2nd and 3rd lines")
        fields: list[tuple[str, str]] = []
        for n, line in enumerate(lines[3:], start=4):
            key, sep, value = line.partition(" ")
            if not sep:
                raise FormatError(f"entry line {n} is not 'key value': {line[:60]!r}")
            fields.append((key, value))
        entry = cls(type=lines[1][5:], time=lines[2][5:], fields=tuple(fields))
        if entry.text() != text:  # e.g. doubled spaces: keep one canonical form
            raise FormatError("entry text is not in canonical form")
        return entry


@dataclass(frozen=True)
class SignedEntry:
    """An entry as it stands on the log: the exact bytes, their note, and the entry."""

    data: bytes
    note: Note
    entry: Entry

    @classmethod
    def parse(cls, data: bytes) -> SignedEntry:
        """Parse entry bytes (a signed note); FormatError if note or entry is malformed."""
        if len(data) > MAX_ENTRY_BYTES:
            raise FormatError(f"entry is {len(data)} bytes, over the {MAX_ENTRY_BYTES} limit")
        note = Note.parse(data)
        return cls(data=data, note=note, entry=Entry.parse_text(note.text))

    @property
    def signer_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.note.signatures)


def sign_entry(entry: Entry, signers: Sequence[Signer]) -> bytes:
    """The signed note bytes of `entry`, one signature line per signer, in order."""
    data = sign_note(entry.text(), signers)
    if len(data) > MAX_ENTRY_BYTES:
        raise FormatError(f"entry would be {len(data)} bytes, over the {MAX_ENTRY_BYTES} limit")
    return data
