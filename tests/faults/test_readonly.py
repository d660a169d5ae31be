"""A read-only home: every command that only reads works; writers fail saying why.

Issue 9, finding 5: `log verify`, `key list`, `show`, `history`, `verify` and
`export` failed on a read-only copy of a home ("unable to open database file"):
SQLite in WAL mode wanted to create its -shm file next to the database.  The
copy is made read-only with a bind mount (root ignores file modes, so chmod
would prove nothing); the tests skip, saying so, where mounting is not permitted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CliRunnerNS
from mounts import read_only_view

READ_ONLY = "is read-only"


@pytest.fixture
def original(home: Path, tmp_path: Path, cli: type[CliRunnerNS]) -> Path:
    """A home made by the CLI: a case with one exhibit, and a checkpoint."""
    cli.run("case", "new", "C1", "--title", "Archived")
    note = tmp_path / "statement.txt"
    note.write_text("a witness statement\n")
    cli.run(
        "ingest",
        str(note),
        "--case",
        "C1",
        "--by",
        "bob",
        "--source",
        "test",
        "--legal-basis",
        "consent",
        "--ref",
        "R-1",
    )
    cli.run("log", "checkpoint")
    return home


@pytest.fixture
def archived(original: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The same home seen through a read-only mount, as CUSTODY_HOME."""
    with read_only_view(original, tmp_path / "archive") as view:
        monkeypatch.setenv("CUSTODY_HOME", str(view))
        yield view


def test_reading_commands_work_on_a_read_only_home(
    archived: Path, tmp_path: Path, cli: type[CliRunnerNS]
) -> None:
    with pytest.raises(OSError):
        (archived / "probe").write_text("x")  # the view really is read-only
    assert cli.run("log", "verify").stdout.startswith(
        "OK: the log verifies: 3 entries, 3 signatures, 1 checkpoints"
    )
    assert "bob" in cli.run("key", "list").stdout
    assert "C1" in cli.run("case", "list").stdout
    assert "statement.txt" in cli.run("history", "C1/0001").stdout
    assert cli.run("verify", str(tmp_path / "statement.txt")).stdout.startswith("EXACT MATCH")
    assert cli.run("log", "entry", "2").stdout.startswith("custody/entry/v1\ntype ingest\n")
    cli.run("log", "prove", "2")
    cli.run("log", "key")


def test_show_export_and_report_work_on_a_read_only_home(
    archived: Path, tmp_path: Path, cli: type[CliRunnerNS]
) -> None:
    assert "statement.txt" in cli.run("show", "C1/0001").stdout
    out = tmp_path / "bundle"
    cli.run("export", "C1", "--to", str(out))
    assert (out / "MANIFEST.json").exists()
    log_key = cli.run("log", "key").stdout.strip()
    cli.run("verify-bundle", str(out), "--trust", log_key)
    report = tmp_path / "report.html"
    cli.run("report", "C1", "--out", str(report))
    assert "C1/0001" in report.read_text()


def test_writing_commands_on_a_read_only_home_fail_saying_so(
    archived: Path, cli: type[CliRunnerNS]
) -> None:
    for args in (
        ("case", "new", "C2"),
        ("log", "checkpoint"),
        ("consent", "grant", "--owner", "alice", "--case", "C1", "--purpose", "court"),
    ):
        r = cli.fail(3, *args)
        assert f"the custody database {archived / 'custody.db'} {READ_ONLY}" in r.stderr, r


def test_key_new_and_ingest_on_a_read_only_home_fail_before_writing_a_file(
    archived: Path, tmp_path: Path, cli: type[CliRunnerNS]
) -> None:
    r = cli.fail(3, "key", "new", "carol", "--role", "lab")
    assert READ_ONLY in r.stderr, r
    clip = tmp_path / "another.txt"
    clip.write_text("another statement\n")
    r = cli.fail(
        3,
        "ingest",
        str(clip),
        "--case",
        "C1",
        "--by",
        "bob",
        "--source",
        "test",
        "--legal-basis",
        "consent",
        "--ref",
        "R-2",
    )
    assert READ_ONLY in r.stderr, r


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _make_old(db: Path) -> None:
    """Turn a database into one made before the custody state tables existed."""
    from schema1 import downgrade

    downgrade(db)  # schema 1, as earlier releases made it
    con = sqlite3.connect(db)
    for table in (
        "state_items",
        "state_consents",
        "state_consent_items",
        "state_offers",
        "state_keys",
    ):
        con.execute(f"DROP TABLE {table}")
    con.execute("DELETE FROM meta WHERE key = 'state'")
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def test_an_old_database_on_a_read_only_disk_is_replayed_in_memory(
    original: Path, tmp_path: Path, cli: type[CliRunnerNS], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = original / "custody.db"
    _make_old(db)
    before = _digest(db)
    with read_only_view(original, tmp_path / "archive") as view:
        monkeypatch.setenv("CUSTODY_HOME", str(view))
        assert cli.run("log", "verify").stdout.startswith("OK: the log verifies: 3 entries")
        assert "statement.txt" in cli.run("history", "C1/0001").stdout
        r = cli.fail(3, "case", "new", "C2")
        assert READ_ONLY in r.stderr
    # Nothing was written: no state tables were created, no rebuild was attempted.
    assert _digest(db) == before
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    con.close()
    assert "state_items" not in tables
    # Writable again, it gets its state tables and fills them before the next append.
    monkeypatch.setenv("CUSTODY_HOME", str(original))
    cli.run("key", "new", "carol", "--role", "lab")
    assert cli.run("log", "verify").stdout.startswith("OK: the log verifies: 4 entries")
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM state_keys").fetchone() == (3,)  # alice, bob, carol
    assert con.execute("SELECT value FROM meta WHERE key = 'state'").fetchone() == ("1",)
    con.close()


def _custody(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    custody = Path(sys.executable).with_name("custody")
    return subprocess.run(
        [str(custody), *args], env=dict(os.environ, **env), capture_output=True, text=True
    )


def test_a_pending_write_ahead_log_is_read_on_a_read_only_disk(
    home: Path, tmp_path: Path, cli: type[CliRunnerNS], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy taken after a crash: the last commit is only in custody.db-wal."""
    r = _custody("log", "checkpoint", CUSTODY_CRASH_AT="checkpoint.committed")
    assert r.returncode == 137, r
    wal = home / "custody.db-wal"
    assert wal.stat().st_size > 0 and (home / "custody.db-shm").exists()
    with read_only_view(home, tmp_path / "archive") as view:
        monkeypatch.setenv("CUSTODY_HOME", str(view))
        assert cli.run("log", "verify").stdout.startswith(
            "OK: the log verifies: 2 entries, 2 signatures, 1 checkpoints"
        )
    # Without its -shm file, SQLite cannot read that log on a read-only disk: say so.
    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    (copy / "custody.db-shm").unlink()
    with read_only_view(copy, tmp_path / "archive2") as view:
        monkeypatch.setenv("CUSTODY_HOME", str(view))
        r2 = cli.fail(3, "log", "verify")
        assert "custody.db-wal" in r2.stderr and "read-only" in r2.stderr, r2


def test_a_database_file_that_may_not_be_changed_is_opened_read_only(
    original: Path, cli: type[CliRunnerNS]
) -> None:
    """The folder is writable (SQLite may make its side files), the file is immutable."""
    db = original / "custody.db"
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not permitted here")
    try:
        assert cli.run("log", "verify").stdout.startswith("OK: the log verifies: 3 entries")
        assert "statement.txt" in cli.run("history", "C1/0001").stdout
        r = cli.fail(3, "case", "new", "C2")
        assert READ_ONLY in r.stderr, r
    finally:
        subprocess.run(["chattr", "-i", str(db)], capture_output=True)
    cli.run("case", "new", "C2")
