"""CLI transcripts for the log: init, keys, checkpoints, entries, proofs, verify."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from custody.model.entry import SignedEntry
from custody.tlog import merkle
from custody.tlog.checkpoint import open_checkpoint
from custody.tlog.note import VerifierKey
from custody.tlog.tlogproof import TlogProof, verify_tlog_proof


def log_key(cli) -> VerifierKey:  # type: ignore[no-untyped-def]
    return VerifierKey.parse(cli.run("log", "key").stdout.strip())


def test_init_prints_the_log_verifier_key(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli.run("init", "--origin", "agency.example/custody", "--home", str(tmp_path / "h"))
    assert "log verifier key: agency.example/custody+" in r.stdout
    assert (tmp_path / "h" / "custody.db").exists()
    key_file = tmp_path / "h" / "keys" / "agency.example%2Fcustody.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    # A second init of the same home is refused, not overwritten.
    cli.fail(2, "init", "--origin", "other", "--home", str(tmp_path / "h"))


def test_commands_without_a_home_explain_what_to_do(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli.fail(3, "key", "list")
    assert "custody init" in r.stderr


def test_key_new_registers_a_signed_key_entry(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    listed = json.loads(cli.run("key", "list", "--json").stdout)
    assert [(p["name"], p["role"], p["entry"]) for p in listed] == [
        ("alice", "owner", 0),
        ("bob", "agency", 1),
    ]
    vkey = cli.run("key", "show", "bob").stdout.strip()
    assert vkey.startswith("bob+") and VerifierKey.parse(vkey).name == "bob"
    entry = SignedEntry.parse(cli.run("log", "entry", "1").stdout_bytes)
    assert entry.entry.type == "key"
    assert entry.entry.get("vkey") == vkey
    assert entry.entry.get("org") == "Metro Police"
    assert entry.signer_names == ("bob",)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("key", "new", "bad name", "--role", "owner"), "name"),
        (("key", "new", "a+b", "--role", "owner"), "name"),
        (("key", "new", "carol", "--role", "pirate"), "role"),
        (("key", "new", "alice", "--role", "owner"), "already"),
        (("key", "show", "nobody"), "nobody"),
        (("log", "entry", "99"), "99"),
        (("log", "prove", "0"), "checkpoint"),
    ],
)
def test_bad_input_gets_one_line_and_nonzero_exit(cli, home: Path, args, needle) -> None:  # type: ignore[no-untyped-def]
    from conftest import invoke

    r = invoke(*args)
    assert r.code in (2, 3), r
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.rstrip("\n").split("\n")) <= 2


def test_usage_errors_exit_2(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli.fail(2, "log", "entry", "not-a-number")
    assert "'index'" in r.stderr
    cli.fail(2, "no-such-command")


def test_wrong_passphrase_is_a_clear_error(cli, home: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CUSTODY_PASSPHRASE", "wrong")
    r = cli.fail(3, "log", "checkpoint")
    assert "wrong passphrase" in r.stderr


def test_passphrase_file_and_no_terminal(cli, home: Path, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from conftest import PASSPHRASE

    monkeypatch.delenv("CUSTODY_PASSPHRASE")
    r = cli.fail(2, "log", "checkpoint")
    assert "CUSTODY_PASSPHRASE" in r.stderr and "--passphrase-file" in r.stderr
    pf = tmp_path / "pass.txt"
    pf.write_text(PASSPHRASE + "\n")
    cli.run("log", "checkpoint", "--passphrase-file", str(pf))


def test_checkpoint_proof_and_consistency_verify_independently(
    cli, home: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    vkey = log_key(cli)
    cp2 = cli.run("log", "checkpoint", "--out", str(tmp_path / "cp2")).stdout_bytes
    assert (tmp_path / "cp2").read_bytes() == cp2
    opened2 = open_checkpoint(cp2, vkey)
    assert opened2.checkpoint.size == 2
    # Signing again at the same size returns the same checkpoint.
    assert cli.run("log", "checkpoint").stdout_bytes == cp2

    cli.run("key", "new", "carol", "--role", "lab")
    cli.run("key", "new", "dave", "--role", "court")
    cli.run("key", "new", "erin", "--role", "defence")
    cp5 = cli.run("log", "checkpoint").stdout_bytes
    opened5 = open_checkpoint(cp5, vkey)
    assert opened5.checkpoint.size == 5

    for index in range(5):
        cli.run("log", "prove", str(index), "--out", str(tmp_path / f"p{index}"))
        proof = TlogProof.parse((tmp_path / f"p{index}").read_bytes())
        entry = cli.run("log", "entry", str(index)).stdout_bytes
        verify_tlog_proof(proof, entry, vkey)
    # A proof against the older checkpoint.
    old = TlogProof.parse(cli.run("log", "prove", "1", "--size", "2").stdout_bytes)
    assert old.checkpoint == cp2
    verify_tlog_proof(old, cli.run("log", "entry", "1").stdout_bytes, vkey)

    cons = json.loads(cli.run("log", "consistency", "2", "5", "--json").stdout)
    merkle.verify_consistency(
        2,
        5,
        opened2.checkpoint.root,
        opened5.checkpoint.root,
        [base64.b64decode(h) for h in cons["proof"]],
    )
    cli.fail(3, "log", "consistency", "2", "4")  # no stored checkpoint at 4


def test_log_verify_reports_what_it_checked(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    cli.run("log", "checkpoint")
    r = cli.run("log", "verify")
    assert r.stdout.startswith("OK: the log verifies: 2 entries, 2 signatures, 1 checkpoints")
    j = json.loads(cli.run("log", "verify", "--json").stdout)
    assert j["verdict"] == "ok" and j["size"] == 2 and j["parties"] == 2


def _db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "custody.db")


def test_triggers_refuse_update_and_delete(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    cli.run("log", "checkpoint")
    con = _db(home)
    for stmt in (
        "UPDATE entries SET data = X'00' WHERE idx = 0",
        "DELETE FROM entries WHERE idx = 1",
        "UPDATE tree_nodes SET hash = X'00'",
        "DELETE FROM tree_nodes",
        "DELETE FROM checkpoints",
    ):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            con.execute(stmt)
    con.close()


def test_one_changed_byte_around_the_triggers_is_named(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    cli.run("key", "new", "carol", "--role", "lab")
    cli.run("log", "checkpoint")
    con = _db(home)
    data = bytearray(con.execute("SELECT data FROM entries WHERE idx = 1").fetchone()[0])
    pos = data.index(b"Metro Police")
    data[pos] ^= 0x20  # 'M' -> 'm': one byte
    con.execute("DROP TRIGGER entries_no_update")
    con.execute("UPDATE entries SET data = ? WHERE idx = 1", (bytes(data),))
    con.commit()
    con.close()
    r = cli.fail(1, "log", "verify")
    assert "log entry 1:" in r.stderr


def test_a_rewritten_tree_is_caught_by_the_checkpoint(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    cli.run("log", "checkpoint")
    con = _db(home)
    con.execute("DROP TRIGGER tree_nodes_no_update")
    con.execute("UPDATE tree_nodes SET hash = ? WHERE level = 1 AND idx = 0", (b"\x11" * 32,))
    con.commit()
    con.close()
    r = cli.fail(1, "log", "verify")
    assert "checkpoint at size 2" in r.stderr or "tree node (level 1, index 0)" in r.stderr


def test_a_removed_entry_is_caught(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    cli.run("key", "new", "carol", "--role", "lab")
    con = _db(home)
    con.execute("DROP TRIGGER entries_no_delete")
    con.execute("DELETE FROM entries WHERE idx = 1")
    con.commit()
    con.close()
    r = cli.fail(1, "log", "verify")
    assert "log entry 1" in r.stderr and "missing" in r.stderr


def test_a_forged_checkpoint_is_caught(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    cli.run("log", "checkpoint")
    con = _db(home)
    note = con.execute("SELECT note FROM checkpoints").fetchone()[0]
    forged = note.replace(b"\n2\n", b"\n1\n")
    con.execute("DROP TRIGGER checkpoints_no_update")
    con.execute("UPDATE checkpoints SET note = ?", (forged,))
    con.commit()
    con.close()
    r = cli.fail(1, "log", "verify")
    assert "checkpoint at size 2" in r.stderr
