"""A countersigned handoff, read by Go's golang.org/x/mod/sumdb/note (tests/interop/verify.go).

The receiver's line is a cosignature/v1 (type 0x04) signature, which x/mod does not
know: as the signed-note spec says, it ignores it, so the entry still opens with the
sender's Ed25519 key and its inclusion proof still verifies; and the receiver's
Ed25519 key alone does not open it (the receiver's line is not an Ed25519 signature).
Skipped with the reason when Go or x/mod is missing (test_interop_go's build).
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from test_interop_go import LOG, ORIGIN, go_verifier

from custody.model.entry import Entry, SignedEntry, countersign_entry, sign_entry
from custody.model.times import claimed_time
from custody.tlog.checkpoint import Checkpoint, sign_checkpoint
from custody.tlog.merkle import MemoryTree
from custody.tlog.note import Signer
from custody.tlog.tlogproof import TlogProof

__all__ = ["go_verifier"]  # the session fixture that builds verify.go

SENDER = Signer.from_seed("det", bytes(range(96, 128)))
RECEIVER = Signer.from_seed("clerk", bytes(range(128, 160)))
OFFERED = datetime(2026, 11, 23, 13, 45, tzinfo=UTC)
ACCEPTED = datetime(2026, 11, 23, 15, 50, tzinfo=UTC)


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    fields: list[tuple[str, str | int | None]] = [
        ("case", "C1"),
        ("item", "ab" * 32),
        ("from", "det"),
        ("to", "clerk"),
        ("purpose", "trial"),
        ("offer", "0f" * 16),
    ]
    offer = sign_entry(Entry.build("handoff", OFFERED, fields), [SENDER])
    handoff = countersign_entry(offer, RECEIVER, ACCEPTED)
    assert claimed_time(SignedEntry.parse(handoff)) == ACCEPTED
    tree = MemoryTree()
    for data in (offer, handoff, offer):
        tree.append(data)
    cp = sign_checkpoint(Checkpoint(ORIGIN, 3, tree.root()), LOG)
    proof = TlogProof(1, tuple(tree.inclusion_proof(1)), cp)
    paths = (tmp_path / "checkpoint", tmp_path / "entry", tmp_path / "entry.tlog-proof")
    paths[0].write_bytes(cp)
    paths[1].write_bytes(handoff)
    paths[2].write_bytes(proof.encode())
    return paths


def _run(
    binary: Path, files: tuple[Path, Path, Path], entry_key: str
) -> subprocess.CompletedProcess[str]:
    checkpoint, entry, proof = files
    args = [
        str(binary),
        *("-log-key", LOG.verifier_key.encode(), "-entry-key", entry_key),
        *("-checkpoint", str(checkpoint), "-entry", str(entry), "-proof", str(proof)),
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_go_opens_a_countersigned_handoff_with_the_senders_key(
    go_verifier: Path, tmp_path: Path
) -> None:
    files = _files(tmp_path)
    ok = _run(go_verifier, files, SENDER.verifier_key.encode())
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), (ok.stdout, ok.stderr)
    # x/mod has no Ed25519 signature by the receiver to verify: the line is cosignature/v1.
    refused = _run(go_verifier, files, RECEIVER.verifier_key.encode())
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert "entry" in refused.stderr
