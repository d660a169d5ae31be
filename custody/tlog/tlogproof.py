"""c2sp.org/tlog-proof@v1 files: an offline-verifiable proof that an entry is in a log.

A proof file is (docs/spec/tlog-proof.md has the byte-level description)::

    c2sp.org/tlog-proof@v1\\n
    [extra <base64 opaque data>\\n]
    index <decimal>\\n
    <base64 hash>\\n            zero or more: the RFC 9162 inclusion proof,
    ...                         leaf's sibling first, root's child last
    \\n
    <signed checkpoint note, verbatim>

Verification opens the checkpoint (custody.tlog.checkpoint), hashes the entry
as an RFC 6962 leaf and runs RFC 9162 §2.1.3.2 (custody.tlog.merkle).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass

from custody.errors import FormatError
from custody.tlog.checkpoint import (
    MAX_DIGITS,
    Checkpoint,
    VerifiedCheckpoint,
    open_checkpoint,
    short_number,
)
from custody.tlog.merkle import HASH_SIZE, MAX_SIZE, leaf_hash, verify_inclusion
from custody.tlog.note import Note, VerifierKey

__all__ = ["MAX_PROOF_HASHES", "TLOG_PROOF_V1", "TlogProof", "verify_tlog_proof"]

TLOG_PROOF_V1 = "c2sp.org/tlog-proof@v1"
"""The first line of every proof file: the format and its version."""

MAX_PROOF_HASHES = 64
"""An inclusion proof in a tree of at most 2^64-1 leaves has at most 64 hashes."""

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
# The digits of 2^64-1.  A longer index is out of range whatever its digits, and must be
# refused before int(): Python refuses int() of more than 4300 digits with ValueError.
_HINT = "a tlog-proof starts 'c2sp.org/tlog-proof@v1', then 'index N', hashes, a blank line"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    if not text:
        raise FormatError(f"tlog-proof {what} is empty", hint=_HINT)
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, ValueError):
        raise FormatError(f"tlog-proof {what} is not base64", hint=_HINT) from None
    if _b64(raw) != text:
        raise FormatError(f"tlog-proof {what} is not canonical base64", hint=_HINT)
    return raw


@dataclass(frozen=True)
class TlogProof:
    """A parsed tlog-proof: entry `index`, inclusion proof `hashes`, `checkpoint` note bytes.

    `extra` is opaque, unauthenticated data (None when absent; never empty).
    The constructor raises FormatError if the index is out of range, a hash is
    not 32 bytes, there are more than 64 hashes, or `checkpoint` is not a
    well-formed checkpoint note (its signatures are checked by `verify_tlog_proof`).
    """

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int):
            raise FormatError("tlog-proof index is not an integer")
        if not 0 <= self.index < MAX_SIZE:
            raise FormatError(f"tlog-proof index {self.index} is outside 0..2^64-2")
        if not isinstance(self.hashes, tuple):
            raise FormatError("tlog-proof hashes are not a tuple")
        if len(self.hashes) > MAX_PROOF_HASHES:
            raise FormatError(
                f"tlog-proof has {len(self.hashes)} hashes; at most {MAX_PROOF_HASHES} possible"
            )
        for i, h in enumerate(self.hashes, 1):
            if not isinstance(h, bytes) or len(h) != HASH_SIZE:
                raise FormatError(f"tlog-proof hash {i} is not 32 bytes")
        if self.extra is not None and (not isinstance(self.extra, bytes) or not self.extra):
            raise FormatError("tlog-proof extra data is empty", hint="use None for no extra data")
        if not isinstance(self.checkpoint, bytes):
            raise FormatError("tlog-proof checkpoint is not bytes")
        try:
            Checkpoint.parse(Note.parse(self.checkpoint).text)
        except FormatError as e:
            raise FormatError(f"tlog-proof checkpoint: {e.message}", hint=e.hint) from None

    def encode(self) -> bytes:
        """The proof file bytes (c2sp.org/tlog-proof@v1, "Format")."""
        lines = [TLOG_PROOF_V1]
        if self.extra is not None:
            lines.append(f"extra {_b64(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(_b64(h) for h in self.hashes)
        head = "".join(line + "\n" for line in lines) + "\n"
        return head.encode("ascii") + self.checkpoint

    @classmethod
    def parse(cls, data: bytes) -> TlogProof:
        """Parse a proof file. Verifies nothing; see `verify_tlog_proof`.

        Raises FormatError naming the line that is wrong: the version line,
        the extra or index line, a hash line, the missing blank line, or the
        embedded checkpoint.
        """
        try:
            raw = bytes(data)
        except TypeError:
            raise FormatError("tlog-proof is not bytes") from None
        # The header (before the blank line) is ASCII; the checkpoint is a UTF-8 note.
        end = raw.find(b"\n\n")
        if end < 0:
            raise FormatError("tlog-proof has no blank line before its checkpoint", hint=_HINT)
        try:
            header = raw[:end].decode("ascii")
        except UnicodeDecodeError:
            raise FormatError("tlog-proof header is not ASCII", hint=_HINT) from None
        lines = header.split("\n")
        if lines[0] != TLOG_PROOF_V1:
            raise FormatError(
                f"tlog-proof first line is {lines[0][:40]!r}, not {TLOG_PROOF_V1!r}", hint=_HINT
            )
        pos = 1
        extra: bytes | None = None
        if pos < len(lines) and lines[pos].startswith("extra "):
            extra = _unb64(lines[pos][len("extra ") :], "extra data")
            pos += 1
        if pos >= len(lines) or not lines[pos].startswith("index "):
            raise FormatError("tlog-proof has no 'index N' line", hint=_HINT)
        index_text = lines[pos][len("index ") :]
        if not _DECIMAL.fullmatch(index_text):
            raise FormatError(
                f"tlog-proof index {index_text[:40]!r} is not a decimal number "
                "without leading zeroes",
                hint=_HINT,
            )
        if len(index_text) > MAX_DIGITS:
            # The constructor's message, before int() refuses 4300 digits with ValueError.
            raise FormatError(f"tlog-proof index {short_number(index_text)} is outside 0..2^64-2")
        index = int(index_text)
        hash_lines = lines[pos + 1 :]
        if len(hash_lines) > MAX_PROOF_HASHES:
            raise FormatError(
                f"tlog-proof has {len(hash_lines)} hash lines; at most {MAX_PROOF_HASHES} possible"
            )
        hashes = []
        for i, line in enumerate(hash_lines, 1):
            h = _unb64(line, f"hash line {i}")
            if len(h) != HASH_SIZE:
                raise FormatError(f"tlog-proof hash line {i} is {len(h)} bytes, not 32", hint=_HINT)
            hashes.append(h)
        return cls(index, tuple(hashes), raw[end + 2 :], extra)


def verify_tlog_proof(
    proof: TlogProof,
    entry: bytes,
    log_key: VerifierKey,
    witnesses: Iterable[VerifierKey] = (),
) -> VerifiedCheckpoint:
    """Check that `entry` (the exact leaf bytes) is in the log at `proof.index`.

    Opens the checkpoint with `open_checkpoint(proof.checkpoint, log_key,
    witnesses)`, then runs RFC 9162 §2.1.3.2 on ``leaf_hash(entry)``, the proof
    hashes and the checkpoint's size and root.  Returns the verified checkpoint
    (count its cosignatures for a witness policy).  The extra data is not used.

    Raises what `open_checkpoint` raises, and custody.tlog.merkle.ProofError
    (RootMismatchError when the proof leads to another root).
    """
    verified = open_checkpoint(proof.checkpoint, log_key, witnesses)
    cp = verified.checkpoint
    verify_inclusion(proof.index, cp.size, leaf_hash(entry), proof.hashes, cp.root)
    return verified
