"""custody/entry/v1: the text of a log entry (docs/spec/entry.md).

A log entry is a C2SP signed note whose text is::

    custody/entry/v1
    type <event type>
    time <claimed time, RFC 3339 UTC, e.g. 2026-11-23T13:45:00Z>
    <key> <value>
    ...

followed by one signature line per signing party.  The Merkle leaf is the whole
note, signatures included, and the bytes are stored exactly as signed.

A signature line is Ed25519 (type 0x01, 64 signature bytes) or, for the receiver's
countersignature of a handoff, a C2SP cosignature/v1 (type 0x04, 72 bytes: a u64
timestamp and an Ed25519 signature over ``cosignature/v1\ntime <t>\n`` + the text);
`SignedEntry.countersignatures` exposes those, `countersign_entry` makes one.

This module only encodes and parses; the event types and their fields are
`custody.model.types` (REGISTRY), the custody rules `custody.model.rules`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from custody.errors import FormatError
from custody.tlog.note import (
    ALG_COSIGNATURE_V1,
    Note,
    NoteSignature,
    Signer,
    append_signatures,
    cosignature_message,
    key_id,
    sign_note,
)

VERSION = "custody/entry/v1"
MAX_ENTRY_BYTES = 64 * 1024

_KEY_RE = re.compile(r"[a-z][a-z0-9._-]{0,63}")
_TIME_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_COSIGNATURE_SIZE = 8 + 64  # u64 timestamp || Ed25519 signature (c2sp.org/tlog-cosignature)
MAX_COSIGNATURE_TIME = 253402300799  # 9999-12-31T23:59:59Z, the last second a `time` line holds


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
class Countersignature:
    """A cosignature/v1 signature line on an entry (not verified here).

    `name` and `key_id` are the line's key name and 4-byte key id (of type 0x04:
    `cosignature_key_id`), `timestamp` the POSIX seconds it claims to have been made
    at, `signature` the whole line.
    """

    name: str
    key_id: bytes
    timestamp: int
    signature: NoteSignature

    @property
    def time(self) -> datetime:
        """`timestamp` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp, UTC)


def cosignature_key_id(name: str, public: bytes) -> bytes:
    """The key id of the cosignature/v1 (type 0x04) key of an Ed25519 public key."""
    return key_id(name, ALG_COSIGNATURE_V1, public)


def _countersignature(sig: NoteSignature) -> Countersignature | None:
    if len(sig.signature) != _COSIGNATURE_SIZE:
        return None  # an Ed25519 line (64 bytes), or one that verifies under no key
    timestamp = int.from_bytes(sig.signature[:8], "big")
    if timestamp > MAX_COSIGNATURE_TIME:
        raise FormatError(
            f"countersignature by '{sig.name}' claims a time after 9999-12-31T23:59:59Z",
            hint="a cosignature/v1 timestamp is POSIX seconds",
        )
    return Countersignature(sig.name, sig.key_id, timestamp, sig)


@dataclass(frozen=True)
class SignedEntry:
    """An entry as it stands on the log: the exact bytes, their note, and the entry.

    `countersignatures` are its cosignature/v1 lines (72-byte signatures), in order.
    """

    data: bytes
    note: Note
    entry: Entry
    countersignatures: tuple[Countersignature, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> SignedEntry:
        """Parse entry bytes (a signed note); FormatError if note or entry is malformed
        (a cosignature/v1 line with a timestamp past year 9999 included)."""
        if len(data) > MAX_ENTRY_BYTES:
            raise FormatError(f"entry is {len(data)} bytes, over the {MAX_ENTRY_BYTES} limit")
        note = Note.parse(data)
        entry = Entry.parse_text(note.text)
        cosigs = tuple(c for c in map(_countersignature, note.signatures) if c is not None)
        return cls(data=data, note=note, entry=entry, countersignatures=cosigs)

    @property
    def signer_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.note.signatures)

    def countersignature_by(self, name: str) -> Countersignature | None:
        """The first cosignature/v1 line by `name`, or None."""
        return next((c for c in self.countersignatures if c.name == name), None)


def sign_entry(entry: Entry, signers: Sequence[Signer]) -> bytes:
    """The signed note bytes of `entry`, one signature line per signer, in order."""
    data = sign_note(entry.text(), signers)
    if len(data) > MAX_ENTRY_BYTES:
        raise FormatError(f"entry would be {len(data)} bytes, over the {MAX_ENTRY_BYTES} limit")
    return data


def countersign_entry(data: bytes, signer: Signer, when: datetime) -> bytes:
    """Append a cosignature/v1 line by `signer`, made at `when`, to signed entry bytes.

    The line is ``— <name> base64(key id || u64 timestamp || Ed25519 signature)`` with
    the type-0x04 key id of the signer's key (`cosignature_key_id`), signing
    ``cosignature/v1\ntime <timestamp>\n`` + the entry text (c2sp.org/tlog-cosignature).
    `when` is cut to whole seconds.  The existing bytes are kept exactly.  Raises
    FormatError for a malformed entry or a naive `when`, InputError if `signer` has
    already countersigned.
    """
    if when.tzinfo is None:
        raise FormatError("a countersignature time must carry a time zone")
    timestamp = int(when.timestamp())
    if not 0 <= timestamp <= MAX_COSIGNATURE_TIME:
        raise FormatError(f"countersignature time {format_time(when)} is out of range")
    signed = SignedEntry.parse(data)
    message = cosignature_message(signed.note.text.encode("utf-8"), timestamp)
    payload = timestamp.to_bytes(8, "big") + signer.sign(message)
    line = NoteSignature(signer.name, cosignature_key_id(signer.name, signer.public), payload)
    out = append_signatures(data, [line])
    if len(out) > MAX_ENTRY_BYTES:
        raise FormatError(f"entry would be {len(out)} bytes, over the {MAX_ENTRY_BYTES} limit")
    return out
