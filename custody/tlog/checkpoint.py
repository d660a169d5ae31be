"""C2SP tlog checkpoints and cosignature/v1 witness cosignatures.

Implements c2sp.org/tlog-checkpoint (v1.0.0) and the Ed25519 ``cosignature/v1``
signature type (0x04) of c2sp.org/tlog-cosignature; the byte-level description
is docs/spec/checkpoint.md.

A checkpoint is a signed note (custody.tlog.note) whose text is::

    <origin>\\n
    <tree size, decimal>\\n
    <base64 RFC 6962 root hash>\\n
    [<extension line>\\n ...]

signed by the log's Ed25519 key, whose key name must equal the origin line.
Witnesses append cosignature lines; each says "at <timestamp>, this was the
largest consistent tree I had seen for this log".
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass

from custody.errors import FormatError, InputError, VerificationError
from custody.tlog.merkle import HASH_SIZE, MAX_SIZE
from custody.tlog.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_TIMESTAMP,
    Note,
    NoteSignature,
    Signer,
    UnverifiedNoteError,
    VerifierKey,
    append_signatures,
    check_note_text,
    cosignature_message,
    open_note,
    sign_note,
)

__all__ = [
    "Checkpoint",
    "OriginMismatchError",
    "VerifiedCheckpoint",
    "cosign",
    "cosignature_timestamp",
    "cosignature_verifier_key",
    "open_checkpoint",
    "sign_checkpoint",
]

_TIMESTAMP_SIZE = 8  # u64, big-endian (RFC 8446 §3.3 presentation language)
_SIGNATURE_SIZE = 64  # Ed25519
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
# The digits of 2^64-1.  A longer size is out of range whatever its digits, and must be
# refused before int(): Python refuses int() of more than 4300 digits with ValueError.
MAX_DIGITS = len(str(MAX_SIZE))  # a size or index with more digits is out of range


def short_number(text: str) -> str:
    """A decimal number for a one-line message: whole up to 40 digits, else cut short."""
    return text if len(text) <= 40 else f"{text[:40]}… ({len(text)} digits)"


_CHECKPOINT_HINT = "a checkpoint is 'origin', 'tree size', 'base64 root hash', one per line"


class OriginMismatchError(VerificationError):
    """The checkpoint's origin line is not the name of the log key it was checked against.

    `origin` is the checkpoint's origin line; `key_name` the log key's name.
    """

    def __init__(self, origin: str, key_name: str) -> None:
        self.origin = origin
        self.key_name = key_name
        super().__init__(
            f"checkpoint is from log {origin!r}, but the log key given is {key_name!r}",
            hint="check it against the verifier key of the log named in its first line",
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint body (c2sp.org/tlog-checkpoint, "Note text").

    `origin` is the log's identity, `size` the number of leaves, `root` the
    32-byte RFC 6962 root hash, `extensions` any further (non-empty) lines.
    The constructor raises FormatError if any part could not be encoded as
    a checkpoint that parses back to the same value.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise FormatError("checkpoint tree size is not an integer")
        if not 0 <= self.size <= MAX_SIZE:
            raise FormatError(f"checkpoint tree size {self.size} is outside 0..2^64-1")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise FormatError("checkpoint root hash is not 32 bytes")
        if not isinstance(self.extensions, tuple):
            raise FormatError("checkpoint extensions are not a tuple of lines")
        for i, ext in enumerate(self.extensions, 1):
            _check_line(ext, f"extension line {i}")

    def body(self) -> str:
        """The note text: origin, size, base64 root and extension lines, each ending in newline."""
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body (the text of the note, not the signed note).

        The size must be decimal without leading zeroes, the root canonical
        base64 of 32 bytes, every line non-empty.  Raises FormatError naming the line.
        """
        if not isinstance(text, str):
            raise FormatError("checkpoint text is not a string")
        try:
            check_note_text(text)
        except FormatError as e:
            raise FormatError(f"checkpoint {e.message}", hint=e.hint) from None
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise FormatError(
                f"checkpoint has {len(lines)} line(s); it needs origin, size and root hash",
                hint=_CHECKPOINT_HINT,
            )
        origin, size_text, root_text, *extensions = lines
        _check_line(origin, "origin")
        if not _DECIMAL.fullmatch(size_text):
            raise FormatError(
                f"checkpoint size line {size_text!r} is not a decimal number "
                "without leading zeroes",
                hint=_CHECKPOINT_HINT,
            )
        if len(size_text) > MAX_DIGITS:
            # The constructor's message, before int() refuses 4300 digits with ValueError.
            raise FormatError(
                f"checkpoint tree size {short_number(size_text)} is outside 0..2^64-1"
            )
        size = int(size_text)
        try:
            root = base64.b64decode(root_text.encode("ascii"), validate=True)
        except (UnicodeEncodeError, ValueError):
            raise FormatError(
                f"checkpoint root hash line {root_text!r} is not base64", hint=_CHECKPOINT_HINT
            ) from None
        if len(root) != HASH_SIZE or _b64(root) != root_text:
            raise FormatError(
                f"checkpoint root hash line {root_text!r} is not canonical base64 of 32 bytes",
                hint=_CHECKPOINT_HINT,
            )
        return cls(origin, size, root, tuple(extensions))


def _check_line(line: str, what: str) -> None:
    if not isinstance(line, str) or not line:
        raise FormatError(f"checkpoint {what} is empty", hint=_CHECKPOINT_HINT)
    if "\n" in line:
        raise FormatError(f"checkpoint {what} contains a newline")
    try:
        check_note_text(line + "\n")
    except FormatError as e:
        raise FormatError(f"checkpoint {what}: {e.message}", hint=e.hint) from None


def sign_checkpoint(cp: Checkpoint, log_signer: Signer) -> bytes:
    """The checkpoint as a signed note, signed by the log's Ed25519 key.

    The key name must equal the origin (tlog-checkpoint says SHOULD; custody
    requires it, so `open_checkpoint` can find the log key).  Raises InputError.
    """
    if log_signer.name != cp.origin:
        raise InputError(
            f"log key {log_signer.name!r} cannot sign a checkpoint for origin {cp.origin!r}",
            hint="the log key's name must be the checkpoint's origin line",
        )
    return sign_note(cp.body(), [log_signer])


def cosignature_verifier_key(witness: Signer | VerifierKey) -> VerifierKey:
    """The cosignature/v1 (type 0x04) verifier key of a witness.

    Accepts the witness's Signer, or its verifier key of type 0x01 (same name
    and Ed25519 public key) or 0x04 (returned as is).
    """
    # A Signer and a VerifierKey both carry the name and the 32-byte public key.
    return VerifierKey(witness.name, ALG_COSIGNATURE_V1, witness.public)


def cosign(note: bytes, witness: Signer, timestamp: int) -> bytes:
    """Append a cosignature/v1 line by `witness` at POSIX time `timestamp` to a checkpoint.

    c2sp.org/tlog-cosignature: the line is ``— <witness name> base64(key id ||
    u64 timestamp big-endian || Ed25519 signature)``, with key id of type 0x04,
    signing ``cosignature/v1\\ntime <timestamp>\\n`` + the checkpoint body.
    The existing bytes are kept exactly.  The caller must already have verified
    the log's signature and the checkpoint's consistency: cosigning is the
    witness's statement that it has.

    Raises FormatError if `note` is not a checkpoint note, InputError if the
    timestamp is outside 0..2^63-1 or the witness has already cosigned.
    """
    parsed = Note.parse(note)
    Checkpoint.parse(parsed.text)
    message = cosignature_message(parsed.text.encode("utf-8"), timestamp)
    key = cosignature_verifier_key(witness)
    payload = timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + witness.sign(message)
    return append_signatures(note, [NoteSignature(witness.name, key.key_id, payload)])


def cosignature_timestamp(signature: NoteSignature) -> int:
    """The timestamp of a cosignature/v1 signature (not verified). Raises FormatError."""
    if len(signature.signature) != _TIMESTAMP_SIZE + _SIGNATURE_SIZE:
        raise FormatError(f"cosignature by {signature.name} is not 72 bytes")
    ts = int.from_bytes(signature.signature[:_TIMESTAMP_SIZE], "big")
    if ts > MAX_TIMESTAMP:
        raise FormatError(f"cosignature by {signature.name} has a timestamp beyond 2^63-1")
    return ts


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint whose log signature verified, with the cosignatures that verified.

    `note` is the parsed signed note (its `encode()` gives back the exact bytes);
    `cosignatures` holds one (witness key, timestamp) per witness that cosigned,
    in the order of their lines.
    """

    checkpoint: Checkpoint
    note: Note
    cosignatures: tuple[tuple[VerifierKey, int], ...]


def open_checkpoint(
    data: bytes, log_key: VerifierKey, witnesses: Iterable[VerifierKey] = ()
) -> VerifiedCheckpoint:
    """Parse a signed checkpoint and verify the log's signature and known cosignatures.

    `log_key` is the log's Ed25519 (type 0x01) key; its name must equal the
    origin line.  `witnesses` are cosignature/v1 (type 0x04) keys: a cosignature
    by one of them must verify; cosignatures by other keys are ignored.  This
    does not require any cosignature: count `cosignatures` for a quorum policy.

    Raises FormatError (malformed note or checkpoint), InputError (a key of the
    wrong type), OriginMismatchError (wrong log), SignatureError (a bad
    signature by the log or a given witness) and UnverifiedNoteError (no
    signature by the log key).
    """
    if log_key.alg != ALG_ED25519:
        raise InputError(
            f"log key {log_key.name} is of type {log_key.alg:#04x}, not Ed25519 (0x01)",
            hint="pass the log's verifier key",
        )
    witness_keys = tuple(witnesses)
    for w in witness_keys:
        if w.alg != ALG_COSIGNATURE_V1:
            raise InputError(
                f"witness key {w.name} is of type {w.alg:#04x}, not cosignature/v1 (0x04)",
                hint="convert an Ed25519 witness key with cosignature_verifier_key()",
            )
    note = Note.parse(data)
    checkpoint = Checkpoint.parse(note.text)
    if checkpoint.origin != log_key.name:
        raise OriginMismatchError(checkpoint.origin, log_key.name)
    try:
        verified = open_note(data, (log_key, *witness_keys))
    except UnverifiedNoteError:
        verified = None
    if verified is None or log_key not in verified.verified_by:
        raise UnverifiedNoteError(
            f"checkpoint for {checkpoint.origin} is not signed by log key "
            f"{log_key.name}+{log_key.key_id.hex()}",
            hint="the checkpoint was signed by another key of this log, or not by the log",
        )
    cosigned: list[tuple[VerifierKey, int]] = []
    by_ident = {(w.name, w.key_id): w for w in witness_keys}
    seen: set[VerifierKey] = set()
    for sig in note.signatures:
        key = by_ident.get((sig.name, sig.key_id))
        if key is None or key in seen:
            continue
        seen.add(key)
        cosigned.append((key, cosignature_timestamp(sig)))
    return VerifiedCheckpoint(checkpoint, note, tuple(cosigned))
