"""Tests for custody.tlog.note (c2sp.org/signed-note, x/mod sumdb/note keys).

Public vectors used here, each reproduced byte for byte:

* golang.org/x/mod/sumdb/note, note_test.go (TestSign, TestOpen, TestNewVerifier):
  the PeterNeumann private and verifier keys, the EnochRoot verifier key, the
  quotation signed by both, and x/mod's list of malformed notes.
* c2sp.org/signed-note, section "Verifier keys", example: the example.com/foo
  verifier key and "This is an example message." signed by it.  The stored copy
  of the spec this project read lacks that section; the vector is as quoted by
  several independent implementations, and it is self-authenticating: the key
  id is the SHA-256 of the key and the Ed25519 signature verifies under it.
* c2sp.org/signed-note, section "Note": the quasimodo example (no key
  published, so only its structure can be checked).
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
from custody.tlog.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_SIGNATURES,
    Note,
    NoteSignature,
    SignatureError,
    Signer,
    UnverifiedNoteError,
    VerifiedNote,
    VerifierKey,
    add_signatures,
    append_signatures,
    check_key_name,
    check_note_text,
    cosignature_message,
    key_id,
    open_note,
    sign_note,
)

# --- x/mod sumdb/note vectors (note_test.go) -------------------------------------------------

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
QUOTE = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqd"
    "ngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnW"
    "Lox33WWd1RvMc+QQ=\n"
)

# --- c2sp.org/signed-note vectors ------------------------------------------------------------

SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n"
    "\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mF"
    "XmRKuwHjG1Yu72IneyaQM=\n"
).encode()
QUASIMODO_NOTE = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed è subito sera.\n"
    "\n"
    "— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONr"
    "MouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
).encode()


def seed_signer(name: str, n: int) -> Signer:
    return Signer.from_seed(name, bytes([n]) * 32)


PETER = VerifierKey.parse(PETER_VKEY)
ENOCH = VerifierKey.parse(ENOCH_VKEY)


# --- public vectors --------------------------------------------------------------------------


def test_peter_neumann_signature_is_reproduced_exactly() -> None:
    signer = Signer.parse_private_key(PETER_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.verifier_key == PETER
    assert signer.verifier_key.encode() == PETER_VKEY
    assert signer.encode_private_key() == PETER_SKEY
    assert sign_note(QUOTE, [signer]) == (QUOTE + "\n" + PETER_SIG).encode()


def test_peter_neumann_note_opens() -> None:
    v = open_note((QUOTE + "\n" + PETER_SIG).encode(), [PETER])
    assert isinstance(v, VerifiedNote)
    assert v.text == QUOTE
    assert v.verified_by == (PETER,)
    assert v.note.signatures[0].key_id == bytes.fromhex("c74f20a3")


def test_x_mod_two_signatures_one_known_one_ignored() -> None:
    data = (QUOTE + "\n" + PETER_SIG + ENOCH_SIG).encode()
    assert open_note(data, [PETER]).verified_by == (PETER,)
    assert open_note(data, [ENOCH]).verified_by == (ENOCH,)
    assert open_note(data, [ENOCH, PETER]).verified_by == (PETER, ENOCH)
    with pytest.raises(UnverifiedNoteError, match="not signed by any trusted key"):
        open_note(data, [])


def test_c2sp_spec_verifier_key_example_verifies() -> None:
    key = VerifierKey.parse(SPEC_VKEY)
    assert (key.name, key.alg, key.key_id.hex()) == ("example.com/foo", ALG_ED25519, "530d903a")
    assert key.encode() == SPEC_VKEY
    v = open_note(SPEC_NOTE, [key])
    assert v.text == "This is an example message.\n"
    assert Note.parse(SPEC_NOTE).encode() == SPEC_NOTE


def test_c2sp_spec_quasimodo_example_structure() -> None:
    note = Note.parse(QUASIMODO_NOTE)
    # The text keeps its inner blank line: only the *last* blank line separates.
    assert note.text.endswith("\n\ned è subito sera.\n")
    (sig,) = note.signatures
    assert sig.name == "quasimodo.example/salvatore"
    assert len(sig.signature) == 64
    assert note.encode() == QUASIMODO_NOTE
    with pytest.raises(UnverifiedNoteError):
        open_note(QUASIMODO_NOTE, [PETER])


def test_key_id_formula() -> None:
    pub = PETER.public
    want = hashlib.sha256(b"PeterNeumann\n\x01" + pub).digest()[:4]
    assert key_id("PeterNeumann", ALG_ED25519, pub) == want == PETER.key_id
    # The type byte is part of the id: one key, two ids.
    assert key_id("PeterNeumann", ALG_COSIGNATURE_V1, pub) != want


# --- keys ------------------------------------------------------------------------------------


def _manglings(s: str) -> list[str]:
    """x/mod TestNewVerifier: every proper substring and every single-byte increment."""
    out = [s[i:j] for i in range(len(s) + 1) for j in range(i + 1, len(s) + 1)]
    out = [m for m in out if m != s]
    out += [s[:i] + chr(ord(s[i]) + 1) + s[i + 1 :] for i in range(len(s))]
    return out


def test_verifier_key_manglings_rejected() -> None:
    for bad in _manglings(PETER_VKEY):
        with pytest.raises(FormatError):
            VerifierKey.parse(bad)


def test_private_key_manglings_rejected() -> None:
    for bad in _manglings(PETER_SKEY):
        with pytest.raises(FormatError):
            Signer.parse_private_key(bad)


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        # x/mod: wrong key length and unknown algorithm, each with an adjusted key hash.
        (
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "canonical base64",  # x/mod decodes it leniently, then finds the length wrong
        ),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "unknown signature"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+0xc74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex digits"),
        ("PeterNeumann+c74f20a3", "three"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW=", "base64"),
        # An ECDSA (type 0x02) key, as Sigstore's Rekor publishes: named, not "bad id".
        ("rekor.example+c0d23d6a+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABA==", "type 0x02"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "space"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "empty"),
    ],
)
def test_verifier_key_errors_name_the_problem(vkey: str, message: str) -> None:
    with pytest.raises(FormatError, match=message) as info:
        VerifierKey.parse(vkey)
    assert "\n" not in str(info.value)


def test_verifier_key_wrong_length_with_matching_id() -> None:
    data = b"\x01" + PETER.public + b"X"
    vkey = f"PeterNeumann+{key_id('PeterNeumann', 1, PETER.public + b'X').hex()}+"
    with pytest.raises(FormatError, match="not 32 bytes"):
        VerifierKey.parse(vkey + base64.b64encode(data).decode())


def test_verifier_key_uppercase_hex_accepted_and_encoded_lowercase() -> None:
    key = VerifierKey.parse(PETER_VKEY.replace("c74f20a3", "C74F20A3"))
    assert key == PETER and key.encode() == PETER_VKEY


def test_cosignature_type_verifier_key_round_trip() -> None:
    key = VerifierKey("witness.example/w1", ALG_COSIGNATURE_V1, PETER.public)
    assert VerifierKey.parse(key.encode()) == key
    assert key.encode().split("+")[2].startswith("B")  # base64 of 0x04 || ...


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("example.org/log", True),
        ("PeterNeumann", True),
        ("ünïcødé/λ", True),
        ("", False),
        ("a b", False),
        ("a+b", False),
        ("a\tb", False),
        ("a\u00a0b", False),  # no-break space
        ("a\u3000b", False),  # ideographic space
        ("a\u2028b", False),  # line separator
        ("a\x7fb", False),  # DEL: not printable
        ("a\u200bb", False),  # zero-width space: a format character
        ("a\ud800b", False),  # lone surrogate
    ],
)
def test_check_key_name(name: str, ok: bool) -> None:
    if ok:
        assert check_key_name(name) == name
    else:
        with pytest.raises(FormatError):
            check_key_name(name)


def test_verifier_key_constructor_checks() -> None:
    with pytest.raises(FormatError, match="unknown signature type 0x02"):
        VerifierKey("a", 2, bytes(32))
    with pytest.raises(FormatError, match="not 32 bytes"):
        VerifierKey("a", ALG_ED25519, bytes(31))
    with pytest.raises(FormatError):
        VerifierKey("a b", ALG_ED25519, bytes(32))


def test_signer_seed_round_trip_and_repr_hides_key() -> None:
    s = seed_signer("example.org/a", 7)
    assert s.seed() == bytes([7]) * 32
    assert Signer.from_seed(s.name, s.seed()).verifier_key == s.verifier_key
    assert Signer.parse_private_key(s.encode_private_key()).verifier_key == s.verifier_key
    assert s.seed().hex() not in repr(s)
    assert base64.b64encode(s.seed()).decode() not in repr(s)
    with pytest.raises(FormatError, match="32 bytes"):
        Signer.from_seed("a", bytes(31))
    assert len(s.sign(b"x")) == 64


def test_generate_gives_distinct_working_keys() -> None:
    a, b = Signer.generate("a.example"), Signer.generate("a.example")
    assert a.verifier_key != b.verifier_key
    open_note(sign_note("hi\n", [a]), [a.verifier_key])


def test_verifier_key_verify_raises_not_returns() -> None:
    s = seed_signer("k", 1)
    key = s.verifier_key
    sig = s.sign(b"msg")
    key.verify(b"msg", sig)  # returns nothing; raises on failure
    with pytest.raises(SignatureError) as info:
        key.verify(b"msG", sig)
    assert info.value.key_name == "k" and info.value.key_id == key.key_id
    assert isinstance(info.value, VerificationError)
    with pytest.raises(SignatureError, match="64"):
        key.verify(b"msg", sig[:-1])


def test_cosignature_type_key_verifies_timestamped_signature() -> None:
    s = seed_signer("w.example", 2)
    key = VerifierKey(s.name, ALG_COSIGNATURE_V1, s.public)
    text = b"origin\n1\n" + base64.b64encode(bytes(32)) + b"\n"
    message = b"cosignature/v1\ntime 1679315147\n" + text
    assert cosignature_message(text, 1679315147) == message
    payload = (1679315147).to_bytes(8, "big") + s.sign(message)
    key.verify(text, payload)
    with pytest.raises(SignatureError):
        key.verify(text, (1679315148).to_bytes(8, "big") + payload[8:])
    with pytest.raises(SignatureError, match="72"):
        key.verify(text, payload[:-1])
    with pytest.raises(SignatureError, match="2\\^63"):
        key.verify(text, (2**63).to_bytes(8, "big") + payload[8:])


# --- opening notes ---------------------------------------------------------------------------


def test_bad_signature_from_known_key_rejected() -> None:
    # x/mod TestOpen: "ABCD" spliced into Peter's signature.
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(SignatureError, match="PeterNeumann\\+c74f20a3") as info:
        open_note((QUOTE + "\n" + bad).encode(), [PETER])
    assert info.value.key_name == "PeterNeumann"
    # The same line is merely ignored by someone who does not trust Peter.
    assert open_note((QUOTE + "\n" + bad + ENOCH_SIG).encode(), [ENOCH]).verified_by == (ENOCH,)


def test_altered_text_rejected() -> None:
    data = (QUOTE.replace("answer", "ANSWER") + "\n" + PETER_SIG).encode()
    with pytest.raises(SignatureError):
        open_note(data, [PETER])


def test_same_name_or_same_id_alone_is_another_key() -> None:
    # c2sp: ignore signatures from unknown keys even if they share a name or an id.
    impostor = seed_signer("PeterNeumann", 9)
    data = sign_note(QUOTE, [impostor])
    with pytest.raises(UnverifiedNoteError):
        open_note(data, [PETER])
    # Same id, other name: ignored too.
    note = Note.parse((QUOTE + "\n" + PETER_SIG).encode())
    renamed = NoteSignature(
        "CarmenSandiego", note.signatures[0].key_id, note.signatures[0].signature
    )
    with pytest.raises(UnverifiedNoteError):
        open_note(Note(QUOTE, (renamed,)).encode(), [PETER])


def test_every_signature_by_a_known_key_is_checked() -> None:
    # Duplicates of a good signature are fine and reported once ...
    data = (QUOTE + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG).encode()
    assert open_note(data, [PETER, ENOCH]).verified_by == (PETER, ENOCH)
    # ... but a bad one after a good one is not skipped (x/mod would skip it).
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(SignatureError):
        open_note((QUOTE + "\n" + PETER_SIG + bad).encode(), [PETER])


def test_ambiguous_known_keys_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = (QUOTE + "\n" + PETER_SIG).encode()
    # A repeated identical key is harmless.
    assert open_note(data, [PETER, PETER]).verified_by == (PETER,)
    # Two different keys with the same (name, id) cannot be told apart: a key id is
    # only 32 bits, so force a collision rather than search for one.
    peter_id = PETER.key_id
    monkeypatch.setattr("custody.tlog.note.key_id", lambda name, alg, public: peter_id)
    other = VerifierKey(PETER.name, ALG_ED25519, bytes(32))
    with pytest.raises(InputError, match="share name and key id"):
        open_note(data, [PETER, other])


def test_too_many_signatures() -> None:
    signers = [seed_signer(f"k{i}", i) for i in range(16)]
    data = sign_note("text\n", signers)
    # c2sp: verifiers MUST accept at least 16 signatures.
    assert len(open_note(data, [s.verifier_key for s in signers]).verified_by) == 16
    # x/mod TestOpen: 101 copies of a signature are malformed (100 are not).
    assert open_note((QUOTE + "\n" + PETER_SIG * MAX_SIGNATURES).encode(), [PETER])
    with pytest.raises(FormatError, match="101 signatures"):
        open_note((QUOTE + "\n" + PETER_SIG * 101).encode(), [PETER])


MALFORMED = [
    # x/mod TestOpen badMsgs
    ("text only", QUOTE, "no blank line"),
    ("blank line, no signatures", QUOTE + "\n", "no signature lines"),
    ("no final newline", QUOTE + "\n" + PETER_SIG[:-1], "does not end in a newline"),
    ("control character", "\x01" + QUOTE + "\n" + PETER_SIG, "control character U\\+0001"),
    (
        "bad name",
        QUOTE + "\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZ"
        "SNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        "does not end in a newline",
    ),
    (
        "trailing text line",
        QUOTE + "\n" + PETER_SIG + "Unexpected line.\n",
        "line 2 does not start",
    ),
    # more
    ("bad name, with newline", QUOTE + "\n— Bad Name AAAAAAAA\n", "not valid base64"),
    ("hyphen instead of em dash", QUOTE + "\n" + PETER_SIG.replace("—", "-"), "em dash"),
    ("en dash instead of em dash", QUOTE + "\n" + PETER_SIG.replace("—", "–"), "em dash"),
    ("no space after dash", QUOTE + "\n" + PETER_SIG.replace("— ", "—"), "em dash"),
    ("no signature after name", QUOTE + "\n— PeterNeumann\n", "no space between"),
    ("empty signature", QUOTE + "\n— PeterNeumann \n", "empty"),
    ("signature with plus in name", QUOTE + "\n— a+b AAAAAAAA\n", "'\\+'"),
    ("signature too short", QUOTE + "\n— PeterNeumann AAAAAA==\n", "too short"),
    ("not base64", QUOTE + "\n— PeterNeumann !!!!\n", "not valid base64"),
    ("unpadded base64", QUOTE + "\n— PeterNeumann AAAAAAA\n", "base64"),
    ("non-canonical base64", QUOTE + "\n— PeterNeumann AAAAAAB=\n", "canonical"),
    ("carriage return", QUOTE.replace("\n", "\r\n", 1) + "\n" + PETER_SIG, "U\\+000D"),
    ("tab", "a\tb\n\n" + PETER_SIG, "U\\+0009"),
    ("blank line among signatures", QUOTE + "\n" + PETER_SIG + "\n" + ENOCH_SIG[:-1], "newline"),
    ("empty", "", "no blank line"),
]


@pytest.mark.parametrize(("desc", "data", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_notes_rejected(desc: str, data: str, message: str) -> None:
    with pytest.raises(FormatError, match=message) as info:
        open_note(data.encode(), [PETER])
    assert "\n" not in info.value.message


def test_invalid_utf8_rejected() -> None:
    with pytest.raises(FormatError, match="not valid UTF-8 at byte 0"):
        Note.parse(b"\xff" + (QUOTE + "\n" + PETER_SIG).encode())
    # An encoded surrogate is not UTF-8 either.
    with pytest.raises(FormatError, match="UTF-8"):
        Note.parse(b"\xed\xa0\x80\n\n" + PETER_SIG.encode())


# --- signing ---------------------------------------------------------------------------------


def test_sign_with_several_keys_and_open_with_any() -> None:
    a, b, c = seed_signer("a.example", 1), seed_signer("b.example", 2), seed_signer("c.example", 3)
    data = sign_note("custody/entry/v1\ntype ingest\n", [a, b, c])
    lines = data.decode().split("\n")
    assert lines[:3] == ["custody/entry/v1", "type ingest", ""]
    assert [line.split(" ")[1] for line in lines[3:6]] == ["a.example", "b.example", "c.example"]
    assert open_note(data, [b.verifier_key]).verified_by == (b.verifier_key,)


def test_sign_note_rejects_bad_input() -> None:
    s = seed_signer("a", 1)
    with pytest.raises(FormatError, match="newline"):
        sign_note("abc", [s])
    with pytest.raises(FormatError, match="control"):
        sign_note("a\x00b\n", [s])
    with pytest.raises(FormatError):
        sign_note("\ud800\n", [s])
    with pytest.raises(InputError, match="no signer"):
        sign_note("abc\n", [])
    with pytest.raises(InputError, match="given twice"):
        sign_note("abc\n", [s, seed_signer("a", 1)])


def test_add_signatures_keeps_bytes_and_appends() -> None:
    peter = Signer.parse_private_key(PETER_SKEY)
    original = sign_note(QUOTE, [peter])
    enoch_like = seed_signer("EnochRoot", 5)
    both = add_signatures(original, [enoch_like])
    assert both.startswith(original)
    assert both.count("—".encode()) == 2
    assert open_note(both, [PETER, enoch_like.verifier_key]).verified_by == (
        PETER,
        enoch_like.verifier_key,
    )
    with pytest.raises(InputError, match="already signed by key PeterNeumann\\+c74f20a3"):
        add_signatures(both, [peter])
    with pytest.raises(FormatError):
        add_signatures(b"not a note", [peter])


def test_add_signatures_keeps_existing_unknown_lines_verbatim() -> None:
    data = (QUOTE + "\n" + ENOCH_SIG).encode()
    out = add_signatures(data, [Signer.parse_private_key(PETER_SKEY)])
    assert out == (QUOTE + "\n" + ENOCH_SIG + PETER_SIG).encode()


def test_append_signatures_limit() -> None:
    data = (QUOTE + "\n" + PETER_SIG * MAX_SIGNATURES).encode()
    extra = NoteSignature("x", b"\0\0\0\0", b"\1")
    with pytest.raises(FormatError, match="at most 100"):
        append_signatures(data, [extra])


def test_note_constructor_checks() -> None:
    sig = NoteSignature("a", b"abcd", b"s")
    with pytest.raises(FormatError, match="no signatures"):
        Note("x\n", ())
    with pytest.raises(FormatError, match="newline"):
        Note("x", (sig,))
    with pytest.raises(FormatError, match="4 bytes"):
        NoteSignature("a", b"abc", b"s")
    with pytest.raises(FormatError, match="empty"):
        NoteSignature("a", b"abcd", b"")
    assert sig.line() == "— a " + base64.b64encode(b"abcds").decode()


def test_check_note_text() -> None:
    assert check_note_text("\n") == "\n"
    assert check_note_text("a\n\nb\n") == "a\n\nb\n"
    with pytest.raises(FormatError):
        check_note_text("")


# --- properties ------------------------------------------------------------------------------

_text_char = st.characters(
    exclude_categories=["Cs"], exclude_characters=[chr(c) for c in range(0x20) if c != 10]
)
note_texts = st.text(_text_char, max_size=200).map(lambda t: t + "\n")
key_names = st.text(
    st.characters(categories=("L", "N", "P", "S"), exclude_characters="+"),
    min_size=1,
    max_size=30,
)
seeds = st.binary(min_size=32, max_size=32)


@settings(max_examples=60, deadline=None)
@given(text=note_texts, names=st.lists(key_names, min_size=1, max_size=4, unique=True), seed=seeds)
def test_sign_open_round_trip(text: str, names: list[str], seed: bytes) -> None:
    signers = [Signer.from_seed(n, seed) for n in names]
    data = sign_note(text, signers)
    note = Note.parse(data)
    assert note.text == text
    assert note.encode() == data
    v = open_note(data, [signers[-1].verifier_key])
    assert v.text == text and v.verified_by == (signers[-1].verifier_key,)


@settings(max_examples=60, deadline=None)
@given(name=key_names, alg=st.sampled_from([ALG_ED25519, ALG_COSIGNATURE_V1]), public=seeds)
def test_verifier_key_round_trip(name: str, alg: int, public: bytes) -> None:
    key = VerifierKey(name, alg, public)
    assert VerifierKey.parse(key.encode()) == key


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_parse_arbitrary_bytes_raises_only_format_error(data: bytes) -> None:
    try:
        note = Note.parse(data)
    except FormatError:
        return
    assert note.encode() == data


@settings(max_examples=300, deadline=None)
@given(pos=st.integers(min_value=0), new=st.integers(min_value=0, max_value=255))
def test_mutated_note_never_leaks_other_errors(pos: int, new: int) -> None:
    data = bytearray((QUOTE + "\n" + PETER_SIG + ENOCH_SIG).encode())
    data[pos % len(data)] = new
    with contextlib.suppress(FormatError, VerificationError):
        open_note(bytes(data), [PETER, ENOCH])


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=120))
def test_verifier_key_parse_raises_only_format_error(text: str) -> None:
    with contextlib.suppress(FormatError):
        VerifierKey.parse(text)
    with contextlib.suppress(FormatError):
        Signer.parse_private_key(text)


def test_independent_ed25519_check_of_a_note_signature() -> None:
    # Verify a custody signature line with pyca/cryptography directly, by the spec alone.
    s = seed_signer("example.org/x", 4)
    data = sign_note("hello\n", [s])
    line = data.decode().split("\n")[2]
    dash, name, b64 = line.split(" ")
    raw = base64.b64decode(b64)
    assert dash == "\u2014" and name == "example.org/x"
    assert raw[:4] == hashlib.sha256(b"example.org/x\n\x01" + s.public).digest()[:4]
    Ed25519PublicKey.from_public_bytes(s.public).verify(raw[4:], b"hello\n")


def test_spec_document_example_is_current() -> None:
    # docs/spec/signed-note.md shows these bytes; regenerate them to keep the document true.
    doc = (Path(__file__).parents[3] / "docs" / "spec" / "signed-note.md").read_text("utf-8")
    alice = Signer.from_seed("example.org/alice", bytes(range(32)))
    data = sign_note("custody/entry/v1\ntype example\n", [alice]).decode()
    assert data in doc
    assert alice.verifier_key.encode() in doc
    assert alice.encode_private_key() in doc
    assert alice.key_id.hex() == "77071873"
