"""The C2SP tlog-witness `add-checkpoint` messages and their protocol checks (pure).

c2sp.org/tlog-witness: a log (or anyone) POSTs to ``<prefix>/add-checkpoint``::

    old <size the client believes the witness last cosigned>\\n
    <base64 hash of the consistency proof>\\n        (0..63 lines)
    \\n
    <the signed checkpoint note>

and the witness answers 200 with its cosignature line(s) (``— <name> <base64>``,
one per line), 409 with the size it last cosigned (``Content-Type:
text/x.tlog.size``, ``<size>\\n``) when `old` is not that size, 422 when the proof
or the roots do not hold, 404 for a log it does not know, 403 for a checkpoint not
signed by the log's key, 400 for a malformed body.  docs/spec/witness-http.md is
custody's description of both ends.

This module encodes and parses those bodies, strictly and within bounds, and
decides the protocol's own conditions (`check_request`: the old size against the
witness's record, the empty tree, an empty proof from size 0).  Whether the
checkpoint extends the cosigned one is `custody.tlog.witness.check_extends`, the
rule every custody witness applies.  No I/O.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from custody.errors import FormatError, VerificationError
from custody.tlog.checkpoint import MAX_DIGITS, Checkpoint, short_number
from custody.tlog.merkle import EMPTY_ROOT, HASH_SIZE, MAX_SIZE
from custody.tlog.note import MAX_SIGNATURES, Note, NoteSignature

__all__ = [
    "ADD_CHECKPOINT_PATH",
    "MAX_PROOF_LINES",
    "MAX_REQUEST",
    "MAX_RESPONSE",
    "SIZE_CONTENT_TYPE",
    "AddCheckpoint",
    "BadRequestError",
    "ProtocolError",
    "SizeConflictError",
    "UnprocessableError",
    "check_request",
    "encode_cosignatures",
    "encode_size",
    "parse_cosignatures",
    "parse_size",
]

ADD_CHECKPOINT_PATH = "/add-checkpoint"
SIZE_CONTENT_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63  # the spec's bound: a proof of a tree of up to 2^63 leaves
MAX_REQUEST = 1 << 20  # bytes: a checkpoint note of up to 100 signatures fits many times
MAX_RESPONSE = 1 << 16  # bytes: a witness's cosignature lines, or a size
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_OLD = "old "
_HINT = "the body is 'old N', the proof hashes (base64), a blank line, then the checkpoint"


class ProtocolError(VerificationError):
    """A request the witness refuses for a reason the protocol names; `status` is the HTTP code."""

    status: int = 400


class BadRequestError(ProtocolError):
    """400 Bad Request: the old size is larger than the checkpoint's size."""

    status = 400


class SizeConflictError(ProtocolError):
    """409 Conflict: `old` is not the size the witness last cosigned (`size`)."""

    status = 409

    def __init__(self, size: int, old: int) -> None:
        self.size = size
        self.old = old
        super().__init__(
            f"the request is from size {old}, but this witness last cosigned size {size}",
            hint=f"send the checkpoint again with 'old {size}' and a proof from size {size}",
        )


class UnprocessableError(ProtocolError):
    """422 Unprocessable Entity: the proof or the roots do not show the log only grew."""

    status = 422


def _decimal(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text):
        raise FormatError(
            f"{what} {short_number(text)!r} is not a decimal number without leading zeroes",
            hint=_HINT,
        )
    if len(text) > MAX_DIGITS or int(text) > MAX_SIZE:
        raise FormatError(f"{what} {short_number(text)} is outside 0..2^64-1")
    return int(text)


def _hash_line(line: str, number: int) -> bytes:
    where = f"consistency proof line {number}"
    try:
        raw = base64.b64decode(line.encode("ascii"), validate=True)
    except (UnicodeEncodeError, ValueError):
        raise FormatError(f"{where} is not base64", hint=_HINT) from None
    if len(raw) != HASH_SIZE or base64.b64encode(raw).decode("ascii") != line:
        raise FormatError(f"{where} is not canonical base64 of a 32-byte hash", hint=_HINT)
    return raw


@dataclass(frozen=True)
class AddCheckpoint:
    """An add-checkpoint request: the old size, the proof from it, and the signed checkpoint.

    `checkpoint` is the note's bytes exactly as sent; `parse` has checked that it
    is a well-formed note whose text is a checkpoint (not its signatures).
    """

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes

    def encode(self) -> bytes:
        """The request body (c2sp.org/tlog-witness, "add-checkpoint")."""
        lines = [f"{_OLD}{self.old_size}"]
        lines += [base64.b64encode(h).decode("ascii") for h in self.proof]
        head = "".join(line + "\n" for line in lines) + "\n"
        return head.encode("ascii") + self.checkpoint

    @property
    def parsed(self) -> Checkpoint:
        """The checkpoint body (already checked by `parse`)."""
        return Checkpoint.parse(Note.parse(self.checkpoint).text)

    @classmethod
    def parse(cls, data: bytes) -> AddCheckpoint:
        """Parse a request body; FormatError (a 400) naming the line at fault.

        At most MAX_REQUEST bytes, at most MAX_PROOF_LINES proof lines, each the
        canonical base64 of a 32-byte hash; the old size decimal without leading
        zeroes; then a blank line and a checkpoint note.
        """
        if not isinstance(data, bytes | bytearray):
            raise FormatError("the add-checkpoint body is not bytes")
        data = bytes(data)
        if len(data) > MAX_REQUEST:
            raise FormatError(
                f"the add-checkpoint body is {len(data)} bytes; at most {MAX_REQUEST} allowed"
            )
        pos = 0
        lines: list[str] = []
        while True:
            end = data.find(b"\n", pos)
            if end < 0:
                raise FormatError(
                    "the add-checkpoint body has no blank line before the checkpoint", hint=_HINT
                )
            raw = data[pos:end]
            pos = end + 1
            if not raw:
                break
            if len(lines) > MAX_PROOF_LINES:
                raise FormatError(
                    f"the add-checkpoint body has more than {MAX_PROOF_LINES} consistency proof "
                    "lines",
                    hint=_HINT,
                )
            try:
                lines.append(raw.decode("ascii"))
            except UnicodeDecodeError:
                raise FormatError(
                    f"line {len(lines) + 1} of the add-checkpoint body is not ASCII", hint=_HINT
                ) from None
        if not lines:
            raise FormatError("the add-checkpoint body does not start with 'old N'", hint=_HINT)
        if not lines[0].startswith(_OLD):
            raise FormatError(
                f"the add-checkpoint body starts with {lines[0][:40]!r}, not 'old N'", hint=_HINT
            )
        old = _decimal(lines[0][len(_OLD) :], "old size")
        proof = tuple(_hash_line(line, i) for i, line in enumerate(lines[1:], 1))
        note = data[pos:]
        try:
            Checkpoint.parse(Note.parse(note).text)
        except FormatError as exc:
            raise FormatError(
                f"the add-checkpoint body's checkpoint: {exc.message}", hint=exc.hint
            ) from None
        return cls(old, proof, note)


def check_request(known_size: int, request: AddCheckpoint, cp: Checkpoint) -> None:
    """The protocol's own conditions on a request, before the witness's update rule.

    `known_size` is the size the witness last cosigned for the origin (0 if none);
    `cp` the request's checkpoint, whose log signature the caller has verified.

    Raises:
        BadRequestError: the old size is larger than the checkpoint's (400).
        SizeConflictError: the old size is not `known_size` (409).
        UnprocessableError: a tree of size 0 whose root is not the empty tree's, a
            proof from size 0 or between equal sizes that is not empty, or no proof
            where one is needed (422).
    """
    old = request.old_size
    if old > cp.size:
        raise BadRequestError(
            f"the old size {old} is larger than the checkpoint's size {cp.size}",
            hint="'old' is the size this witness last cosigned, never more than the new one",
        )
    if old != known_size:
        raise SizeConflictError(known_size, old)
    if cp.size == 0 and cp.root != EMPTY_ROOT:
        raise UnprocessableError(
            "a checkpoint of size 0 must have the empty tree's root (SHA-256 of nothing)"
        )
    if request.proof and (old == 0 or old == cp.size):
        raise UnprocessableError(
            f"a consistency proof from size {old} to {cp.size} is empty, but "
            f"{len(request.proof)} hash(es) were sent",
            hint="send no proof lines from size 0 or for the same size",
        )
    if not request.proof and 0 < old < cp.size:
        raise UnprocessableError(
            f"a consistency proof from size {old} to {cp.size} is needed, and none was sent",
            hint=f"on the log's home: custody log consistency {old} {cp.size}",
        )


# -- responses ------------------------------------------------------------------------------


def encode_size(size: int) -> bytes:
    """A 409 body (Content-Type text/x.tlog.size): the size, in decimal, and a newline."""
    return f"{size}\n".encode("ascii")


def parse_size(data: bytes) -> int:
    """Parse a 409 body: one decimal size and a newline. FormatError otherwise."""
    if len(data) > MAX_DIGITS + 1:
        raise FormatError(f"the witness's size response is {len(data)} bytes: too long")
    if not data.endswith(b"\n"):
        raise FormatError("the witness's size response does not end in a newline")
    try:
        text = data[:-1].decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("the witness's size response is not ASCII") from None
    return _decimal(text, "the witness's size")


def encode_cosignatures(signatures: Sequence[NoteSignature]) -> bytes:
    """A 200 body: one note signature line per cosignature, each ending in a newline."""
    return "".join(s.line() + "\n" for s in signatures).encode("utf-8")


def parse_cosignatures(data: bytes) -> tuple[NoteSignature, ...]:
    """Parse a 200 body: 1..MAX_SIGNATURES note signature lines. FormatError otherwise.

    Verifies nothing: the caller appends them to the checkpoint and opens it with
    the witness keys it trusts (unknown keys are ignored).
    """
    if len(data) > MAX_RESPONSE:
        raise FormatError(f"the witness's response is {len(data)} bytes; at most {MAX_RESPONSE}")
    if not data:
        raise FormatError("the witness's response has no cosignature line")
    if data.startswith(b"\n") or b"\n\n" in data:
        raise FormatError("the witness's response has a blank line; it holds signature lines only")
    try:
        # The lines are parsed as the signature block of a note (c2sp.org/signed-note).
        note = Note.parse(b"x\n\n" + bytes(data))
    except FormatError as exc:
        raise FormatError(f"the witness's response: {exc.message}", hint=exc.hint) from None
    if len(note.signatures) > MAX_SIGNATURES:  # pragma: no cover - Note.parse bounds it
        raise FormatError("the witness's response has too many signature lines")
    return note.signatures
