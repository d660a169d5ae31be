"""A held write lock: writers wait at most CUSTODY_LOCK_TIMEOUT, say so, then fail once.

Issue 9, finding 4: with another process holding a write transaction, each write
waited ~61 s before failing ("database is busy or unavailable"), file after file of
a batch.  Now a writer says on stderr after a second that it is waiting, gives up
after CUSTODY_LOCK_TIMEOUT seconds (default 10) with exit 3 naming the lock, and a
batch stops at the first file that meets the lock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CliRunnerNS, invoke

from custody.errors import UsageError
from custody.infra.store import DEFAULT_LOCK_TIMEOUT, lock_timeout

NOTICE = (
    "custody: waiting for the log's write lock (held by another custody process; "
    "up to {t} s, CUSTODY_LOCK_TIMEOUT)"
)
GAVE_UP = "custody: error: the log's write lock is held by another process: gave up after {t} s"

HOLDER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
con.execute("INSERT INTO meta (key, value) VALUES ('held-by-test', '1')")
open(sys.argv[2], "w").close()
time.sleep(float(sys.argv[3]))
con.execute("ROLLBACK")
"""


def _hold(db: Path, tmp: Path, seconds: float) -> subprocess.Popen[bytes]:
    """Another process holding the SQLite write lock for `seconds` (then rolling back)."""
    ready = tmp / f"holder-ready-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), str(ready), str(seconds)])
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, "the lock holder died"
        assert time.monotonic() < deadline, "the lock holder did not start"
        time.sleep(0.02)
    return proc


@pytest.fixture
def held(home: Path, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The home's write lock held by another process for the whole test."""
    proc = _hold(home / "custody.db", tmp_path, 600)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _timed(*args: str) -> tuple[float, object]:
    start = time.monotonic()
    result = invoke(*args)
    return time.monotonic() - start, result


def test_a_writer_gives_up_after_the_lock_timeout_naming_the_lock(
    held: subprocess.Popen[bytes],
    home: Path,
    cli: type[CliRunnerNS],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUSTODY_LOCK_TIMEOUT", "2")
    start = time.monotonic()
    r = invoke("key", "new", "carol", "--role", "lab")
    elapsed = time.monotonic() - start
    assert r.code == 3, r
    lines = r.stderr.rstrip("\n").split("\n")
    assert lines[0] == NOTICE.format(t=2), r
    assert lines[1] == GAVE_UP.format(t=2), r
    assert lines[2].startswith("  hint: ") and "CUSTODY_LOCK_TIMEOUT" in lines[2], r
    assert len(lines) == 3, r
    assert 1.8 <= elapsed < 5, elapsed
    # Creating a key is all or nothing: no key file is left for a party not on the log.
    assert not (home / "keys" / "carol.key").exists()
    held.kill()
    held.wait()
    assert cli.run("log", "verify").stdout.startswith("OK: the log verifies: 2 entries")


def test_a_zero_lock_timeout_fails_at_once_without_a_notice(
    held: subprocess.Popen[bytes], cli: type[CliRunnerNS], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUSTODY_LOCK_TIMEOUT", "0")
    start = time.monotonic()
    r = cli.fail(3, "case", "new", "C9")
    assert time.monotonic() - start < 1.5
    assert r.stderr.startswith(GAVE_UP.format(t=0) + "\n"), r


def test_a_lock_released_in_time_lets_the_writer_through(
    home: Path, tmp_path: Path, cli: type[CliRunnerNS], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUSTODY_LOCK_TIMEOUT", "20")
    proc = _hold(home / "custody.db", tmp_path, 2.5)
    try:
        start = time.monotonic()
        r = invoke("case", "new", "C1")
        elapsed = time.monotonic() - start
    finally:
        proc.wait()
    assert r.code == 0, r
    assert r.stderr.count(NOTICE.format(t=20)) == 1, r
    assert 1.5 < elapsed < 15, elapsed
    assert "C1" in cli.run("case", "list").stdout


def test_a_batch_stops_at_the_lock_instead_of_failing_file_after_file(
    held: subprocess.Popen[bytes],
    home: Path,
    tmp_path: Path,
    cli: type[CliRunnerNS],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held.kill()  # the case must be made first
    held.wait()
    cli.run("case", "new", "C1")
    files = []
    for n in range(4):
        f = tmp_path / f"note-{n}.txt"
        f.write_text(f"note {n}\n")
        files.append(str(f))
    proc = _hold(home / "custody.db", tmp_path, 600)
    monkeypatch.setenv("CUSTODY_LOCK_TIMEOUT", "2")
    try:
        start = time.monotonic()
        r = invoke(
            "ingest",
            *files,
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
        elapsed = time.monotonic() - start
    finally:
        proc.kill()
        proc.wait()
    assert r.code == 3, r
    # One wait for the whole batch, not one per file.
    assert r.stderr.count(NOTICE.format(t=2)) == 1, r
    assert elapsed < 2 * 2, elapsed
    last = r.stderr.rstrip("\n").split("\n")
    errors = [line for line in last if line.startswith("custody: error: ")]
    assert len(errors) == 1 and "write lock" in errors[0], r
    report = cli.run("log", "verify", "--json").stdout
    assert '"size": 2' in report  # nothing was appended


def test_the_lock_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUSTODY_LOCK_TIMEOUT", raising=False)
    assert lock_timeout() == DEFAULT_LOCK_TIMEOUT == 10
    monkeypatch.setenv("CUSTODY_LOCK_TIMEOUT", " 2.5 ")
    assert lock_timeout() == 2.5
    for bad in ("soon", "-1", "nan", "inf", "1e9"):
        monkeypatch.setenv("CUSTODY_LOCK_TIMEOUT", bad)
        with pytest.raises(UsageError, match="CUSTODY_LOCK_TIMEOUT must be a number of seconds"):
            lock_timeout()


def test_a_bad_lock_timeout_is_a_usage_error(
    home: Path, cli: type[CliRunnerNS], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUSTODY_LOCK_TIMEOUT", "ten")
    r = cli.fail(2, "case", "new", "C1")
    assert "CUSTODY_LOCK_TIMEOUT must be a number of seconds from 0 to 86400, not 'ten'" in r.stderr


def test_another_custody_process_waits_for_the_lock_in_a_subprocess(
    home: Path, tmp_path: Path
) -> None:
    """The whole command line, as a user runs it: a separate `custody` process."""
    proc = _hold(home / "custody.db", tmp_path, 600)
    try:
        env = dict(os.environ, CUSTODY_LOCK_TIMEOUT="1.5")
        custody = Path(sys.executable).with_name("custody")
        start = time.monotonic()
        r = subprocess.run(
            [str(custody), "log", "checkpoint"], env=env, capture_output=True, text=True
        )
        elapsed = time.monotonic() - start
    finally:
        proc.kill()
        proc.wait()
    assert r.returncode == 3, r
    assert NOTICE.format(t=1.5) in r.stderr and GAVE_UP.format(t=1.5) in r.stderr, r
    assert elapsed < 10, elapsed
