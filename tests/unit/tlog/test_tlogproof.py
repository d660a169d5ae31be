"""Tests for custody.tlog.tlogproof (c2sp.org/tlog-proof@v1)."""

from __future__ import annotations

import base64
import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.errors import FormatError, VerificationError
from custody.tlog.checkpoint import (
    Checkpoint,
    VerifiedCheckpoint,
    cosign,
    cosignature_verifier_key,
    sign_checkpoint,
)
from custody.tlog.merkle import MemoryTree, ProofError, RootMismatchError, leaf_hash
from custody.tlog.note import SignatureError, Signer, UnverifiedNoteError, sign_note
from custody.tlog.tlogproof import TLOG_PROOF_V1, TlogProof, verify_tlog_proof

ORIGIN = "custody.example/log"
LOG = Signer.from_seed(ORIGIN, bytes([1]) * 32)
PARTY = Signer.from_seed("party.example/alice", bytes([2]) * 32)
WITNESS = Signer.from_seed("witness.example/w1", bytes([3]) * 32)

# c2sp.org/tlog-proof, "Format" example.  The spec elides its signatures ("hI2DJw[...]1roloI=");
# the header lines are reproduced verbatim.
SPEC_HEADER = (
    "c2sp.org/tlog-proof@v1\n"
    "extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ\n"
    "index 73894\n"
    "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n"
    "B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n"
    "EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=\n"
    "RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=\n"
    "AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=\n"
    "\n"
)
SPEC_CHECKPOINT_BODY = (
    "example.com/fancylog\n109482\nsFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n"
)
SPEC_ELIDED_SIGS = (
    "— example.com/fancylog hI2DJw[...]1roloI=\n"
    "— witness1.example mJirIklj[...]qY9v2B/5bg==\n"
    "— witness2.example TnKKVHLX[...]xwYwrSjgow==\n"
    "— witness3.example S4X82uH5[...]3oEcROGLFQ==\n"
)


def entry(i: int) -> bytes:
    return sign_note(f"custody/entry/v1\ntype ingest\nseq {i}\n", [PARTY])


def build(n: int) -> tuple[MemoryTree, list[bytes], bytes]:
    tree = MemoryTree()
    entries = [entry(i) for i in range(n)]
    for e in entries:
        tree.append(e)
    cp = sign_checkpoint(Checkpoint(ORIGIN, n, tree.root()), LOG)
    return tree, entries, cp


def proof_for(tree: MemoryTree, cp: bytes, index: int, extra: bytes | None = None) -> TlogProof:
    return TlogProof(index, tuple(tree.inclusion_proof(index)), cp, extra)


# --- format ----------------------------------------------------------------------------------


def test_encode_layout() -> None:
    tree, _, cp = build(5)
    p = proof_for(tree, cp, 2, b"hello")
    lines = p.encode().split(b"\n")
    assert lines[0] == TLOG_PROOF_V1.encode()
    assert lines[1] == b"extra " + base64.b64encode(b"hello")
    assert lines[2] == b"index 2"
    assert lines[3 : 3 + len(p.hashes)] == [base64.b64encode(h) for h in p.hashes]
    assert lines[3 + len(p.hashes)] == b""
    assert p.encode().endswith(b"\n\n" + cp)


@pytest.mark.parametrize("extra", [None, b"x", bytes(range(256))])
def test_round_trip(extra: bytes | None) -> None:
    tree, _, cp = build(6)
    for i in range(6):
        p = proof_for(tree, cp, i, extra)
        assert TlogProof.parse(p.encode()) == p
        assert TlogProof.parse(p.encode()).encode() == p.encode()


def test_single_entry_tree_has_no_hash_lines() -> None:
    tree, entries, cp = build(1)
    p = proof_for(tree, cp, 0)
    assert p.hashes == ()
    assert p.encode() == b"c2sp.org/tlog-proof@v1\nindex 0\n\n" + cp
    verify_tlog_proof(TlogProof.parse(p.encode()), entries[0], LOG.verifier_key)


def test_spec_example_header_parses() -> None:
    # Verbatim, the example's checkpoint does not parse: its signatures are elided.
    spec = (SPEC_HEADER + SPEC_CHECKPOINT_BODY + "\n" + SPEC_ELIDED_SIGS).encode()
    with pytest.raises(FormatError, match="tlog-proof checkpoint: note signature line 1"):
        TlogProof.parse(spec)
    # With a well-formed signature in place of the elided ones, the rest parses as published.
    log = Signer.from_seed("example.com/fancylog", bytes(32))
    p = TlogProof.parse(SPEC_HEADER.encode() + sign_note(SPEC_CHECKPOINT_BODY, [log]))
    assert p.index == 73894
    assert len(p.hashes) == 5
    assert p.hashes[0] == base64.b64decode("gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=")
    assert p.extra is not None and p.extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    assert p.encode().startswith(SPEC_HEADER.encode())


BAD_PROOFS = [
    ("wrong version", b"c2sp.org/tlog-proof@v2\nindex 0\n\n", "first line"),
    ("no blank line", b"c2sp.org/tlog-proof@v1\nindex 0\n", "no blank line"),
    ("no index", b"c2sp.org/tlog-proof@v1\n\n", "no 'index N' line"),
    ("extra but no index", b"c2sp.org/tlog-proof@v1\nextra AA==\n\n", "no 'index N' line"),
    ("index first, then extra", b"c2sp.org/tlog-proof@v1\nindex 0\nextra AA==\n\n", "hash line 1"),
    ("leading zero", b"c2sp.org/tlog-proof@v1\nindex 01\n\n", "index '01'"),
    ("negative", b"c2sp.org/tlog-proof@v1\nindex -1\n\n", "index '-1'"),
    ("two spaces", b"c2sp.org/tlog-proof@v1\nindex  1\n\n", "index ' 1'"),
    ("huge index", b"c2sp.org/tlog-proof@v1\nindex %d\n\n" % 2**64, "outside"),
    ("empty extra", b"c2sp.org/tlog-proof@v1\nextra \nindex 0\n\n", "extra data is empty"),
    ("bad extra", b"c2sp.org/tlog-proof@v1\nextra !!\nindex 0\n\n", "extra data is not base64"),
    ("bad hash", b"c2sp.org/tlog-proof@v1\nindex 0\nnot-base64\n\n", "hash line 1 is not base64"),
    (
        "short hash",
        b"c2sp.org/tlog-proof@v1\nindex 0\n" + base64.b64encode(bytes(31)) + b"\n\n",
        "hash line 1 is 31 bytes",
    ),
    (
        "hash in hex",
        b"c2sp.org/tlog-proof@v1\nindex 0\n" + bytes(32).hex().encode() + b"\n\n",
        "hash line 1",
    ),
    ("non-ASCII header", "c2sp.org/tlog-proof@v1\nindex ０\n\n".encode(), "not ASCII"),
    ("CRLF", b"c2sp.org/tlog-proof@v1\r\nindex 0\r\n\r\n", "no blank line"),
    ("no checkpoint", b"c2sp.org/tlog-proof@v1\nindex 0\n\n", "tlog-proof checkpoint"),
    (
        "too many hashes",
        b"c2sp.org/tlog-proof@v1\nindex 0\n" + (base64.b64encode(bytes(32)) + b"\n") * 65 + b"\n",
        "65 hash lines",
    ),
]


@pytest.mark.parametrize(("desc", "data", "message"), BAD_PROOFS, ids=[b[0] for b in BAD_PROOFS])
def test_malformed_proofs_rejected(desc: str, data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message) as info:
        TlogProof.parse(data)
    assert "\n" not in info.value.message


def test_constructor_checks() -> None:
    _, _, cp = build(2)
    with pytest.raises(FormatError, match="outside"):
        TlogProof(-1, (), cp)
    with pytest.raises(FormatError, match="32 bytes"):
        TlogProof(0, (bytes(31),), cp)
    with pytest.raises(FormatError, match="extra data is empty"):
        TlogProof(0, (), cp, b"")
    with pytest.raises(FormatError, match="tlog-proof checkpoint"):
        TlogProof(0, (), b"not a note")
    with pytest.raises(FormatError, match="tlog-proof checkpoint"):
        TlogProof(0, (), sign_note("not a checkpoint\n", [LOG]))


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_parse_arbitrary_bytes_raises_only_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        TlogProof.parse(b"c2sp.org/tlog-proof@v1\n" + data)
    with contextlib.suppress(FormatError):
        TlogProof.parse(data)


# --- verification ----------------------------------------------------------------------------


def test_every_entry_verifies_for_several_sizes() -> None:
    for n in (1, 2, 3, 4, 5, 7, 8, 9, 16, 17):
        tree, entries, cp = build(n)
        for i in range(n):
            p = TlogProof.parse(proof_for(tree, cp, i).encode())
            v = verify_tlog_proof(p, entries[i], LOG.verifier_key)
            assert isinstance(v, VerifiedCheckpoint)
            assert v.checkpoint.size == n


@settings(max_examples=25, deadline=None)
@given(n=st.integers(min_value=1, max_value=70), data=st.data())
def test_inclusion_property(n: int, data: st.DataObject) -> None:
    tree = MemoryTree()
    leaves = [b"leaf %d" % i for i in range(n)]
    for leaf in leaves:
        tree.append(leaf)
    cp = sign_checkpoint(Checkpoint(ORIGIN, n, tree.root()), LOG)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    p = TlogProof.parse(proof_for(tree, cp, i).encode())
    verify_tlog_proof(p, leaves[i], LOG.verifier_key)
    j = data.draw(st.integers(min_value=0, max_value=n - 1))
    if leaves[j] != leaves[i]:
        with pytest.raises(ProofError):
            verify_tlog_proof(p, leaves[j], LOG.verifier_key)


def test_proof_against_older_checkpoint_of_a_grown_tree() -> None:
    tree, entries, _ = build(9)
    old = sign_checkpoint(Checkpoint(ORIGIN, 6, tree.root(6)), LOG)
    p = TlogProof(4, tuple(tree.inclusion_proof(4, 6)), old)
    assert verify_tlog_proof(p, entries[4], LOG.verifier_key).checkpoint.size == 6
    with pytest.raises(ProofError):
        verify_tlog_proof(TlogProof(7, (), old), entries[7], LOG.verifier_key)


def test_witnessed_proof() -> None:
    tree, entries, cp = build(5)
    cosigned = cosign(cp, WITNESS, 1_700_000_000)
    p = TlogProof.parse(proof_for(tree, cosigned, 3).encode())
    w = cosignature_verifier_key(WITNESS)
    v = verify_tlog_proof(p, entries[3], LOG.verifier_key, [w])
    assert v.cosignatures == ((w, 1_700_000_000),)


# Tampering: every altered part must fail verification with a VerificationError subclass.


def test_tampered_entry_rejected() -> None:
    tree, entries, cp = build(7)
    p = proof_for(tree, cp, 3)
    with pytest.raises(RootMismatchError) as info:
        verify_tlog_proof(p, entries[3] + b" ", LOG.verifier_key)
    assert info.value.want == tree.root()
    with pytest.raises(RootMismatchError):
        verify_tlog_proof(p, entries[4], LOG.verifier_key)


def test_tampered_index_rejected() -> None:
    tree, entries, cp = build(7)
    p = proof_for(tree, cp, 3)
    for index in (2, 4):
        with pytest.raises(ProofError):
            verify_tlog_proof(TlogProof(index, p.hashes, cp), entries[3], LOG.verifier_key)
    for index in (7, 8, 1000):
        with pytest.raises(ProofError):
            verify_tlog_proof(TlogProof(index, p.hashes, cp), entries[3], LOG.verifier_key)


def test_tampered_hashes_rejected() -> None:
    tree, entries, cp = build(7)
    p = proof_for(tree, cp, 3)
    for k in range(len(p.hashes)):
        h = bytearray(p.hashes[k])
        h[0] ^= 1
        hashes = (*p.hashes[:k], bytes(h), *p.hashes[k + 1 :])
        with pytest.raises(RootMismatchError):
            verify_tlog_proof(TlogProof(3, hashes, cp), entries[3], LOG.verifier_key)
    for hashes in (p.hashes[:-1], (*p.hashes, p.hashes[0]), p.hashes[::-1]):
        with pytest.raises(ProofError):
            verify_tlog_proof(TlogProof(3, hashes, cp), entries[3], LOG.verifier_key)


def test_tampered_checkpoint_rejected() -> None:
    tree, entries, cp = build(7)
    p = proof_for(tree, cp, 3)
    # Altered size, not re-signed: the log's signature fails.
    forged = cp.replace(b"\n7\n", b"\n8\n", 1)
    with pytest.raises(SignatureError):
        verify_tlog_proof(TlogProof(3, p.hashes, forged), entries[3], LOG.verifier_key)
    # Re-signed by someone else under the log's name: no signature by the log key.
    mallory = Signer.from_seed(ORIGIN, bytes([66]) * 32)
    other = sign_checkpoint(Checkpoint(ORIGIN, 7, tree.root()), mallory)
    with pytest.raises(UnverifiedNoteError):
        verify_tlog_proof(TlogProof(3, p.hashes, other), entries[3], LOG.verifier_key)
    # Honestly signed by the log, but for another tree: the proof does not reach its root.
    wrong_root = sign_checkpoint(Checkpoint(ORIGIN, 7, tree.root(6)), LOG)
    with pytest.raises(RootMismatchError):
        verify_tlog_proof(TlogProof(3, p.hashes, wrong_root), entries[3], LOG.verifier_key)


def test_tampered_proof_file_bytes_never_verify() -> None:
    tree, entries, cp = build(6)
    data = proof_for(tree, cp, 4).encode()
    for pos in range(len(data)):
        mutated = bytearray(data)
        mutated[pos] ^= 0x01
        try:
            p = TlogProof.parse(bytes(mutated))
            verify_tlog_proof(p, entries[4], LOG.verifier_key)
        except (FormatError, VerificationError):
            continue
        # Only a change the format ignores may verify: there is none.
        pytest.fail(f"flipping a bit at byte {pos} still verified")


def test_extra_data_is_not_authenticated_and_not_used() -> None:
    tree, entries, cp = build(3)
    p = proof_for(tree, cp, 1, b"anything")
    verify_tlog_proof(TlogProof.parse(p.encode()), entries[1], LOG.verifier_key)


def test_spec_document_example_is_current() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "spec" / "tlog-proof.md").read_text("utf-8")
    tree = MemoryTree()
    for e in (b"entry 0\n", b"entry 1\n", b"entry 2\n"):
        tree.append(e)
    log = Signer.from_seed("example.org/log", bytes(range(32, 64)))
    witness = Signer.from_seed("example.org/witness", bytes(range(64, 96)))
    cp = cosign(
        sign_checkpoint(Checkpoint("example.org/log", 3, tree.root()), log), witness, 1767225600
    )
    proof = TlogProof(1, tuple(tree.inclusion_proof(1)), cp)
    assert proof.encode().decode() in doc
    verify_tlog_proof(proof, b"entry 1\n", log.verifier_key, [cosignature_verifier_key(witness)])
    assert leaf_hash(b"entry 1\n").hex() in doc
