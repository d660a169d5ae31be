"""C2SP signed notes: Ed25519 keys, key ids, verifier keys, signing and opening notes.

Implements c2sp.org/signed-note (v1.0.0) and the key encodings of Go's
golang.org/x/mod/sumdb/note; the byte-level description is docs/spec/signed-note.md.

A signed note is UTF-8 text ending in a newline, a blank line, then one or more
signature lines ``— <key name> base64(key id || signature)``.  A key is named by
the pair (key name, key id), where ``key id = SHA-256(name || 0x0A || alg || public)[:4]``.

Two signature types are understood:

* ``0x01`` (`ALG_ED25519`): Ed25519 over the note text (signed-note).
* ``0x04`` (`ALG_COSIGNATURE_V1`): a timestamped Ed25519 witness cosignature
  (c2sp.org/tlog-cosignature); the signature bytes are ``u64 timestamp || ed25519``
  and the signed message is ``cosignature/v1\\ntime <timestamp>\\n`` + the note text.

Where custody is stricter than x/mod (canonical base64, printable key names,
every signature by a known key is verified) docs/spec/signed-note.md says so.

Nothing here reads a clock; `Signer.generate` is the only source of randomness.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)

from custody.errors import FormatError, InputError, VerificationError

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "COSIGNATURE_V1_HEADER",
    "MAX_SIGNATURES",
    "MAX_TIMESTAMP",
    "Note",
    "NoteSignature",
    "SignatureError",
    "Signer",
    "UnverifiedNoteError",
    "VerifiedNote",
    "VerifierKey",
    "add_signatures",
    "append_signatures",
    "check_key_name",
    "check_note_text",
    "cosignature_message",
    "key_id",
    "open_note",
    "sign_note",
]

ALG_ED25519 = 0x01
"""Signature type byte for Ed25519 note signatures (c2sp.org/signed-note)."""

ALG_COSIGNATURE_V1 = 0x04
"""Signature type byte for timestamped Ed25519 cosignatures (c2sp.org/tlog-cosignature)."""

COSIGNATURE_V1_HEADER = b"cosignature/v1\n"
"""First line of the message a cosignature/v1 signs (domain separation)."""

MAX_SIGNATURES = 100
"""Most signature lines a note may carry (x/mod's limit; the spec requires at least 16)."""

MAX_TIMESTAMP = 2**63 - 1
"""Largest cosignature timestamp allowed by c2sp.org/tlog-cosignature."""

_KNOWN_ALGS = (ALG_ED25519, ALG_COSIGNATURE_V1)
_ED25519_PUBLIC_SIZE = 32
_ED25519_SEED_SIZE = 32
_ED25519_SIGNATURE_SIZE = 64
_TIMESTAMP_SIZE = 8
_KEY_ID_SIZE = 4

_SIG_PREFIX = "\u2014 "  # em dash, space
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
# Signed notes may contain no ASCII control character other than newline.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")

_FORMAT_HINT = (
    "a signed note is text ending in a newline, a blank line, then lines '— <key name> <base64>'"
)
_ALG_HINT = "custody understands signature types 0x01 (Ed25519) and 0x04 (cosignature/v1)"
_VKEY_HINT = "a verifier key looks like 'name+<8 hex digits>+<base64 of type byte and public key>'"


class SignatureError(VerificationError):
    """A signature by a known key did not verify.

    `key_name` and `key_id` (4 bytes) name the key whose signature failed.
    """

    def __init__(self, key_name: str, key_id: bytes, reason: str | None = None) -> None:
        self.key_name = key_name
        self.key_id = key_id
        what = f"invalid signature by key {key_name}+{key_id.hex()}"
        super().__init__(
            f"{what}: {reason}" if reason else what,
            hint="the signed bytes were altered after signing, or the signature is not by this key",
        )


class UnverifiedNoteError(VerificationError):
    """A well-formed note carries no signature by any of the keys the caller trusts."""


# ---------------------------------------------------------------------------
# Small helpers


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    """Decode canonical standard base64 (RFC 4648 §4, padded), or raise FormatError.

    Canonical means re-encoding gives the same text: a value has exactly one
    spelling, so signed bytes cannot be varied without changing what they say.
    """
    if not text:
        raise FormatError(f"{what} is empty")
    try:
        raw = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise FormatError(
            f"{what} is not valid base64", hint="use standard padded base64 (RFC 4648 §4)"
        ) from None
    if _b64encode(raw) != text:
        raise FormatError(
            f"{what} is not canonical base64", hint="re-encode it with standard padded base64"
        )
    return raw


def _describe_char(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def check_key_name(name: str) -> str:
    """Return `name` if it is a valid key name, else raise FormatError.

    c2sp.org/signed-note: key names are non-empty and contain no Unicode space and
    no plus (U+002B).  custody also requires every character to be printable
    (no control or format characters, no lone surrogates), so a name always
    prints as what it is.
    """
    if not isinstance(name, str):
        raise FormatError("key name is not a string")
    if not name:
        raise FormatError("key name is empty", hint="a key name is e.g. 'example.org/log'")
    if name.isprintable() and "+" not in name and not any(ch.isspace() for ch in name):
        return name  # the common case, checked without the per-character diagnosis below
    for ch in name:
        if ch == "+":
            raise FormatError(
                f"key name {name!r} contains '+'", hint="key names may not contain '+'"
            )
        if ch.isspace():
            raise FormatError(
                f"key name {name!r} contains a space ({_describe_char(ch)})",
                hint="key names may not contain spaces",
            )
        if not ch.isprintable():
            raise FormatError(
                f"key name {name!r} contains a non-printable character ({_describe_char(ch)})",
                hint="key names must be printable UTF-8",
            )
    return name


def check_note_text(text: str) -> str:
    """Return `text` if it can be the text of a signed note, else raise FormatError.

    c2sp.org/signed-note: the text ends in a newline, is valid UTF-8 and contains
    no ASCII control character other than newline.
    """
    if not text.endswith("\n"):
        raise FormatError("note text does not end in a newline", hint=_FORMAT_HINT)
    m = _CONTROL.search(text)
    if m:
        raise FormatError(
            f"note text contains control character {_describe_char(m.group())} "
            f"at offset {m.start()}",
            hint="only newline (U+000A) is allowed below U+0020",
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise FormatError(f"note text is not valid Unicode at offset {e.start}") from None
    return text


def key_id(name: str, alg: int, public: bytes) -> bytes:
    """The 4-byte key id of a key: ``SHA-256(name || 0x0A || alg || public)[:4]``.

    c2sp.org/signed-note, "Signatures".  Raises FormatError if `alg` is not a byte.
    """
    if not 0 <= alg <= 0xFF:
        raise FormatError(f"signature type {alg} is not a byte")
    h = hashlib.sha256()
    h.update(name.encode("utf-8"))
    h.update(b"\n")
    h.update(bytes([alg]))
    h.update(public)
    return h.digest()[:_KEY_ID_SIZE]


def cosignature_message(text: bytes, timestamp: int) -> bytes:
    """The message a cosignature/v1 signs: header, ``time <timestamp>`` line, note text.

    c2sp.org/tlog-cosignature, "Ed25519 signed message".  `text` is the whole
    checkpoint body including its final newline.  Raises InputError if the
    timestamp is outside 0 .. 2**63-1.
    """
    if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InputError(f"cosignature timestamp {timestamp} is outside 0..2^63-1")
    return COSIGNATURE_V1_HEADER + b"time %d\n" % timestamp + text


# ---------------------------------------------------------------------------
# Keys


@dataclass(frozen=True)
class VerifierKey:
    """A public key a note signature can be checked against (c2sp.org/signed-note).

    `alg` is `ALG_ED25519` or `ALG_COSIGNATURE_V1`; `public` is the 32-byte
    Ed25519 public key for both.  The constructor raises FormatError for an
    invalid name, an unknown type or a wrong key length.
    """

    name: str
    alg: int
    public: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if self.alg not in _KNOWN_ALGS:
            raise FormatError(
                f"verifier key {self.name}: unknown signature type {self.alg:#04x}",
                hint=_ALG_HINT,
            )
        if not isinstance(self.public, bytes) or len(self.public) != _ED25519_PUBLIC_SIZE:
            raise FormatError(f"verifier key {self.name}: public key is not 32 bytes")

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id, ``SHA-256(name || 0x0A || alg || public)[:4]``."""
        return key_id(self.name, self.alg, self.public)

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse ``name+hex(key id)+base64(alg || public)`` (x/mod sumdb/note vkey).

        Surrounding whitespace (a trailing newline from a key file) is ignored.
        The key id may be upper or lower case hex; `encode` writes lower case.

        Raises FormatError if a part is missing or malformed, the type is unknown,
        the key has the wrong length, or the key id does not match the key.
        """
        text = text.strip() if isinstance(text, str) else text
        if not isinstance(text, str) or text.count("+") < 2:
            raise FormatError(
                "verifier key does not have three '+'-separated parts", hint=_VKEY_HINT
            )
        name, id_hex, key_b64 = text.split("+", 2)
        check_key_name(name)
        if not _HEX8.fullmatch(id_hex):
            raise FormatError(
                f"verifier key {name}: key id {id_hex!r} is not 8 hex digits", hint=_VKEY_HINT
            )
        data = _b64decode(key_b64, f"verifier key {name}: key data")
        alg, public = data[0], data[1:]
        # Type and length first: an ECDSA (0x02) key, say, should be named as such,
        # not reported as a key id mismatch (its id is computed differently).
        if alg not in _KNOWN_ALGS:
            raise FormatError(
                f"verifier key {name}: unknown signature type {alg:#04x}",
                hint=_ALG_HINT,
            )
        if len(public) != _ED25519_PUBLIC_SIZE:
            raise FormatError(f"verifier key {name}: public key is not 32 bytes")
        want = bytes.fromhex(id_hex)
        got = key_id(name, alg, public)
        if got != want:
            raise FormatError(
                f"verifier key {name}: key id {id_hex} does not match the key "
                f"(computed {got.hex()})",
                hint="the key was mistyped or truncated",
            )
        return cls(name, alg, public)

    def encode(self) -> str:
        """The verifier key string ``name+hex(key id)+base64(alg || public)``."""
        return f"{self.name}+{self.key_id.hex()}+{_b64encode(bytes([self.alg]) + self.public)}"

    def __str__(self) -> str:
        return self.encode()

    def verify(self, message: bytes, signature: bytes) -> None:
        """Check `signature` (the bytes after the key id) over note text `message`.

        For `ALG_ED25519` the signature is Ed25519 over `message`.  For
        `ALG_COSIGNATURE_V1` it is ``u64 timestamp || Ed25519`` over
        `cosignature_message(message, timestamp)`.  Raises SignatureError.
        """
        if self.alg == ALG_COSIGNATURE_V1:
            if len(signature) != _TIMESTAMP_SIZE + _ED25519_SIGNATURE_SIZE:
                raise SignatureError(
                    self.name, self.key_id, f"cosignature is {len(signature)} bytes, want 72"
                )
            timestamp = int.from_bytes(signature[:_TIMESTAMP_SIZE], "big")
            if timestamp > MAX_TIMESTAMP:
                raise SignatureError(self.name, self.key_id, "cosignature timestamp exceeds 2^63-1")
            message = cosignature_message(message, timestamp)
            signature = signature[_TIMESTAMP_SIZE:]
        elif len(signature) != _ED25519_SIGNATURE_SIZE:
            raise SignatureError(
                self.name, self.key_id, f"signature is {len(signature)} bytes, want 64"
            )
        try:
            # libsodium (via PyNaCl) verifies about twice as fast as OpenSSL here, which
            # matters when `custody log verify` checks a million entries.  Both implement
            # RFC 8032's cofactorless check; libsodium also refuses small-order keys and
            # points, which an honest signer never produces.
            nacl.bindings.crypto_sign_open(signature + message, self.public)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            raise SignatureError(self.name, self.key_id) from None


class Signer:
    """A named Ed25519 private key that signs notes (signature type 0x01).

    The same key may also produce cosignature/v1 signatures (see
    custody.tlog.checkpoint.cosign), which use a different key id.
    """

    __slots__ = ("_key", "_name", "_public")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        """Raises FormatError if `name` is not a valid key name."""
        self._name = check_key_name(name)
        self._key = private_key
        self._public = private_key.public_key().public_bytes_raw()

    @property
    def name(self) -> str:
        return self._name

    @property
    def public(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self._public

    @property
    def verifier_key(self) -> VerifierKey:
        """The matching type-0x01 verifier key."""
        return VerifierKey(self._name, ALG_ED25519, self._public)

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id of `verifier_key`."""
        return key_id(self._name, ALG_ED25519, self._public)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `message` (deterministic, RFC 8032)."""
        return self._key.sign(message)

    def seed(self) -> bytes:
        """The 32-byte Ed25519 seed (RFC 8032 private key). Keep it secret."""
        return self._key.private_bytes_raw()

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        """A signer from a 32-byte Ed25519 seed. Raises FormatError for a bad name or size."""
        if not isinstance(seed, bytes) or len(seed) != _ED25519_SEED_SIZE:
            raise FormatError(f"signer {name}: Ed25519 seed is not 32 bytes")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A new random key (the only function here that uses randomness)."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse_private_key(cls, text: str) -> Signer:
        """Parse x/mod's ``PRIVATE+KEY+name+hex(key id)+base64(0x01 || seed)``.

        The key id is that of the public key, checked after deriving it.
        Raises FormatError.  The error messages never contain key material.
        """
        text = text.strip() if isinstance(text, str) else text
        if not isinstance(text, str) or not text.startswith(_PRIVATE_PREFIX):
            raise FormatError("private key does not start with 'PRIVATE+KEY+'")
        rest = text[len(_PRIVATE_PREFIX) :]
        if rest.count("+") < 2:
            raise FormatError("private key does not have name, key id and key data parts")
        name, id_hex, key_b64 = rest.split("+", 2)
        check_key_name(name)
        if not _HEX8.fullmatch(id_hex):
            raise FormatError(f"private key {name}: key id is not 8 hex digits")
        data = _b64decode(key_b64, f"private key {name}: key data")
        if data[0] != ALG_ED25519:
            raise FormatError(f"private key {name}: unknown signature type {data[0]:#04x}")
        signer = cls.from_seed(name, data[1:])
        if signer.key_id != bytes.fromhex(id_hex):
            raise FormatError(f"private key {name}: key id {id_hex} does not match the key")
        return signer

    def encode_private_key(self) -> str:
        """The x/mod private key string ``PRIVATE+KEY+name+hex(key id)+base64(0x01 || seed)``."""
        data = _b64encode(bytes([ALG_ED25519]) + self.seed())
        return f"{_PRIVATE_PREFIX}{self._name}+{self.key_id.hex()}+{data}"

    def __repr__(self) -> str:
        # Never print the private key.
        return f"Signer({self._name!r}, key_id={self.key_id.hex()})"


# ---------------------------------------------------------------------------
# Notes


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key id, and the signature bytes after it."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not isinstance(self.key_id, bytes) or len(self.key_id) != _KEY_ID_SIZE:
            raise FormatError(f"signature by {self.name}: key id is not 4 bytes")
        if not isinstance(self.signature, bytes) or not self.signature:
            raise FormatError(f"signature by {self.name}: signature is empty")

    def line(self) -> str:
        """The signature line without its newline: ``— name base64(key id || signature)``."""
        return f"{_SIG_PREFIX}{self.name} {_b64encode(self.key_id + self.signature)}"


def _parse_signature_line(line: str, number: int) -> NoteSignature:
    where = f"note signature line {number}"
    if not line.startswith(_SIG_PREFIX):
        raise FormatError(
            f"{where} does not start with '— ' (em dash U+2014, space)",
            hint="nothing but signature lines may follow the last blank line of a note",
        )
    name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
    if not sep:
        raise FormatError(f"{where} has no space between key name and signature", hint=_FORMAT_HINT)
    try:
        check_key_name(name)
    except FormatError as e:
        raise FormatError(f"{where}: {e.message}", hint=e.hint) from None
    raw = _b64decode(b64, f"{where}: signature")
    if len(raw) <= _KEY_ID_SIZE:
        raise FormatError(
            f"{where}: signature is {len(raw)} bytes, too short for a key id and a signature"
        )
    return NoteSignature(name, raw[:_KEY_ID_SIZE], raw[_KEY_ID_SIZE:])


@dataclass(frozen=True)
class Note:
    """A parsed signed note: its text (ending in a newline) and 1..100 signatures.

    The constructor raises FormatError if the text is not valid note text or the
    signature count is out of range.  `encode()` of a parsed note gives back
    exactly the bytes it was parsed from.
    """

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        check_note_text(self.text)
        if not self.signatures:
            raise FormatError("note has no signatures", hint=_FORMAT_HINT)
        if len(self.signatures) > MAX_SIGNATURES:
            raise FormatError(
                f"note has {len(self.signatures)} signatures; at most {MAX_SIGNATURES} allowed"
            )

    @classmethod
    def parse(cls, data: bytes) -> Note:
        """Parse signed-note bytes (c2sp.org/signed-note, "Format"). Verifies nothing.

        Raises FormatError, naming the problem: not UTF-8, a control character,
        no blank line before the signatures, no final newline, a malformed
        signature line, or more than `MAX_SIGNATURES` signatures.
        """
        try:
            s = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"note is not valid UTF-8 at byte {e.start}") from None
        except TypeError:
            raise FormatError("note is not bytes") from None
        m = _CONTROL.search(s)
        if m:
            raise FormatError(
                f"note contains control character {_describe_char(m.group())} "
                f"at offset {m.start()}",
                hint="only newline (U+000A) is allowed below U+0020",
            )
        # The text is separated from the signatures by the *last* blank line.
        split = s.rfind("\n\n")
        if split < 0:
            raise FormatError("note has no blank line before its signatures", hint=_FORMAT_HINT)
        text, block = s[: split + 1], s[split + 2 :]
        if not block:
            raise FormatError(
                "note has no signature lines after its last blank line", hint=_FORMAT_HINT
            )
        if not block.endswith("\n"):
            raise FormatError("note does not end in a newline", hint=_FORMAT_HINT)
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise FormatError(f"note has {len(lines)} signatures; at most {MAX_SIGNATURES} allowed")
        sigs = tuple(_parse_signature_line(line, i) for i, line in enumerate(lines, 1))
        return cls(text, sigs)

    def encode(self) -> bytes:
        """The note bytes: text, a blank line, one line per signature."""
        lines = "".join(sig.line() + "\n" for sig in self.signatures)
        return (self.text + "\n" + lines).encode("utf-8")


@dataclass(frozen=True)
class VerifiedNote:
    """A note whose signatures by the keys in `verified_by` all verified.

    `text` is the note text (the only part that may be trusted); `verified_by`
    lists each known key that signed, once, in order of first signature.
    """

    note: Note
    text: str
    verified_by: tuple[VerifierKey, ...]


def _signature_for(signer: Signer, text: bytes) -> NoteSignature:
    return NoteSignature(signer.name, signer.key_id, signer.sign(text))


def _check_no_duplicates(existing: Sequence[NoteSignature], new: Sequence[NoteSignature]) -> None:
    present = {(s.name, s.key_id) for s in existing}
    added: set[tuple[str, bytes]] = set()
    for sig in new:
        ident = (sig.name, sig.key_id)
        if ident in present:
            raise InputError(
                f"note is already signed by key {sig.name}+{sig.key_id.hex()}",
                hint="a key signs a note once",
            )
        if ident in added:
            raise InputError(
                f"key {sig.name}+{sig.key_id.hex()} is given twice", hint="a key signs a note once"
            )
        added.add(ident)


def sign_note(text: str, signers: Sequence[Signer]) -> bytes:
    """Sign `text` with each signer (Ed25519, type 0x01) and encode the note.

    Raises FormatError if `text` is not valid note text, InputError if there
    are no signers, two signers share a key, or there are too many.
    """
    check_note_text(text)
    if not signers:
        raise InputError("no signer given for the note")
    message = text.encode("utf-8")
    sigs = [_signature_for(s, message) for s in signers]
    _check_no_duplicates((), sigs)
    return Note(text, tuple(sigs)).encode()


def append_signatures(data: bytes, signatures: Sequence[NoteSignature]) -> bytes:
    """Append signature lines to note bytes, keeping the existing bytes exactly.

    The caller is responsible for the signatures being over the note text.
    Raises FormatError if `data` is not a note or the result would have more
    than `MAX_SIGNATURES` signatures, InputError if a key would sign twice.
    """
    note = Note.parse(data)
    _check_no_duplicates(note.signatures, signatures)
    total = len(note.signatures) + len(signatures)
    if total > MAX_SIGNATURES:
        raise FormatError(f"note would have {total} signatures; at most {MAX_SIGNATURES} allowed")
    return bytes(data) + "".join(s.line() + "\n" for s in signatures).encode("utf-8")


def add_signatures(data: bytes, signers: Sequence[Signer]) -> bytes:
    """Add Ed25519 (type 0x01) signatures by `signers` to an already signed note.

    Existing bytes are kept exactly (they may be part of a log leaf); new lines
    are appended.  Existing signatures are not verified here.  Raises
    FormatError for a malformed note and InputError if a signer's key has
    already signed it.
    """
    note = Note.parse(data)
    message = note.text.encode("utf-8")
    return append_signatures(data, [_signature_for(s, message) for s in signers])


def _index_keys(known: Iterable[VerifierKey]) -> dict[tuple[str, bytes], VerifierKey]:
    index: dict[tuple[str, bytes], VerifierKey] = {}
    for key in known:
        ident = (key.name, key.key_id)
        other = index.get(ident)
        if other is not None and other != key:
            raise InputError(
                f"two different known keys share name and key id {key.name}+{key.key_id.hex()}",
                hint="remove one of them from the trusted keys",
            )
        index[ident] = key
    return index


def open_note(data: bytes, known: Iterable[VerifierKey]) -> VerifiedNote:
    """Parse a note and verify its signatures by the `known` keys.

    c2sp.org/signed-note, "Signatures": signatures whose (key name, key id)
    matches no known key are ignored.  Every signature by a known key is
    verified (x/mod checks only the first per key; custody checks all).

    Raises FormatError for a malformed note, SignatureError if a signature by
    a known key fails, UnverifiedNoteError if no known key signed the note,
    and InputError if two different known keys share a name and key id.
    """
    note = Note.parse(data)
    index = _index_keys(known)
    message = note.text.encode("utf-8")
    verified: list[VerifierKey] = []
    for sig in note.signatures:
        key = index.get((sig.name, sig.key_id))
        if key is None:
            continue
        key.verify(message, sig.signature)
        if key not in verified:
            verified.append(key)
    if not verified:
        idents = sorted({f"{s.name}+{s.key_id.hex()}" for s in note.signatures})
        signed_by = ", ".join(idents[:5]) + (
            f" and {len(idents) - 5} more" if len(idents) > 5 else ""
        )
        raise UnverifiedNoteError(
            f"note is not signed by any trusted key (it is signed by {signed_by})",
            hint="pass the verifier key of the party that should have signed it",
        )
    return VerifiedNote(note, note.text, tuple(verified))
