"""Fuzzing every parser of untrusted bytes: it returns a value or raises CustodyError.

Each test feeds one parser mutations of the genuine inputs in `fuzz_corpus` (what
custody itself writes) and random bytes, under the bounds of `fuzzkit.check`: no
exception other than `custody.errors.CustodyError`, no hang, bounded memory.  Where
a parse succeeds, the test goes one step further the way custody does with the
value (a parsed entry is typed, a parsed key file is unlocked, a parsed offer's
entry is parsed), since that is the next code the bytes reach.
"""

from __future__ import annotations

import json
from pathlib import Path

import fuzz_corpus
import fuzzkit
import pytest
from fuzzkit import check, fuzz_settings, inputs
from hypothesis import given
from hypothesis import strategies as st

from custody.app.events import Offer, Receipt
from custody.app.evidence import read_manifest
from custody.bundle.reader import parse_trust
from custody.bundle.verify import ConsistencyFile, Manifest, Statement, load_json
from custody.infra.keystore import KDF_BOUNDS, KeyFile
from custody.media.compare import parse_framehash, parse_streamhash
from custody.media.digest import (
    SNAPSHOT_V1,
    SNAPSHOT_VERSIONS,
    canonical_json,
    parse_snapshot,
)
from custody.model.entry import Entry, SignedEntry
from custody.model.types import parse_typed
from custody.tlog.checkpoint import Checkpoint, open_checkpoint
from custody.tlog.note import Note, VerifierKey, open_note
from custody.tlog.tlogproof import TlogProof, verify_tlog_proof

C = fuzz_corpus.corpus


def _text(data: bytes) -> str:
    # Text parsers take str: what a caller gets decoding a file, invalid bytes replaced.
    return data.decode("utf-8", "replace")


def _known_keys() -> list[VerifierKey]:
    keys = [VerifierKey.parse(C().log_key)]
    for data in C().entries:
        vkey = SignedEntry.parse(data).entry.get("vkey")
        if vkey:
            keys.append(VerifierKey.parse(vkey))
    return keys


# Hypothesis draws from a strategy built once per test; the corpus is built lazily on
# the first draw, so that collecting the tests (e.g. `pytest --co`) costs nothing.
def _seeds(name: str) -> st.SearchStrategy[bytes]:
    return st.deferred(lambda: inputs(getattr(C(), name)))


# -- custody/entry/v1 ----------------------------------------------------------------------


@fuzz_settings()
@given(_seeds("entries"))
def test_signed_entry_and_its_type(data: bytes) -> None:
    def parse() -> None:
        parse_typed(SignedEntry.parse(data).entry)

    check(parse)


@fuzz_settings()
@given(_seeds("entries"))
def test_entry_text(data: bytes) -> None:
    def parse() -> None:
        # The text part of a note, as Note.parse hands it to Entry.parse_text.
        parse_typed(Entry.parse_text(_text(data).split("\n\n")[0] + "\n"))

    check(parse)


# -- signed notes, checkpoints, proofs -------------------------------------------------------


@fuzz_settings()
@given(st.one_of(_seeds("entries"), _seeds("checkpoints")))
def test_note_and_open_note(data: bytes) -> None:
    keys = _known_keys()

    def parse() -> None:
        Note.parse(data)
        open_note(data, keys)

    check(parse)


@fuzz_settings()
@given(
    st.one_of(
        st.deferred(lambda: fuzzkit.mutated([k.encode() for k in _vkeys()])),
        st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    )
)
def test_verifier_key(data: bytes) -> None:
    check(lambda: VerifierKey.parse(_text(data)))


def _vkeys() -> list[str]:
    return [k.encode() for k in _known_keys()]


@fuzz_settings()
@given(_seeds("checkpoints"))
def test_checkpoint_and_open_checkpoint(data: bytes) -> None:
    log_key = VerifierKey.parse(C().log_key)

    def parse() -> None:
        Checkpoint.parse(_text(data).split("\n\n")[0] + "\n")
        open_checkpoint(data, log_key)

    check(parse)


@fuzz_settings()
@given(_seeds("proofs"))
def test_tlog_proof(data: bytes) -> None:
    log_key = VerifierKey.parse(C().log_key)
    entry = C().entries[0]

    def parse() -> None:
        verify_tlog_proof(TlogProof.parse(data), entry, log_key)

    check(parse)


# -- handoff files ---------------------------------------------------------------------------


@fuzz_settings()
@given(_seeds("offers"))
def test_offer(data: bytes) -> None:
    def parse() -> None:
        offer = Offer.parse(data, "offer")
        for context in offer.context:
            SignedEntry.parse(context)
        parse_typed(offer.entry)

    check(parse)


@fuzz_settings()
@given(_seeds("receipts"))
def test_receipt(data: bytes) -> None:
    def parse() -> None:
        receipt = Receipt.parse(data, "receipt")
        SignedEntry.parse(receipt.entry)
        verify_tlog_proof(receipt.proof, receipt.entry, receipt.log_key)

    check(parse)


# -- key files ---------------------------------------------------------------------------


# Unlocking runs Argon2id with the file's own parameters, so parsing must refuse any
# outside KDF_BOUNDS (docs/spec/keyfile.md): a header is read before it is
# authenticated, and m=10^11 or t=10^9 would exhaust or hang the machine.  Within the
# bounds the fuzzer unlocks only files whose parameters cost little, so that the run
# stays fast; the worst the bounds allow (1 GiB) is over the fuzzers' memory budget.
_CHEAP_KDF = (65536, 3, 8)


@fuzz_settings()
@given(_seeds("key_files"))
def test_key_file(data: bytes) -> None:
    def parse() -> None:
        keyfile = KeyFile.parse(data, "key file")
        for (label, least, most, _unit), value in zip(KDF_BOUNDS, keyfile.kdf, strict=True):
            assert least <= value <= most, f"parsed a key file with {label}={value}"
        if all(v <= cheap for v, cheap in zip(keyfile.kdf, _CHEAP_KDF, strict=True)):
            keyfile.unlock("not the passphrase", "key file")

    check(parse)


# -- media sidecars ----------------------------------------------------------------------


@fuzz_settings()
@given(_seeds("snapshots"))
def test_probe_snapshot(data: bytes) -> None:
    check(lambda: parse_snapshot(data))


def _both_snapshot_versions() -> list[bytes]:
    # The corpus's sidecars are what custody writes now (custody/snapshot/v2); add the
    # same clip's custody/snapshot/v1, which records written before keep.
    from custody.infra import ffmpeg as media

    old = media.probe(C().clip, snapshot=SNAPSHOT_V1)
    assert old is not None
    return [*C().snapshots, old.snapshot]


@fuzz_settings()
@given(st.deferred(lambda: inputs(_both_snapshot_versions())))
def test_probe_snapshot_v1_and_v2(data: bytes) -> None:
    def parse() -> None:
        value = parse_snapshot(data)
        # Whatever parses is one of the two versions, in its own canonical form.
        assert value["version"] in SNAPSHOT_VERSIONS
        assert canonical_json(value) == data

    check(parse)


@fuzz_settings()
@given(_seeds("framehashes"))
def test_framehash(data: bytes) -> None:
    check(lambda: parse_framehash(data))


@fuzz_settings()
@given(_seeds("streamhashes"))
def test_streamhash(data: bytes) -> None:
    check(lambda: parse_streamhash(data))


# -- bundle formats ----------------------------------------------------------------------


@fuzz_settings()
@given(_seeds("consistency"))
def test_consistency_file(data: bytes) -> None:
    check(lambda: ConsistencyFile.parse(data))


@fuzz_settings()
@given(_seeds("statements"))
def test_statement(data: bytes) -> None:
    def parse() -> None:
        Statement.parse(Note.parse(data).text)

    check(parse)


@fuzz_settings()
@given(_seeds("manifests"))
def test_bundle_manifest(data: bytes) -> None:
    def parse() -> None:
        load_json(data, "MANIFEST.json")
        Manifest.parse(data)

    check(parse)


@fuzz_settings()
@given(st.text(max_size=300).filter(lambda s: "\x00" not in s))
def test_trust_values(value: str) -> None:
    # --trust takes a verifier key or a file of them; argv cannot hold a NUL byte.
    check(lambda: parse_trust([value]))


# -- ingest manifests --------------------------------------------------------------------

_CSV = b"path,source,legal_basis,reference,notes\nclip.mp4,doorbell,consent,REF-1,porch\n"
_JSON = json.dumps(
    [{"path": "clip.mp4", "source": "doorbell", "legal_basis": "consent", "ref": "REF-1"}]
).encode()
_JSON_ITEMS = json.dumps({"items": [{"path": "clip.mp4", "notes": "porch"}]}).encode()


@pytest.fixture(scope="module")
def manifest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("manifests")
    (folder / "clip.mp4").write_bytes(b"not read: the manifest reader only lists files")
    return folder


@pytest.mark.parametrize("suffix", [".csv", ".json"])
@fuzz_settings()
@given(data=inputs([_CSV, _JSON, _JSON_ITEMS]))
def test_ingest_manifest(manifest_dir: Path, suffix: str, data: bytes) -> None:
    path = manifest_dir / f"manifest{suffix}"
    path.write_bytes(data)
    check(lambda: read_manifest(path))


# -- custody.toml (a home's settings file) ---------------------------------------------------

_SETTINGS_SEEDS = [
    b'db = "postgresql+psycopg://alice@db.example/custody"\nvault = "/mnt/vault"\n',
    b'# custody settings\nparty = "alice"\nvault = "C:\\\\share \\"x\\"\\u0001"\n',
]


@fuzz_settings()
@given(inputs(_SETTINGS_SEEDS))
def test_settings_file(data: bytes) -> None:
    from custody.app.settings import parse_settings, render_settings

    def parse() -> None:
        settings = parse_settings(data, "custody.toml")
        # What parses writes back to the same settings.
        assert parse_settings(render_settings(settings).encode(), "x") == settings

    check(parse)
