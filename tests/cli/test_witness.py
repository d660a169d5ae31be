"""Witnesses (C2SP tlog-witness): cosign only a log that grew; the log keeps cosignatures.

`custody witness cosign` remembers the last size and root it cosigned per origin,
needs a consistency proof (`custody log consistency OLD NEW --json`) from there,
and refuses a rollback or a fork.  `custody log add-cosignature` takes the
cosigned checkpoint back into the log's home, whence exports carry it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import PASSPHRASE, CliRunnerNS

from custody.app.home import Custody
from custody.model.entry import Entry, sign_entry
from custody.tlog.checkpoint import (
    Checkpoint,
    cosign,
    cosignature_verifier_key,
    open_checkpoint,
    sign_checkpoint,
)
from custody.tlog.merkle import MemoryTree
from custody.tlog.note import Note, Signer, VerifierKey

ORIGIN = "test.example/custody"


@pytest.fixture
def log(cli: type[CliRunnerNS], home: Path) -> Path:
    """The conftest home (alice, bob) plus a court clerk who witnesses the log."""
    cli.run("key", "new", "clerk", "--role", "court")
    return home


def checkpoint(cli: type[CliRunnerNS], where: Path) -> Path:
    cli.run("log", "checkpoint", "--out", str(where))
    return where


def grow(cli: type[CliRunnerNS], name: str) -> None:
    cli.run("key", "new", name, "--role", "lab")


def log_key(cli: type[CliRunnerNS]) -> str:
    return cli.run("log", "key").stdout.strip()


def size_of(note: bytes) -> int:
    return Checkpoint.parse(Note.parse(note).text).size


def clerk_key(home: Path) -> VerifierKey:
    with Custody.open(home) as c:
        return cosignature_verifier_key(VerifierKey.parse(c.party("clerk").vkey))


def log_signer(home: Path) -> Signer:
    with Custody.open(home) as c:
        return c.log_signer(lambda _p: PASSPHRASE)


def test_first_cosignature_pins_the_log(cli: type[CliRunnerNS], log: Path, tmp_path: Path) -> None:
    cp = checkpoint(cli, tmp_path / "cp")
    out = tmp_path / "cosigned"
    r = cli.run(
        "witness", "cosign", str(cp), "--key", "clerk", "--log-key", log_key(cli), "--out", str(out)
    )
    n = size_of(cp.read_bytes())
    assert f"cosigned test.example/custody at size {n} as clerk (court)" in r.stderr
    note = out.read_bytes()
    assert note.startswith(cp.read_bytes())  # the log's bytes are kept exactly
    opened = open_checkpoint(note, VerifierKey.parse(log_key(cli)), [clerk_key(log)])
    assert [k.name for k, _ in opened.cosignatures] == ["clerk"]
    state_file = log / "witness" / f"{hashlib.sha256(ORIGIN.encode()).hexdigest()}.json"
    state = json.loads(state_file.read_text())
    assert state["size"] == n and state["log_key"] == log_key(cli)
    # Again, with the pinned key: nothing new to add, the same bytes come back.
    r = cli.run("witness", "cosign", str(out), "--key", "clerk")
    assert r.stdout_bytes == note


def test_the_log_home_key_is_used_when_none_is_pinned(
    cli: type[CliRunnerNS], log: Path, tmp_path: Path
) -> None:
    cp = checkpoint(cli, tmp_path / "cp")
    r = cli.run("witness", "cosign", str(cp), "--key", "clerk")
    assert "— clerk " in r.stdout


def test_a_newer_checkpoint_needs_a_consistency_proof(
    cli: type[CliRunnerNS], log: Path, tmp_path: Path
) -> None:
    first = checkpoint(cli, tmp_path / "cp1")
    cli.run("witness", "cosign", str(first), "--key", "clerk", "--log-key", log_key(cli))
    grow(cli, "carol")
    second = checkpoint(cli, tmp_path / "cp2")
    a, b = size_of(first.read_bytes()), size_of(second.read_bytes())
    r = cli.fail(2, "witness", "cosign", str(second), "--key", "clerk")
    assert f"a consistency proof from size {a} (the last this witness cosigned) to {b}" in r.stderr
    assert f"custody log consistency {a} {b} --json" in r.stderr
    proof = tmp_path / "proof.json"
    proof.write_bytes(cli.run("log", "consistency", str(a), str(b), "--json").stdout_bytes)
    r = cli.run("witness", "cosign", str(second), "--key", "clerk", "--proof", str(proof))
    assert f"at size {b}" in r.stderr


def test_a_proof_from_another_size_is_refused(
    cli: type[CliRunnerNS], log: Path, tmp_path: Path
) -> None:
    first = checkpoint(cli, tmp_path / "cp1")
    grow(cli, "carol")
    checkpoint(cli, tmp_path / "cp2")
    cli.run("witness", "cosign", str(tmp_path / "cp2"), "--key", "clerk", "--log-key", log_key(cli))
    grow(cli, "dave")
    third = checkpoint(cli, tmp_path / "cp3")
    proof = tmp_path / "proof.json"
    proof.write_bytes(
        cli.run("log", "consistency", str(size_of(first.read_bytes())), "5", "--json").stdout_bytes
    )
    r = cli.fail(2, "witness", "cosign", str(third), "--key", "clerk", "--proof", str(proof))
    assert "the proof is from size 3 to 5, but this witness needs one from 4 to 5" in r.stderr


def test_rollback_is_refused(cli: type[CliRunnerNS], log: Path, tmp_path: Path) -> None:
    old = checkpoint(cli, tmp_path / "old")
    grow(cli, "carol")
    new = checkpoint(cli, tmp_path / "new")
    cli.run("witness", "cosign", str(new), "--key", "clerk", "--log-key", log_key(cli))
    r = cli.fail(1, "witness", "cosign", str(old), "--key", "clerk")
    assert "has size 3, but this witness already cosigned size 4 (a rollback)" in r.stderr


def test_fork_at_the_same_size_is_refused(
    cli: type[CliRunnerNS], log: Path, tmp_path: Path
) -> None:
    cp = checkpoint(cli, tmp_path / "cp")
    cli.run("witness", "cosign", str(cp), "--key", "clerk", "--log-key", log_key(cli))
    other = tmp_path / "other"
    other.write_bytes(sign_checkpoint(Checkpoint(ORIGIN, 3, bytes(32)), log_signer(log)))
    r = cli.fail(1, "witness", "cosign", str(other), "--key", "clerk")
    assert "this log showed two different histories: size 3 has root" in r.stderr


def test_fork_hidden_behind_a_larger_tree_is_refused(
    cli: type[CliRunnerNS], log: Path, tmp_path: Path
) -> None:
    cp = checkpoint(cli, tmp_path / "cp")
    cli.run("witness", "cosign", str(cp), "--key", "clerk", "--log-key", log_key(cli))
    # Another history of 6 entries, signed by the real log key, with a proof valid in it.
    tree = MemoryTree()
    for n in range(5):
        tree.append(b"another history %d\n" % n)
    forged = tmp_path / "forged"
    forged.write_bytes(sign_checkpoint(Checkpoint(ORIGIN, 5, tree.root()), log_signer(log)))
    proof = tmp_path / "proof.json"
    proof.write_text(
        json.dumps(
            {
                "old_size": 3,
                "new_size": 5,
                "old_root": base64.b64encode(tree.root(3)).decode(),
                "new_root": base64.b64encode(tree.root()).decode(),
                "proof": [base64.b64encode(h).decode() for h in tree.consistency_proof(3, 5)],
            }
        )
    )
    r = cli.fail(1, "witness", "cosign", str(forged), "--key", "clerk", "--proof", str(proof))
    assert "two different histories" in r.stderr
    assert "is not consistent with size 3 this witness cosigned" in r.stderr


def test_witness_key_needs_a_witness_role(
    cli: type[CliRunnerNS], log: Path, tmp_path: Path
) -> None:
    cp = checkpoint(cli, tmp_path / "cp")
    r = cli.fail(2, "witness", "cosign", str(cp), "--key", "bob", "--log-key", log_key(cli))
    assert "key 'bob' has role agency" in r.stderr


def test_another_key_for_a_pinned_log_is_refused(
    cli: type[CliRunnerNS], log: Path, tmp_path: Path
) -> None:
    cp = checkpoint(cli, tmp_path / "cp")
    cli.run("witness", "cosign", str(cp), "--key", "clerk", "--log-key", log_key(cli))
    impostor = Signer.generate(ORIGIN)
    fake = tmp_path / "fake"
    fake.write_bytes(sign_checkpoint(Checkpoint(ORIGIN, 9, bytes(32)), impostor))
    r = cli.fail(
        1,
        "witness",
        "cosign",
        str(fake),
        "--key",
        "clerk",
        "--log-key",
        impostor.verifier_key.encode(),
    )
    assert "is not the one this witness pinned" in r.stderr


def test_the_log_keeps_cosignatures_and_exports_them(
    cli: type[CliRunnerNS], log: Path, tmp_path: Path
) -> None:
    cp = checkpoint(cli, tmp_path / "cp")
    out = tmp_path / "cosigned"
    cli.run(
        "witness", "cosign", str(cp), "--key", "clerk", "--log-key", log_key(cli), "--out", str(out)
    )
    r = cli.run("log", "add-cosignature", str(out))
    assert "stored the checkpoint of size 3 cosigned by clerk (court)" in r.stdout
    cli.run("log", "add-cosignature", str(out))  # idempotent
    stored = list((log / "cosignatures" / "3").glob("*.checkpoint"))
    assert len(stored) == 1 and stored[0].read_bytes() == out.read_bytes()
    # An export against that checkpoint carries the cosignature; counsel sees it.
    cli.run("case", "new", "C-9")
    with Custody.open(log) as c:
        entry = Entry.build(
            "consent",
            datetime.now(UTC),
            [
                ("action", "grant"),
                ("owner", "alice"),
                ("case", "C-9"),
                ("purpose", "p"),
                ("onward", "any"),
            ],
        )
        c.log.append(sign_entry(entry, [c.keystore.unlock("alice", lambda _p: PASSPHRASE)]))
    r = cli.fail(2, "export", "C-9", "--to", str(tmp_path / "b"), "--checkpoint", "3")
    assert "the checkpoint of size 3 does not cover log entry 3" in r.stderr
    grow(cli, "carol")
    cp5 = checkpoint(cli, tmp_path / "cp5")
    proof = tmp_path / "p.json"
    proof.write_bytes(cli.run("log", "consistency", "3", "5", "--json").stdout_bytes)
    out5 = tmp_path / "cosigned5"
    cli.run(
        "witness", "cosign", str(cp5), "--key", "clerk", "--proof", str(proof), "--out", str(out5)
    )
    cli.run("log", "add-cosignature", str(out5))
    cli.run("export", "C-9", "--to", str(tmp_path / "b"))
    clerk = cli.run("key", "show", "clerk").stdout.strip()
    r = cli.run(
        "verify-bundle",
        str(tmp_path / "b"),
        "--trust",
        log_key(cli),
        "--trust",
        clerk,
        "--seen",
        str(tmp_path / "seen"),
    )
    assert "cosigned by clerk (court) at" in r.stdout and "key given with --trust" in r.stdout


def test_add_cosignature_refuses_what_the_log_did_not_sign(
    cli: type[CliRunnerNS], log: Path, tmp_path: Path
) -> None:
    signer = log_signer(log)
    outsider = Signer.generate("outsider.example/witness")
    cp = checkpoint(cli, tmp_path / "cp").read_bytes()
    by_outsider = tmp_path / "outsider"
    by_outsider.write_bytes(cosign(cp, outsider, 1_767_225_600))
    r = cli.fail(3, "log", "add-cosignature", str(by_outsider))
    assert "carries no cosignature by a party of this log" in r.stderr
    with Custody.open(log) as c:
        clerk = c.keystore.unlock("clerk", lambda _p: PASSPHRASE)
    unstored = tmp_path / "unstored"
    unstored.write_bytes(
        cosign(sign_checkpoint(Checkpoint(ORIGIN, 99, bytes(32)), signer), clerk, 1)
    )
    r = cli.fail(3, "log", "add-cosignature", str(unstored))
    assert "this log stored no checkpoint of size 99" in r.stderr
    forked = tmp_path / "forked"
    forked.write_bytes(cosign(sign_checkpoint(Checkpoint(ORIGIN, 3, bytes(32)), signer), clerk, 1))
    r = cli.fail(1, "log", "add-cosignature", str(forked))
    assert "is not the one this log stored" in r.stderr
