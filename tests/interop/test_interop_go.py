"""Independent-implementation check: custody's notes, checkpoints and tlog-proofs,
verified by Go's golang.org/x/mod/sumdb/note and sumdb/tlog (tests/interop/verify.go).

The Go program is built once per test session in GOPATH mode against the Debian
package golang-golang-x-mod-dev (no network, no module download).  The tests
are skipped, with the reason shown, when `go` or that package is missing.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from custody.tlog.checkpoint import Checkpoint, cosign, cosignature_verifier_key, sign_checkpoint
from custody.tlog.merkle import MemoryTree
from custody.tlog.note import Signer, sign_note
from custody.tlog.tlogproof import TlogProof, verify_tlog_proof

GOPATH = Path("/usr/share/gocode")
XMOD = GOPATH / "src/golang.org/x/mod/sumdb"
SOURCE = Path(__file__).parent / "verify.go"

ORIGIN = "custody.example/interop-log"
LOG = Signer.from_seed(ORIGIN, bytes(range(32)))
PARTY = Signer.from_seed("agency.example/officer-7", bytes(range(32, 64)))
WITNESS = Signer.from_seed("court.example/clerk", bytes(range(64, 96)))
TIMESTAMP = 1_767_225_600


def _skip_reason() -> str | None:
    if shutil.which("go") is None:
        return "the Go toolchain (`go`) is not installed"
    if not (XMOD / "note" / "note.go").is_file() or not (XMOD / "tlog" / "tlog.go").is_file():
        return f"golang.org/x/mod is not installed under {GOPATH} (Debian golang-golang-x-mod-dev)"
    return None


@pytest.fixture(scope="session")
def go_verifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("go-interop")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOFLAGS": "",
        "GOCACHE": str(out / "cache"),
        "CGO_ENABLED": "0",
    }
    binary = out / "verify"
    result = subprocess.run(
        ["go", "build", "-o", str(binary), str(SOURCE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"go build failed:\n{result.stderr}")
    return binary


@dataclass
class Files:
    checkpoint: Path
    entry: Path
    proof: Path


LogFiles = tuple[Files, list[bytes], MemoryTree, bytes]


@pytest.fixture
def log_files(tmp_path: Path) -> LogFiles:
    """A log of 11 signed entries, a cosigned checkpoint, and a proof for entry 6."""
    tree = MemoryTree()
    entries = [
        sign_note(f"custody/entry/v1\ntype ingest\ncase C-{i}\nitem é{i}\n", [PARTY])
        for i in range(11)
    ]
    for e in entries:
        tree.append(e)
    cp = sign_checkpoint(Checkpoint(ORIGIN, len(entries), tree.root()), LOG)
    cp = cosign(cp, WITNESS, TIMESTAMP)
    proof = TlogProof(6, tuple(tree.inclusion_proof(6)), cp, b"bundle item 6")
    # custody's own verifier accepts what Go is about to check.
    verify_tlog_proof(proof, entries[6], LOG.verifier_key, [cosignature_verifier_key(WITNESS)])
    files = Files(tmp_path / "checkpoint", tmp_path / "entry", tmp_path / "entry.tlog-proof")
    files.checkpoint.write_bytes(cp)
    files.entry.write_bytes(entries[6])
    files.proof.write_bytes(proof.encode())
    return files, entries, tree, cp


def run(binary: Path, files: Files, *extra: str) -> subprocess.CompletedProcess[str]:
    args: Sequence[str] = [
        str(binary),
        "-log-key",
        LOG.verifier_key.encode(),
        "-entry-key",
        PARTY.verifier_key.encode(),
        "-checkpoint",
        str(files.checkpoint),
        "-entry",
        str(files.entry),
        "-proof",
        str(files.proof),
        *extra,
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def assert_rejected(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert message in result.stderr, result.stderr


def test_go_accepts_custody_files(go_verifier: Path, log_files: LogFiles) -> None:
    files = log_files[0]
    witness = cosignature_verifier_key(WITNESS).encode()
    result = run(go_verifier, files, "-witness-key", witness)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"OK: entry 6 of {ORIGIN} (size 11)"


def test_go_accepts_every_index(go_verifier: Path, log_files: LogFiles) -> None:
    files, entries, tree, cp = log_files
    for i in range(len(entries)):
        files.entry.write_bytes(entries[i])
        files.proof.write_bytes(TlogProof(i, tuple(tree.inclusion_proof(i)), cp).encode())
        result = run(go_verifier, files)
        assert result.returncode == 0, (i, result.stderr)


def test_go_rejects_tampered_entry(go_verifier: Path, log_files: LogFiles) -> None:
    files, entries, _, _ = log_files
    files.entry.write_bytes(entries[6].replace(b"C-6", b"C-9"))
    assert_rejected(run(go_verifier, files), "entry: invalid signature")
    # Another genuine entry is not entry 6.
    files.entry.write_bytes(entries[5])
    assert_rejected(run(go_verifier, files), "not included")


def test_go_rejects_tampered_proof(go_verifier: Path, log_files: LogFiles) -> None:
    files, _, tree, cp = log_files
    hashes = list(tree.inclusion_proof(6))
    hashes[1] = bytes(b ^ 0xFF for b in hashes[1])
    files.proof.write_bytes(TlogProof(6, tuple(hashes), cp).encode())
    assert_rejected(run(go_verifier, files), "not included")
    files.proof.write_bytes(TlogProof(5, tuple(tree.inclusion_proof(6)), cp).encode())
    assert_rejected(run(go_verifier, files), "not included")


def test_go_rejects_tampered_checkpoint(go_verifier: Path, log_files: LogFiles) -> None:
    files, _, _, cp = log_files
    forged = cp.replace(b"\n11\n", b"\n12\n", 1)
    files.checkpoint.write_bytes(forged)
    assert_rejected(run(go_verifier, files), "checkpoint: invalid signature")


def test_go_rejects_bad_cosignature(go_verifier: Path, log_files: LogFiles) -> None:
    files, _, tree, cp = log_files
    witness = cosignature_verifier_key(WITNESS).encode()
    # Flip one bit of the cosignature's Ed25519 signature (not its key id or timestamp).
    start = cp.rindex("—".encode())
    name, b64 = cp[start:].split(b" ")[1:3]
    raw = bytearray(base64.b64decode(b64))
    raw[40] ^= 1
    bad = cp[:start] + "— ".encode() + name + b" " + base64.b64encode(raw) + b"\n"
    files.checkpoint.write_bytes(bad)
    files.proof.write_bytes(TlogProof(6, tuple(tree.inclusion_proof(6)), bad).encode())
    assert_rejected(run(go_verifier, files, "-witness-key", witness), "invalid signature")
    # x/mod itself ignores the line (it knows no type 0x04): without -witness-key it verifies.
    assert run(go_verifier, files).returncode == 0
    # A witness that did not cosign.
    other = cosignature_verifier_key(Signer.from_seed(WITNESS.name, bytes(32))).encode()
    assert_rejected(run(go_verifier, files, "-witness-key", other), "no cosignature")


def test_go_accepts_what_the_cli_writes(go_verifier: Path, tmp_path: Path) -> None:
    """The issue's bar: a checkpoint, an entry and its proof written by `custody` itself
    verify with Go's x/mod sumdb/note + sumdb/tlog; one flipped entry byte does not."""
    from conftest import invoke

    def ok(*args: str) -> bytes:
        r = invoke(*args)
        assert r.code == 0, r
        return r.stdout_bytes

    ok("init", "--origin", "agency.example/custody")
    ok("key", "new", "alice", "--role", "owner")
    ok("key", "new", "bob", "--role", "agency")
    ok("key", "new", "carol", "--role", "lab")
    (tmp_path / "checkpoint").write_bytes(ok("log", "checkpoint"))
    log_key = ok("log", "key").decode().strip()
    for index, party in enumerate(["alice", "bob", "carol"]):
        files = Files(tmp_path / "checkpoint", tmp_path / f"e{index}", tmp_path / f"p{index}")
        files.entry.write_bytes(ok("log", "entry", str(index)))
        ok("log", "prove", str(index), "--out", str(files.proof))
        party_key = ok("key", "show", party).decode().strip()
        args = [
            str(go_verifier),
            "-log-key",
            log_key,
            "-entry-key",
            party_key,
            "-checkpoint",
            str(files.checkpoint),
            "-entry",
            str(files.entry),
            "-proof",
            str(files.proof),
        ]
        result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        data = bytearray(files.entry.read_bytes())
        data[data.index(b"role ") + 5] ^= 0x01
        files.entry.write_bytes(bytes(data))
        bad = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        assert bad.returncode != 0
