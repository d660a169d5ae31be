"""The database's disk is full: every write exits 3 naming the disk, nothing is half-written.

Issue 9, finding 13: on a full disk, storage errors blamed the wrong thing ("another
custody process may hold the write lock").  The database here lives on a tiny
tmpfs (`CUSTODY_DB`), the rest of the home on the ordinary disk, so only the
database runs out of space; the tests skip, saying so, where mounting is not
permitted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CliRunnerNS, invoke
from mounts import fill, small_disk


@pytest.fixture
def db_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 2 MiB disk holding the database of a home with parties alice and bob."""
    with small_disk(tmp_path / "dbdisk", "2m") as disk:
        monkeypatch.setenv("CUSTODY_DB", f"sqlite:///{disk / 'custody.db'}")
        for args in (
            ("init", "--origin", "test.example/custody"),
            ("key", "new", "alice", "--role", "owner"),
            ("key", "new", "bob", "--role", "agency"),
            ("case", "new", "C1"),
        ):
            r = invoke(*args)
            assert r.code == 0, r
        yield disk


def _size(cli: type[CliRunnerNS]) -> int:
    report = json.loads(cli.run("log", "verify", "--json").stdout)
    return int(report["size"])


def test_appends_on_a_full_database_disk_name_the_disk_and_leave_the_log_whole(
    db_disk: Path, tmp_path: Path, cli: type[CliRunnerNS]
) -> None:
    """Space cut at every few KiB: the open, the write-ahead log and the commit run out
    in turn (SQLITE_IOERR_SHMSIZE, then SQLITE_FULL); each is reported as what it is."""
    db = db_disk / "custody.db"
    full = f"custody: error: the disk holding {db} is full"
    home = Path(str(tmp_path / "home"))
    size = _size(cli)
    failures = 0
    for kib in (0, 8, 16, 32, 48, 64, 80, 96, 128, 192, 256):
        filler = fill(db_disk, kib * 1024)
        name = f"lab{kib}"
        r = invoke("key", "new", name, "--role", "lab")
        filler.unlink()
        if r.code == 0:
            size += 1
        else:
            failures += 1
            assert r.code == 3, r
            assert r.stderr.startswith(full), r
            assert "write lock" not in r.stderr, r
            # All or nothing: no key file is left for a party that is not on the log.
            assert not (home / "keys" / f"{name}.key").exists(), r
        assert _size(cli) == size  # the log verifies, and holds exactly what succeeded
    assert failures >= 2  # at least the open and one commit ran out of space


def test_every_kind_of_write_names_the_full_disk(
    db_disk: Path, tmp_path: Path, cli: type[CliRunnerNS]
) -> None:
    db = db_disk / "custody.db"
    statement = tmp_path / "statement.txt"
    statement.write_text("a witness statement\n")
    filler = fill(db_disk, 0)
    for args in (
        ("log", "checkpoint"),
        ("case", "new", "C2"),
        ("consent", "grant", "--owner", "alice", "--case", "C1", "--purpose", "court"),
        (
            "ingest",
            str(statement),
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
        ),
    ):
        r = invoke(*args)
        assert r.code == 3, (args, r)
        errors = [x for x in r.stderr.splitlines() if x.startswith("custody: error: ")]
        assert len(errors) == 1 and f"the disk holding {db} is full" in errors[0], (args, r)
    filler.unlink()
    assert cli.run("log", "verify").stdout.startswith(
        "OK: the log verifies: 2 entries, 2 signatures, 0 checkpoints"
    )
    cli.run("log", "checkpoint")  # with space again, the same command works
