"""Party names and log origins that cannot be mistaken for one another (pure).

A party's name is printed in every history, report and bundle, and a log's origin
names the log in every checkpoint: two names that look the same on a screen (`DET`
and `det`, or `det` with a Cyrillic `е`) would let one party pass for another.  So
custody registers only names drawn from a small ASCII alphabet
(docs/spec/entry.md §key and docs/spec/keyfile.md):

- a party name is 1 to 64 characters of lower-case ASCII letters, digits, `-`, `.`
  and `_`, starting with a letter or a digit (`det-jones`, `owner-garcia`, `lab1`);
- a log origin is the C2SP tlog-checkpoint origin, a schema-less URL `host/path`:
  1 to 128 characters of the same alphabet plus `/`, starting with a letter or a
  digit, with no empty path segment (`metro-police.example/custody`).

Within that alphabet, two different names never look alike, so the rule alone keeps
the names registered under it apart.  Names registered before it, or carried in from
elsewhere, may be anything a signed-note key name allows: `skeleton` maps a name to
the form it is read as (case folded, compatibility characters and accents dropped,
Cyrillic and Greek letters that look Latin replaced by the Latin ones), and a new
name whose skeleton is that of an existing name is refused (`find_confusable`).

These rules are for names custody creates; signed notes in general keep the
c2sp.org/signed-note rule (`custody.tlog.note.check_key_name`), so a note by a key
such as `PeterNeumann` still parses.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from custody.errors import FormatError

PARTY_NAME_MAX = 64
ORIGIN_MAX = 128

_PARTY_CHARS = "lower-case ASCII letters, digits, '-', '.' and '_'"
_ORIGIN_CHARS = "lower-case ASCII letters, digits, '-', '.', '_' and '/'"
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")

# Letters of other scripts that are drawn like a Latin letter (a subset of Unicode
# TR39's confusables, the ones a keyboard layout or a copy-paste actually produces),
# and punctuation drawn like the ASCII punctuation that names allow.  Both cases are
# listed because the mapping is applied before case folding: a capital Cyrillic `В`
# reads as `B`, while its lower case `в` does not read as `b`.
_CONFUSABLES = str.maketrans(
    {
        # Cyrillic
        "А": "A", "а": "a", "В": "B", "Е": "E", "е": "e", "К": "K", "к": "k",
        "М": "M", "Н": "H", "О": "O", "о": "o", "Р": "P", "р": "p", "С": "C",
        "с": "c", "Т": "T", "У": "Y", "у": "y", "Х": "X", "х": "x", "Ѕ": "S",
        "ѕ": "s", "І": "I", "і": "i", "Ј": "J", "ј": "j", "ԁ": "d", "Һ": "h",
        "һ": "h", "ԛ": "q", "ԝ": "w", "Ү": "Y", "ү": "y", "Ӏ": "l", "ӏ": "l",
        "Ԍ": "G", "ԍ": "g", "Ѵ": "V", "ѵ": "v",
        # Greek
        "Α": "A", "α": "a", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I",
        "ι": "i", "Κ": "K", "κ": "k", "Μ": "M", "Ν": "N", "ν": "v", "Ο": "O",
        "ο": "o", "Ρ": "P", "ρ": "p", "Τ": "T", "Υ": "Y", "υ": "u", "Χ": "X",
        "χ": "x", "ϲ": "c", "ϳ": "j",
        # Latin letters that read as other Latin letters
        "ı": "i", "ȷ": "j", "ɡ": "g", "ɑ": "a", "ɩ": "i", "ʟ": "L",
        # Punctuation
        "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-",
        "․": ".", "·": ".", "⁄": "/", "∕": "/",
    }
)  # fmt: skip


def _char(ch: str) -> str:
    """How a character is named in an error: itself when printable ASCII, else its code
    point (U+00E9 for "é")."""
    if " " < ch < "\x7f":
        return f"'{ch}'"
    return f"U+{ord(ch):04X}"


def _check(name: str, what: str, maximum: int, punctuation: str, chars: str) -> str:
    if not isinstance(name, str):
        raise FormatError(f"{what} is not a string")
    if not name:
        raise FormatError(f"{what} is empty", hint=f"a {what} is {chars}")
    if len(name) > maximum:
        raise FormatError(
            f"{what} is {len(name)} characters long; at most {maximum} are allowed",
            hint=f"a {what} is {chars}",
        )
    shown = name if name.isascii() and name.isprintable() else ascii(name)[1:-1]
    for position, ch in enumerate(name, start=1):
        if ch in _ALNUM:
            continue
        if ch in punctuation:
            if position == 1:
                raise FormatError(
                    f"{what} '{shown}' starts with {_char(ch)}",
                    hint=f"a {what} starts with a letter or a digit",
                )
            continue
        if ch.isupper() and ch.lower() in _ALNUM:
            raise FormatError(
                f"{what} '{shown}' has the upper-case letter {_char(ch)}",
                hint=f"use lower case ('{name.lower()}'): a {what} is {chars}",
            )
        if not ch.isascii():
            raise FormatError(
                f"{what} '{shown}' has the non-ASCII character {_char(ch)} at position {position}",
                hint=f"a {what} is {chars}, so that no two names look alike",
            )
        raise FormatError(
            f"{what} '{shown}' has the character {_char(ch)} at position {position}",
            hint=f"a {what} is {chars}",
        )
    return name


def check_party_name(name: str) -> str:
    """Return `name` if custody may register it as a party, else raise FormatError.

    A party name is 1 to 64 characters of lower-case ASCII letters, digits, `-`, `.`
    and `_`, starting with a letter or a digit (see the module doc).  The error names
    the first character that breaks the rule and where it is.
    """
    return _check(name, "party name", PARTY_NAME_MAX, "-._", _PARTY_CHARS)


def check_origin(origin: str) -> str:
    """Return `origin` if custody may create a log with it, else raise FormatError.

    A log origin (c2sp.org/tlog-checkpoint) is 1 to 128 characters of lower-case
    ASCII letters, digits, `-`, `.`, `_` and `/`, starting with a letter or a digit,
    with no empty path segment (no `//`, no `/` at the end).
    """
    _check(origin, "log origin", ORIGIN_MAX, "-._/", _ORIGIN_CHARS)
    if "//" in origin or origin.endswith("/"):
        raise FormatError(
            f"log origin '{origin}' has an empty path segment",
            hint="a log origin is e.g. 'metro-police.example/custody'",
        )
    return origin


def skeleton(name: str) -> str:
    """The form `name` is read as, for telling whether two names look alike.

    Letters of other scripts drawn like Latin letters become the Latin ones, then
    compatibility characters are replaced (NFKC: fullwidth `ｄ` is `d`), accents are
    dropped and case is folded.  A name that keeps the party-name or origin rule is
    its own skeleton, so two different names under the rule never collide.
    """
    mapped = unicodedata.normalize("NFKD", name.translate(_CONFUSABLES))
    bare = "".join(ch for ch in mapped if not unicodedata.combining(ch))
    return unicodedata.normalize("NFKC", bare.translate(_CONFUSABLES)).casefold()


def find_confusable(name: str, existing: Iterable[str]) -> str | None:
    """The first of `existing` that is not `name` but looks like it, or None."""
    wanted = skeleton(name)
    for other in existing:
        if other != name and skeleton(other) == wanted:
            return other
    return None
