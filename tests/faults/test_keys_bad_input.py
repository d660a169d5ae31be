"""Key files, party names, origins and numbers on the command line (issue 9, findings 8-10).

Each test is a transcript: the command, its exit code and its one-line error, and what
it leaves behind.  Commands that used to hang, or that must crash at a named point, run
in a child process with a time limit.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CliResult, invoke

from custody.errors import StorageError
from custody.infra.crash import CRASH_STATUS, ENV_CRASH_AT

CUSTODY = Path(sys.executable).with_name("custody")
ORIGIN = "test.example/custody"
CYRILLIC_E = "\u0435"


def child(*args: str, crash_at: str | None = None, **env: str) -> CliResult:
    """Run the installed `custody` in a child process, at most 60 s."""
    environ = dict(os.environ)
    environ.pop(ENV_CRASH_AT, None)
    environ.update(env)
    if crash_at is not None:
        environ[ENV_CRASH_AT] = crash_at
    done = subprocess.run(
        [str(CUSTODY), *args], capture_output=True, env=environ, check=False, timeout=60
    )
    return CliResult(done.returncode, done.stdout, done.stderr.decode("utf-8", "replace"))


def one_line_error(r: CliResult, code: int) -> str:
    """The error line of a failed command that exited with `code`."""
    assert r.code == code, r
    assert r.stderr.startswith("custody: error: ") and "Traceback" not in r.stderr, r
    lines = r.stderr.rstrip("\n").split("\n")
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("  hint: ")), r
    assert "internal error" not in r.stderr, r
    return lines[0]


def parties(home: Path) -> list[str]:
    r = invoke("key", "list", "--json", "--home", str(home))
    assert r.code == 0, r
    return [p["name"] for p in json.loads(r.stdout)]


def key_files(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "keys").iterdir())


def log_verifies(home: Path) -> int:
    r = invoke("log", "verify", "--json", "--home", str(home))
    assert r.code == 0, r
    return int(json.loads(r.stdout)["size"])


# -- finding 8: key files and passphrase files ------------------------------------------


def test_a_passphrase_file_that_never_ends_is_refused(home: Path) -> None:
    r = child("key", "new", "carol", "--role", "lab", "--passphrase-file", "/dev/zero")
    line = one_line_error(r, 3)
    assert "--passphrase-file /dev/zero is larger than 1024 bytes" in line
    assert parties(home) == ["alice", "bob"] and "carol.key" not in key_files(home)


def test_a_long_passphrase_file_is_refused_a_short_one_is_read(home: Path, tmp_path: Path) -> None:
    long = tmp_path / "long"
    long.write_text("x" * 2000 + "\n")
    line = one_line_error(
        invoke("key", "new", "carol", "--role", "lab", "--passphrase-file", str(long)), 3
    )
    assert f"--passphrase-file {long} is larger than 1024 bytes" in line
    short = tmp_path / "short"
    short.write_text("p" * 900 + "\nanything after the first line\n")
    r = invoke("key", "new", "carol", "--role", "lab", "--passphrase-file", str(short))
    assert r.code == 0, r


@pytest.mark.parametrize(
    ("kdf", "named"),
    [
        ("m=8192,t=999999999,p=1", "KDF parameter t=999999999 is outside 1..10"),
        ("m=99999999999,t=1,p=1", "KDF parameter m=99999999999 is outside 8192..1048576"),
        ("m=1,t=1,p=1", "KDF parameter m=1 is outside 8192..1048576"),
        ("m=8192,t=1,p=0", "KDF parameter p=0 is outside 1..8"),
    ],
)
def test_an_edited_key_file_is_refused_naming_file_and_parameter(
    home: Path, kdf: str, named: str
) -> None:
    path = home / "keys" / "bob.key"
    path.write_text(path.read_text().replace("kdf argon2id m=8192,t=1,p=1", f"kdf argon2id {kdf}"))
    line = one_line_error(child("key", "revoke", "bob", "--reason", "test"), 3)
    assert line.startswith(f"custody: error: {path}: {named}"), line
    assert log_verifies(home) == 2


def test_open_key_files_and_folders_are_warned_about(home: Path) -> None:
    (home / "keys").chmod(0o755)
    (home / "keys" / "bob.key").chmod(0o644)
    r = invoke("key", "revoke", "bob", "--reason", "laptop stolen")
    assert r.code == 0, r
    warnings = [line for line in r.stderr.splitlines() if line.startswith("custody: warning: ")]
    assert warnings == [
        f"custody: warning: the keys folder {home / 'keys'} is open to other users "
        f"(mode 0755); run 'chmod 700 {home / 'keys'}'",
        f"custody: warning: the key file {home / 'keys' / 'bob.key'} is open to other users "
        f"(mode 0644); run 'chmod 600 {home / 'keys' / 'bob.key'}'",
    ]


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_init_makes_the_database_and_vault_private(tmp_path: Path, umask_022: None) -> None:
    home = tmp_path / "h"
    r = child("init", "--origin", ORIGIN, "--home", str(home))
    assert r.code == 0, r
    assert r.stderr == ""
    assert stat.S_IMODE((home / "custody.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "vault").stat().st_mode) == 0o700
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    # The write-ahead log and shared-memory files SQLite adds take the database's mode.
    with sqlite3.connect(home / "custody.db") as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("SELECT count(*) FROM meta").fetchall()
        for suffix in ("-wal", "-shm"):
            side = home / f"custody.db{suffix}"
            assert stat.S_IMODE(side.stat().st_mode) == 0o600, side
    r = child("key", "new", "carol", "--role", "lab", "--home", str(home))
    assert r.code == 0, r
    assert stat.S_IMODE((home / "custody.db").stat().st_mode) == 0o600


# -- finding 9: names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("DET", "party name 'DET' has the upper-case letter 'D'"),
        (f"d{CYRILLIC_E}t", "party name 'd\\u0435t' has the non-ASCII character U+0435"),
        ("a" * 300, "party name is 300 characters long; at most 64 are allowed"),
        (".det", "party name '.det' starts with '.'"),
        ("bad name", "party name 'bad name' has the character U+0020"),
    ],
)
def test_names_outside_the_rule_are_usage_errors_leaving_nothing(
    home: Path, name: str, reason: str
) -> None:
    line = one_line_error(invoke("key", "new", name, "--role", "agency"), 2)
    assert line.startswith(f"custody: error: {reason}"), line
    assert parties(home) == ["alice", "bob"]
    assert key_files(home) == ["alice.key", "bob.key", "test.example%2Fcustody.key"]


def test_an_org_with_control_characters_leaves_no_key_file(home: Path) -> None:
    line = one_line_error(invoke("key", "new", "esc", "--role", "agency", "--org", "\x1b[2J"), 2)
    assert "org '\\x1b[2J' contains a control character" in line
    assert "\x1b" not in line
    assert parties(home) == ["alice", "bob"] and "esc.key" not in key_files(home)


def test_a_name_that_looks_like_a_registered_one_is_refused(home: Path) -> None:
    # A party registered before the name rule (or by another tool): 'DET', upper case.
    db = sqlite3.connect(home / "custody.db")
    with db:
        db.execute(
            "INSERT INTO parties (name, role, org, vkey, status, entry_idx) "
            "VALUES ('DET', 'agency', '', 'DET+00000000+AQ', 'active', 99)"
        )
    db.close()
    line = one_line_error(invoke("key", "new", "det", "--role", "agency"), 2)
    assert line == "custody: error: party name 'det' looks like 'DET', already on this log"
    assert "det.key" not in key_files(home)


@pytest.mark.parametrize(
    ("origin", "reason"),
    [
        ("a" * 300, "log origin is 300 characters long; at most 128 are allowed"),
        ("Metro.example/custody", "log origin 'Metro.example/custody' has the upper-case"),
        (f"m{CYRILLIC_E}tro.example", "log origin 'm\\u0435tro.example' has the non-ASCII"),
        ("https://x.example/log", "log origin 'https://x.example/log' has the character ':'"),
    ],
)
def test_bad_origins_are_usage_errors_and_make_no_home(
    tmp_path: Path, origin: str, reason: str
) -> None:
    home = tmp_path / "h"
    line = one_line_error(invoke("init", "--origin", origin, "--home", str(home)), 2)
    assert line.startswith(f"custody: error: {reason}"), line
    assert not home.exists()


def test_the_names_of_the_docs_and_demo_fit_the_rules(tmp_path: Path) -> None:
    home = tmp_path / "h"
    assert invoke("init", "--origin", "metro-police.example/custody", "--home", str(home)).code == 0
    for name in ("det-jones", "owner-garcia", "lab-ng", "clerk-okafor"):
        r = invoke("key", "new", name, "--role", "agency", "--home", str(home))
        assert r.code == 0, r
    assert log_verifies(home) == 4


# -- finding 10: numbers on the command line ----------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("log", "entry", "999999999999999999999999"), "'index'"),
        (("log", "prove", "999999999999999999999999"), "'index'"),
        (("log", "prove", "0", "--size", "999999999999999999999999"), "'--size'"),
        (("log", "consistency", "1", "999999999999999999999999"), "'new'"),
        (("log", "consistency", "999999999999999999999999", "1"), "'old'"),
        (("log", "verify", "--jobs", "0"), "'--jobs'"),
        (("log", "verify", "--jobs", "99999999999999999999"), "'--jobs'"),
    ],
)
def test_numbers_out_of_range_are_usage_errors(
    home: Path, args: tuple[str, ...], named: str
) -> None:
    line = one_line_error(invoke(*args), 2)
    assert f"Invalid value for {named}" in line


# -- all or nothing: a failed append, and the crash points --------------------------------------


def test_a_key_whose_entry_fails_to_commit_leaves_no_file(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object) -> int:
        raise StorageError("the disk is full")

    with monkeypatch.context() as patched:
        patched.setattr("custody.app.home.append_indexed_one", refuse)
        line = one_line_error(invoke("key", "new", "carol", "--role", "lab"), 3)
    assert line == "custody: error: the disk is full"
    assert "carol.key" not in key_files(home)
    assert invoke("key", "new", "carol", "--role", "lab").code == 0


def test_an_init_whose_commit_fails_leaves_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from custody.infra.store import Store

    home = tmp_path / "h"
    real = Store.writer
    calls: list[int] = []

    def writer(self: Store):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:  # the commit of the origin, after the key file is written
            raise StorageError("the disk is full")
        return real(self)

    with monkeypatch.context() as patched:
        patched.setattr(Store, "writer", writer)
        line = one_line_error(invoke("init", "--origin", ORIGIN, "--home", str(home)), 3)
    assert line == "custody: error: the disk is full"
    assert list((home / "keys").iterdir()) == []
    assert invoke("init", "--origin", ORIGIN, "--home", str(home)).code == 0
    assert log_verifies(home) == 0


def test_crash_after_the_key_file_is_written(home: Path) -> None:
    r = child("key", "new", "carol", "--role", "lab", "--org", "Lab", crash_at="key.file-written")
    assert r.code == CRASH_STATUS, r
    assert "carol.key" in key_files(home) and parties(home) == ["alice", "bob"]
    # Other role or org, or another passphrase: refused, saying what to do.
    line = one_line_error(invoke("key", "new", "carol", "--role", "lab"), 2)
    assert "a key file for 'carol' exists" in line and "not registered on this log" in line
    r = child("key", "new", "carol", "--role", "lab", "--org", "Lab", CUSTODY_PASSPHRASE="other")
    assert "wrong passphrase for key 'carol'" in one_line_error(r, 3)
    assert "interrupted 'key new'" in r.stderr
    # The same command again registers the key that was written.
    key = (home / "keys" / "carol.key").read_bytes()
    r = invoke("key", "new", "carol", "--role", "lab", "--org", "Lab")
    assert r.code == 0, r
    assert "registered the existing key file of 'carol' (lab) as log entry 2" in r.stdout
    assert (home / "keys" / "carol.key").read_bytes() == key
    assert parties(home) == ["alice", "bob", "carol"]
    assert log_verifies(home) == 3


def test_crash_after_the_key_entry_is_committed(home: Path) -> None:
    r = child("key", "new", "carol", "--role", "lab", crash_at="key.entry-committed")
    assert r.code == CRASH_STATUS, r
    assert parties(home) == ["alice", "bob", "carol"] and "carol.key" in key_files(home)
    line = one_line_error(invoke("key", "new", "carol", "--role", "lab"), 2)
    assert line == "custody: error: party 'carol' is already registered on this log"
    assert log_verifies(home) == 3
    assert invoke("log", "checkpoint").code == 0


@pytest.mark.parametrize("point", ["init.pending-committed", "init.key-written"])
def test_crash_during_init_then_init_again_finishes(tmp_path: Path, point: str) -> None:
    home = tmp_path / "h"
    r = child("init", "--origin", ORIGIN, "--home", str(home), crash_at=point)
    assert r.code == CRASH_STATUS, r
    # Nothing works yet, and says so.
    line = one_line_error(invoke("log", "key", "--home", str(home)), 3)
    assert "has no log yet" in line
    if point == "init.key-written":
        written = (home / "keys" / "test.example%2Fcustody.key").read_bytes()
        r = invoke("init", "--origin", ORIGIN, "--home", str(home))
        assert r.code == 0, r
        assert (home / "keys" / "test.example%2Fcustody.key").read_bytes() == written
    else:
        assert invoke("init", "--origin", ORIGIN, "--home", str(home)).code == 0
    assert key_files(home) == ["test.example%2Fcustody.key"]
    assert log_verifies(home) == 0
    assert invoke("log", "checkpoint", "--home", str(home)).code == 0


def test_an_interrupted_init_needs_the_passphrase_it_chose(tmp_path: Path) -> None:
    home = tmp_path / "h"
    r = child("init", "--origin", ORIGIN, "--home", str(home), crash_at="init.key-written")
    assert r.code == CRASH_STATUS, r
    r = child("init", "--origin", ORIGIN, "--home", str(home), CUSTODY_PASSPHRASE="other")
    assert "wrong passphrase for key 'test.example/custody'" in one_line_error(r, 3)
    assert "an interrupted 'custody init' left" in r.stderr


def test_an_interrupted_init_under_another_origin_leaves_no_stray_key(tmp_path: Path) -> None:
    home = tmp_path / "h"
    r = child(
        "init", "--origin", "first.example/log", "--home", str(home), crash_at="init.key-written"
    )
    assert r.code == CRASH_STATUS, r
    assert invoke("init", "--origin", ORIGIN, "--home", str(home)).code == 0
    assert key_files(home) == ["test.example%2Fcustody.key"]


def test_crash_after_init_committed(tmp_path: Path) -> None:
    home = tmp_path / "h"
    r = child("init", "--origin", ORIGIN, "--home", str(home), crash_at="init.committed")
    assert r.code == CRASH_STATUS, r
    line = one_line_error(invoke("init", "--origin", ORIGIN, "--home", str(home)), 2)
    assert line == f"custody: error: {home} is already initialised (log origin '{ORIGIN}')"
    assert log_verifies(home) == 0
    assert invoke("log", "checkpoint", "--home", str(home)).code == 0


def test_a_key_file_of_another_log_is_not_taken_over_by_init(tmp_path: Path) -> None:
    # The home's log key exists, and init is pointed at a new database: refused as before.
    home = tmp_path / "h"
    assert invoke("init", "--origin", ORIGIN, "--home", str(home)).code == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"
    line = one_line_error(invoke("init", "--origin", ORIGIN, "--home", str(home), "--db", other), 2)
    assert line == f"custody: error: a key for '{ORIGIN}' already exists in {home / 'keys'}"
