"""Tests for custody.tlog.checkpoint (c2sp.org/tlog-checkpoint, c2sp.org/tlog-cosignature).

The spec examples publish no keys, so they are checked for structure: the
tlog-checkpoint example note, and the tlog-cosignature example whose witness
line must decode to key id || the timestamp 1679315147 of the spec's signed
message example || 64 signature bytes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.errors import FormatError, InputError, VerificationError
from custody.tlog.checkpoint import (
    Checkpoint,
    OriginMismatchError,
    VerifiedCheckpoint,
    cosign,
    cosignature_timestamp,
    cosignature_verifier_key,
    open_checkpoint,
    sign_checkpoint,
)
from custody.tlog.merkle import MemoryTree
from custody.tlog.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Note,
    SignatureError,
    Signer,
    UnverifiedNoteError,
    VerifierKey,
    add_signatures,
    cosignature_message,
    sign_note,
)

SPEC_ROOT_B64 = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
SPEC_BODY = f"example.com/behind-the-sofa\n20852163\n{SPEC_ROOT_B64}\n"
SPEC_LOG_LINE = (
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/"
    "Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)
SPEC_WITNESS_LINE = (
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJ"
    "sX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
SPEC_COSIGNED = (SPEC_BODY + "\n" + SPEC_LOG_LINE + SPEC_WITNESS_LINE).encode()

ORIGIN = "custody.example/log"
LOG = Signer.from_seed(ORIGIN, bytes([1]) * 32)
W1 = Signer.from_seed("witness.example/w1", bytes([2]) * 32)
W2 = Signer.from_seed("witness.example/w2", bytes([3]) * 32)
ROOT = hashlib.sha256(b"root").digest()
T = 1_700_000_000


def signed(size: int = 7, extensions: tuple[str, ...] = ()) -> bytes:
    return sign_checkpoint(Checkpoint(ORIGIN, size, ROOT, extensions), LOG)


# --- the checkpoint body ---------------------------------------------------------------------


def test_body_layout() -> None:
    cp = Checkpoint(ORIGIN, 7, ROOT)
    assert cp.body() == f"{ORIGIN}\n7\n{base64.b64encode(ROOT).decode()}\n"
    assert Checkpoint.parse(cp.body()) == cp


def test_spec_checkpoint_example_parses() -> None:
    note = Note.parse((SPEC_BODY + "\n" + SPEC_LOG_LINE).encode())
    cp = Checkpoint.parse(note.text)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root == base64.b64decode(SPEC_ROOT_B64)
    assert cp.body() == SPEC_BODY
    # The log's key name is the origin line, and an Ed25519 signature is 4 + 64 bytes.
    assert note.signatures[0].name == cp.origin
    assert len(note.signatures[0].signature) == 64


def test_spec_cosignature_example_structure() -> None:
    note = Note.parse(SPEC_COSIGNED)
    assert note.encode() == SPEC_COSIGNED
    witness = note.signatures[1]
    assert witness.name == "witness.example.com/w1"
    assert len(witness.signature) == 8 + 64
    assert cosignature_timestamp(witness) == 1679315147
    # Unknown keys are ignored, so opening with our own keys finds no log signature.
    key = Signer.from_seed("example.com/behind-the-sofa", bytes(32)).verifier_key
    with pytest.raises(UnverifiedNoteError, match="not signed by log key"):
        open_checkpoint(SPEC_COSIGNED, key, [cosignature_verifier_key(W1)])


def test_spec_cosigned_message_layout() -> None:
    # c2sp.org/tlog-cosignature, "Ed25519 signed message", verbatim.
    want = (
        b"cosignature/v1\n"
        b"time 1679315147\n"
        b"example.com/behind-the-sofa\n"
        b"20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    assert cosignature_message(SPEC_BODY.encode(), 1679315147) == want


def test_extension_lines() -> None:
    cp = Checkpoint(ORIGIN, 3, ROOT, ("ext one", "— two"))
    assert cp.body().endswith("\next one\n— two\n")
    assert Checkpoint.parse(cp.body()) == cp
    v = open_checkpoint(sign_checkpoint(cp, LOG), LOG.verifier_key)
    assert v.checkpoint.extensions == ("ext one", "— two")


def test_size_zero_and_large() -> None:
    for size in (0, 1, 2**63 - 1, 2**64 - 1):
        cp = Checkpoint(ORIGIN, size, ROOT)
        assert Checkpoint.parse(cp.body()).size == size


BAD_BODIES = [
    ("two lines", f"{ORIGIN}\n7\n", "needs origin, size and root"),
    ("no final newline", f"{ORIGIN}\n7\n{SPEC_ROOT_B64}", "newline"),
    ("empty origin", f"\n7\n{SPEC_ROOT_B64}\n", "origin is empty"),
    ("leading zero", f"{ORIGIN}\n07\n{SPEC_ROOT_B64}\n", "size line '07'"),
    ("negative size", f"{ORIGIN}\n-1\n{SPEC_ROOT_B64}\n", "size line"),
    ("plus sign", f"{ORIGIN}\n+1\n{SPEC_ROOT_B64}\n", "size line"),
    ("underscore", f"{ORIGIN}\n1_0\n{SPEC_ROOT_B64}\n", "size line"),
    ("space", f"{ORIGIN}\n 1\n{SPEC_ROOT_B64}\n", "size line"),
    ("fullwidth digit", f"{ORIGIN}\n１\n{SPEC_ROOT_B64}\n", "size line"),
    ("empty size", f"{ORIGIN}\n\n{SPEC_ROOT_B64}\n", "size line"),
    ("size above 2^64-1", f"{ORIGIN}\n{2**64}\n{SPEC_ROOT_B64}\n", "outside"),
    ("root not base64", f"{ORIGIN}\n7\nnot base64!\n", "root hash line"),
    ("root 31 bytes", f"{ORIGIN}\n7\n{base64.b64encode(bytes(31)).decode()}\n", "32 bytes"),
    ("root non-canonical", f"{ORIGIN}\n7\n{SPEC_ROOT_B64[:-2]}J=\n", "canonical"),
    ("root hex", f"{ORIGIN}\n7\n{ROOT.hex()}\n", "root hash line"),
    ("empty extension", f"{ORIGIN}\n7\n{SPEC_ROOT_B64}\n\nx\n", "extension line 1 is empty"),
    ("control char", f"{ORIGIN}\x01\n7\n{SPEC_ROOT_B64}\n", "control character"),
]


@pytest.mark.parametrize(("desc", "text", "message"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_checkpoint_bodies_rejected(desc: str, text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message) as info:
        Checkpoint.parse(text)
    assert "\n" not in info.value.message


def test_constructor_checks() -> None:
    with pytest.raises(FormatError, match="outside"):
        Checkpoint(ORIGIN, -1, ROOT)
    with pytest.raises(FormatError, match="not an integer"):
        Checkpoint(ORIGIN, True, ROOT)
    with pytest.raises(FormatError, match="32 bytes"):
        Checkpoint(ORIGIN, 1, ROOT[:31])
    with pytest.raises(FormatError, match="newline"):
        Checkpoint("a\nb", 1, ROOT)
    with pytest.raises(FormatError, match="extension line 2 is empty"):
        Checkpoint(ORIGIN, 1, ROOT, ("x", ""))


@settings(max_examples=100, deadline=None)
@given(
    origin=st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
        lambda s: "\n" not in s
    ),
    size=st.integers(min_value=0, max_value=2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=20),
        max_size=3,
    ),
)
def test_body_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.parse(cp.body()) == cp


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=120))
def test_parse_raises_only_format_error(text: str) -> None:
    with contextlib.suppress(FormatError):
        Checkpoint.parse(text)


# --- the log signature -----------------------------------------------------------------------


def test_sign_and_open() -> None:
    data = signed()
    v = open_checkpoint(data, LOG.verifier_key)
    assert isinstance(v, VerifiedCheckpoint)
    assert v.checkpoint == Checkpoint(ORIGIN, 7, ROOT)
    assert v.note.encode() == data
    assert v.cosignatures == ()


def test_log_key_must_match_origin() -> None:
    other = Signer.from_seed("other.example/log", bytes([1]) * 32)
    with pytest.raises(InputError, match="cannot sign a checkpoint for origin"):
        sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), other)
    with pytest.raises(OriginMismatchError, match=r"other\.example/log") as info:
        open_checkpoint(signed(), other.verifier_key)
    assert info.value.origin == ORIGIN and isinstance(info.value, VerificationError)


def test_checkpoint_signed_by_another_key_of_the_log_is_unverified() -> None:
    rotated = Signer.from_seed(ORIGIN, bytes([9]) * 32)
    with pytest.raises(UnverifiedNoteError, match="not signed by log key"):
        open_checkpoint(sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), rotated), LOG.verifier_key)


def test_checkpoint_without_log_signature_but_with_cosignature_is_unverified() -> None:
    # A note signed by the witness alone is not a checkpoint of the log.
    body = Checkpoint(ORIGIN, 1, ROOT).body()
    only_w = cosign(sign_note(body, [W2]), W1, T)
    with pytest.raises(UnverifiedNoteError, match="not signed by log key"):
        open_checkpoint(only_w, LOG.verifier_key, [cosignature_verifier_key(W1)])


def test_tampered_checkpoint_rejected() -> None:
    data = signed(size=7).replace(b"\n7\n", b"\n8\n")
    with pytest.raises(SignatureError, match=ORIGIN):
        open_checkpoint(data, LOG.verifier_key)


def test_malformed_checkpoint_note() -> None:
    with pytest.raises(FormatError):
        open_checkpoint(b"garbage", LOG.verifier_key)
    not_a_checkpoint = sign_note("hello\n", [LOG])
    with pytest.raises(FormatError, match="needs origin, size and root"):
        open_checkpoint(not_a_checkpoint, LOG.verifier_key)


def test_key_types_checked() -> None:
    with pytest.raises(InputError, match="not Ed25519"):
        open_checkpoint(signed(), cosignature_verifier_key(LOG))
    with pytest.raises(InputError, match="not cosignature/v1") as info:
        open_checkpoint(signed(), LOG.verifier_key, [W1.verifier_key])
    assert "cosignature_verifier_key" in (info.value.hint or "")


# --- cosignatures ----------------------------------------------------------------------------


def test_cosignature_round_trip() -> None:
    data = signed()
    c1 = cosign(data, W1, T)
    c2 = cosign(c1, W2, T + 5)
    assert c1.startswith(data) and c2.startswith(c1)
    k1, k2 = cosignature_verifier_key(W1), cosignature_verifier_key(W2)
    v = open_checkpoint(c2, LOG.verifier_key, [k1, k2])
    assert v.cosignatures == ((k1, T), (k2, T + 5))
    # Witnesses not asked about are ignored; absent witnesses are not an error here.
    assert open_checkpoint(c2, LOG.verifier_key, [k2]).cosignatures == ((k2, T + 5),)
    assert open_checkpoint(c2, LOG.verifier_key).cosignatures == ()
    other = cosignature_verifier_key(Signer.from_seed("w3.example", bytes(32)))
    assert open_checkpoint(data, LOG.verifier_key, [other]).cosignatures == ()


def test_cosignature_line_layout_checked_independently() -> None:
    data = signed(extensions=("ext",))
    line = cosign(data, W1, T)[len(data) :].decode()
    assert line.startswith("— witness.example/w1 ") and line.endswith("\n")
    raw = base64.b64decode(line.split(" ")[2])
    assert len(raw) == 4 + 8 + 64
    want_id = hashlib.sha256(b"witness.example/w1\n\x04" + W1.public).digest()[:4]
    assert raw[:4] == want_id
    assert int.from_bytes(raw[4:12], "big") == T
    body = Note.parse(data).text.encode()
    message = b"cosignature/v1\ntime %d\n" % T + body
    assert message.endswith(b"\next\n")  # extension lines are signed too
    Ed25519PublicKey.from_public_bytes(W1.public).verify(raw[12:], message)


def test_cosignature_verifier_key() -> None:
    k = cosignature_verifier_key(W1)
    assert (k.name, k.alg, k.public) == (W1.name, ALG_COSIGNATURE_V1, W1.public)
    assert cosignature_verifier_key(W1.verifier_key) == k
    assert cosignature_verifier_key(k) == k
    assert k.key_id != W1.verifier_key.key_id
    assert VerifierKey.parse(k.encode()) == k


def test_bad_cosignature_from_known_witness_rejected() -> None:
    c = cosign(signed(), W1, T)
    line_start = c.rindex("—".encode())
    raw = bytearray(base64.b64decode(c[line_start:].split(b" ")[2]))
    raw[20] ^= 1
    bad = c[:line_start] + b"\xe2\x80\x94 witness.example/w1 " + base64.b64encode(raw) + b"\n"
    k1 = cosignature_verifier_key(W1)
    with pytest.raises(SignatureError, match=r"witness\.example/w1"):
        open_checkpoint(bad, LOG.verifier_key, [k1])
    # Ignored by a verifier that does not trust W1.
    assert open_checkpoint(bad, LOG.verifier_key).cosignatures == ()


def test_cosignature_with_altered_timestamp_rejected() -> None:
    c = cosign(signed(), W1, T)
    line_start = c.rindex("—".encode())
    raw = bytearray(base64.b64decode(c[line_start:].split(b" ")[2]))
    raw[4:12] = (T + 1).to_bytes(8, "big")
    bad = c[:line_start] + b"\xe2\x80\x94 witness.example/w1 " + base64.b64encode(raw) + b"\n"
    with pytest.raises(SignatureError):
        open_checkpoint(bad, LOG.verifier_key, [cosignature_verifier_key(W1)])


def test_cosignature_over_other_checkpoint_rejected() -> None:
    a, b = signed(size=7), signed(size=8)
    line = cosign(a, W1, T)[len(a) :]
    with pytest.raises(SignatureError):
        open_checkpoint(b + line, LOG.verifier_key, [cosignature_verifier_key(W1)])


def test_plain_signature_is_not_a_cosignature() -> None:
    # An ordinary 0x01 signature by the witness key has another key id: ignored as a cosignature.
    data = add_signatures(signed(), [W1])
    assert (
        open_checkpoint(data, LOG.verifier_key, [cosignature_verifier_key(W1)]).cosignatures == ()
    )


def test_cosign_errors() -> None:
    data = signed()
    with pytest.raises(InputError, match="outside"):
        cosign(data, W1, -1)
    with pytest.raises(InputError, match="outside"):
        cosign(data, W1, 2**63)
    assert cosign(data, W1, 2**63 - 1)
    c = cosign(data, W1, T)
    with pytest.raises(InputError, match="already signed"):
        cosign(c, W1, T + 1)
    with pytest.raises(FormatError):
        cosign(sign_note("not a checkpoint\n", [LOG]), W1, T)


def test_log_and_witness_keys_are_distinct_types() -> None:
    assert LOG.verifier_key.alg == ALG_ED25519
    assert cosignature_verifier_key(LOG).alg == ALG_COSIGNATURE_V1


def spec_document_example() -> bytes:
    """The cosigned checkpoint shown in docs/spec/checkpoint.md (and tlog-proof.md)."""
    tree = MemoryTree()
    for e in (b"entry 0\n", b"entry 1\n", b"entry 2\n"):
        tree.append(e)
    log = Signer.from_seed("example.org/log", bytes(range(32, 64)))
    witness = Signer.from_seed("example.org/witness", bytes(range(64, 96)))
    data = sign_checkpoint(Checkpoint("example.org/log", 3, tree.root()), log)
    return cosign(data, witness, 1767225600)


def test_spec_document_example_is_current() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "spec" / "checkpoint.md").read_text("utf-8")
    data = spec_document_example()
    assert data.decode() in doc
    log = Signer.from_seed("example.org/log", bytes(range(32, 64)))
    witness = Signer.from_seed("example.org/witness", bytes(range(64, 96)))
    assert log.verifier_key.encode() in doc
    assert cosignature_verifier_key(witness).encode() in doc
    assert witness.key_id.hex() in doc
    body = Note.parse(data).text.encode()
    assert cosignature_message(body, 1767225600).decode() in doc
