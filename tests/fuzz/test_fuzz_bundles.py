"""Fuzzing `custody verify-bundle`'s reader on damaged copies of a genuine bundle.

A defence bundle reaches its verifier from the other side of a dispute, so every
byte of it is hostile input: the folder reader, the ZIP reader and everything
`verify_bundle` parses.  Each example copies the genuine bundle of `fuzz_corpus`,
damages it (mutates one file, deletes one, adds one, or mutates the ZIP's own
bytes), and verifies it: the answer must be a report or a CustodyError
(BundleVerificationError, UnsafeBundleError, FormatError ...), within the bounds
of `fuzzkit.check`.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

import fuzz_corpus
from fuzzkit import check, fuzz_settings, mutated
from hypothesis import given
from hypothesis import strategies as st

from custody.bundle.reader import verify_path
from custody.bundle.verify import Trust
from custody.tlog.note import VerifierKey

C = fuzz_corpus.corpus
# Verifying a bundle reads and hashes every file: fewer examples than a one-line parser.
EXAMPLES = 40


def _members() -> list[str]:
    return sorted(
        p.relative_to(C().bundle).as_posix() for p in C().bundle.rglob("*") if p.is_file()
    )


def _small_members() -> list[str]:
    # The files a mutation is worth making in: the formats, not the media bytes
    # (whose damage is only a digest mismatch) nor the report.
    return [m for m in _members() if not m.startswith(("media/", "report/")) and m != "VERIFY.md"]


def _verify(path: Path) -> None:
    trust = Trust(keys=(VerifierKey.parse(C().log_key),))
    verify_path(path, trust, seen_dir=None, probe=False)


@st.composite
def damaged_folder(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """(operation, member, new bytes): one damage to one member of the bundle."""
    op = draw(st.sampled_from(["mutate", "mutate", "mutate", "delete", "add"]))
    if op == "add":
        name = draw(
            st.sampled_from(
                ["extra.txt", "entries/99.entry", "items/x/probe", "__MACOSX/._a", "a/../b"]
            )
        )
        return op, name, draw(st.binary(max_size=64))
    member = draw(st.sampled_from(_small_members()))
    data = (C().bundle / member).read_bytes()
    return op, member, draw(mutated([data])) if op == "mutate" else b""


@fuzz_settings(EXAMPLES)
@given(st.deferred(damaged_folder))
def test_damaged_bundle_folder(damage: tuple[str, str, bytes]) -> None:
    op, member, data = damage
    with tempfile.TemporaryDirectory(prefix="custody-fuzz-") as tmp:
        bundle = Path(tmp) / "bundle"
        shutil.copytree(C().bundle, bundle)
        target = bundle / member
        if op == "delete":
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        check(lambda: _verify(bundle))


@fuzz_settings(EXAMPLES)
@given(st.deferred(lambda: mutated([C().bundle_zip.read_bytes()], max_steps=3)))
def test_damaged_bundle_zip_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="custody-fuzz-") as tmp:
        path = Path(tmp) / "bundle.zip"
        path.write_bytes(data)
        check(lambda: _verify(path))


@st.composite
def rewritten_zip(draw: st.DrawFn) -> list[tuple[str, bytes, int]]:
    """The bundle's members as (name, bytes, compression), one of them damaged."""
    with zipfile.ZipFile(C().bundle_zip) as z:
        members = [(i.filename, z.read(i), zipfile.ZIP_DEFLATED) for i in z.infolist()]
    i = draw(st.integers(0, len(members) - 1))
    name, data, method = members[i]
    op = draw(st.sampled_from(["rename", "mutate", "duplicate", "stored"]))
    if op == "rename":
        new = draw(
            st.sampled_from(["/abs", "../up", "a\\b", "entries/0.entry", "x" * 600, "ok/" * 20])
        )
        members[i] = (new, data, method)
    elif op == "mutate":
        members[i] = (name, draw(mutated([data])), method)
    elif op == "duplicate":
        members.append(members[i])
    else:
        members[i] = (name, data, zipfile.ZIP_STORED)
    return members


@fuzz_settings(EXAMPLES)
@given(st.deferred(rewritten_zip))
def test_rewritten_bundle_zip(members: list[tuple[str, bytes, int]]) -> None:
    with tempfile.TemporaryDirectory(prefix="custody-fuzz-") as tmp:
        path = Path(tmp) / "bundle.zip"
        with zipfile.ZipFile(path, "w") as z, warnings.catch_warnings():
            # A duplicated member is one of the damages, not a mistake of the test.
            warnings.filterwarnings("ignore", "Duplicate name", UserWarning)
            for name, data, method in members:
                z.writestr(zipfile.ZipInfo(name), data, compress_type=method)
        check(lambda: _verify(path))


def test_the_genuine_bundle_verifies() -> None:
    # The fuzzers' starting point must be valid, or every mutation tests only the first check.
    _verify(C().bundle)
    _verify(C().bundle_zip)
