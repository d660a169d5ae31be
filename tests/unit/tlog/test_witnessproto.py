"""custody.tlog.witnessproto: the C2SP tlog-witness add-checkpoint messages and checks."""

from __future__ import annotations

import base64

import pytest

from custody.errors import FormatError
from custody.tlog.checkpoint import Checkpoint, cosign, sign_checkpoint
from custody.tlog.merkle import EMPTY_ROOT, MemoryTree
from custody.tlog.note import Note, Signer
from custody.tlog.witnessproto import (
    MAX_PROOF_LINES,
    MAX_REQUEST,
    AddCheckpoint,
    BadRequestError,
    SizeConflictError,
    UnprocessableError,
    check_request,
    encode_cosignatures,
    encode_size,
    parse_cosignatures,
    parse_size,
)

LOG = Signer.from_seed("example.com/behind-the-sofa", bytes(range(32)))
WITNESS = Signer.from_seed("witness.example/w1", bytes(range(1, 33)))


def tree(n: int) -> MemoryTree:
    t = MemoryTree()
    for i in range(n):
        t.append(b"leaf %d" % i)
    return t


def note(size: int, root: bytes | None = None) -> bytes:
    return sign_checkpoint(Checkpoint(LOG.name, size, root or tree(size).root()), LOG)


def test_the_spec_example_layout_round_trips() -> None:
    t = tree(7)
    proof = tuple(t.consistency_proof(3, 7))
    req = AddCheckpoint(3, proof, note(7))
    body = req.encode()
    head, _, rest = body.partition(b"\n\n")
    lines = head.decode().split("\n")
    assert lines[0] == "old 3"
    assert [base64.b64decode(x) for x in lines[1:]] == list(proof)
    assert rest.startswith(LOG.name.encode() + b"\n7\n")
    assert AddCheckpoint.parse(body) == req
    assert req.parsed.size == 7


def test_no_proof_from_size_zero() -> None:
    req = AddCheckpoint(0, (), note(2))
    assert req.encode().startswith(b"old 0\n\n" + LOG.name.encode())
    assert AddCheckpoint.parse(req.encode()) == req


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "no blank line"),
        (b"old 1\n", "no blank line"),
        (b"\n" + note(1), "does not start with 'old N'"),
        (b"new 1\n\n" + note(1), "not 'old N'"),
        (b"old 01\n\n" + note(1), "without leading zeroes"),
        (b"old -1\n\n" + note(1), "without leading zeroes"),
        (b"old " + b"9" * 30 + b"\n\n" + note(1), "outside 0..2^64-1"),
        (b"old 1\nnot base64!\n\n" + note(1), "line 1 is not base64"),
        (b"old 1\n" + base64.b64encode(b"x" * 31) + b"\n\n" + note(1), "32-byte hash"),
        (b"old 1\n\xff\n\n" + note(1), "not ASCII"),
        (b"old 1\n\nnot a note\n", "the add-checkpoint body's checkpoint"),
        (b"old 0\n\n" + note(1).replace(b"\n1\n", b"\nx\n"), "body's checkpoint"),
    ],
)
def test_malformed_bodies_are_refused_naming_the_line(body: bytes, says: str) -> None:
    with pytest.raises(FormatError, match=None) as info:
        AddCheckpoint.parse(body)
    assert says in info.value.message


def test_bounds() -> None:
    h = base64.b64encode(bytes(32))
    ok = b"old 1\n" + (h + b"\n") * MAX_PROOF_LINES + b"\n" + note(2)
    assert len(AddCheckpoint.parse(ok).proof) == MAX_PROOF_LINES
    too_many = b"old 1\n" + (h + b"\n") * (MAX_PROOF_LINES + 1) + b"\n" + note(2)
    with pytest.raises(FormatError, match="more than 63 consistency proof lines"):
        AddCheckpoint.parse(too_many)
    with pytest.raises(FormatError, match="at most"):
        AddCheckpoint.parse(b"old 0\n\n" + b"x" * MAX_REQUEST)


def cp(size: int, root: bytes | None = None) -> Checkpoint:
    return Checkpoint(LOG.name, size, root or tree(size).root())


def test_check_request_follows_the_spec() -> None:
    t = tree(5)
    proof = tuple(t.consistency_proof(2, 5))
    check_request(2, AddCheckpoint(2, proof, note(5)), cp(5))  # the normal case
    check_request(0, AddCheckpoint(0, (), note(5)), cp(5))  # first contact
    check_request(5, AddCheckpoint(5, (), note(5)), cp(5))  # the same tree again
    with pytest.raises(BadRequestError) as bad:
        check_request(7, AddCheckpoint(7, (), note(5)), cp(5))
    assert bad.value.status == 400
    with pytest.raises(SizeConflictError) as conflict:
        check_request(3, AddCheckpoint(2, proof, note(5)), cp(5))
    assert conflict.value.status == 409 and conflict.value.size == 3
    with pytest.raises(UnprocessableError, match="empty tree's root") as empty:
        check_request(0, AddCheckpoint(0, (), note(0, bytes(32))), cp(0, bytes(32)))
    assert empty.value.status == 422
    check_request(0, AddCheckpoint(0, (), note(0, EMPTY_ROOT)), cp(0, EMPTY_ROOT))
    with pytest.raises(UnprocessableError, match=rf"is empty, but {len(proof)} hash"):
        check_request(0, AddCheckpoint(0, proof, note(5)), cp(5))
    with pytest.raises(UnprocessableError, match=rf"is empty, but {len(proof)} hash"):
        check_request(5, AddCheckpoint(5, proof, note(5)), cp(5))
    with pytest.raises(UnprocessableError, match="from size 2 to 5 is needed"):
        check_request(2, AddCheckpoint(2, (), note(5)), cp(5))


def test_size_responses() -> None:
    assert encode_size(20852014) == b"20852014\n"
    assert parse_size(b"20852014\n") == 20852014
    assert parse_size(b"0\n") == 0
    for bad in (b"", b"12", b"012\n", b"1 \n", b"-1\n", b"\xff\n", b"9" * 40 + b"\n"):
        with pytest.raises(FormatError):
            parse_size(bad)


def test_cosignature_responses() -> None:
    cosigned = cosign(note(3), WITNESS, 1_679_315_147)
    sig = Note.parse(cosigned).signatures[-1]
    body = encode_cosignatures([sig])
    assert body.startswith("— witness.example/w1 ".encode())
    assert body.endswith(b"\n") and body.count(b"\n") == 1
    assert parse_cosignatures(body) == (sig,)
    assert parse_cosignatures(body + body) == (sig, sig)
    for bad in (b"", b"\n", body + b"\n" + body, body[:-1], b"hello\n", b"\xff\n"):
        with pytest.raises(FormatError):
            parse_cosignatures(bad)
