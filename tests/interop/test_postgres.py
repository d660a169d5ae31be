"""The same store code on PostgreSQL: schema, append-only triggers, concurrent writers.

The server is the session's `pg_server` (tests/conftest.py, tests/pgserver.py): a
throwaway cluster started by the tests, or CUSTODY_TEST_PG_URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PASSPHRASE, invoke

pytestmark = pytest.mark.postgres


def test_the_log_on_postgres(cli, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CUSTODY_DB", pg_url)
    cli.run("init", "--origin", "pg.example/custody")
    cli.run("key", "new", "bob", "--role", "agency")
    cli.run("key", "new", "carol", "--role", "lab")
    cli.run("log", "checkpoint")
    cli.run("log", "prove", "1")
    assert cli.run("log", "verify").stdout.startswith("OK: the log verifies: 2 entries")
    import psycopg

    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as con:
        for stmt in (
            "UPDATE entries SET data = 'x'",
            "DELETE FROM tree_nodes",
            "TRUNCATE checkpoints",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                con.execute(stmt)
        # Around the triggers, as an insider could: the verifier names the entry.
        con.execute("ALTER TABLE entries DISABLE TRIGGER entries_append_only")
        con.execute(
            "UPDATE entries SET data = convert_to(replace(convert_from(data, 'UTF8'), "
            "'role lab', 'role law'), 'UTF8') WHERE idx = 1"
        )
    r = invoke("log", "verify")
    assert r.code == 1 and "log entry 1" in r.stderr


WRITER = """
import sys
from datetime import UTC, datetime
from custody.model.entry import Entry, sign_entry
from custody.app.home import Custody
name, count = sys.argv[1], int(sys.argv[2])
item = name.encode().hex().ljust(64, "0")
now = datetime.now(UTC)
def entry(kind, fields):
    return sign_entry(Entry.build(kind, now, [("case", "T-" + name), *fields]), [signer])
with Custody.open() as c:
    signer = c.signer(name, lambda _p: sys.argv[3])
    c.log.append(entry("ingest", [("exhibit", "T-" + name + "/0001"), ("item", item),
                                  ("name", "x"), ("size", 1), ("kind", "attachment"),
                                  ("by", name), ("holder", name)]))
    for n in range(count):
        c.log.append(entry("access", [("item", item), ("by", name), ("n", n),
                                      ("purpose", "p"), ("action", "view")]))
"""


def test_concurrent_writers_on_postgres(
    cli, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CUSTODY_DB", pg_url)
    cli.run("init", "--origin", "pg.example/custody")
    for name in ("w1", "w2"):
        cli.run("key", "new", name, "--role", "agency")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), name, "40", PASSPHRASE],
            env=dict(os.environ),
            stderr=subprocess.PIPE,
        )
        for name in ("w1", "w2")
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    import json

    report = json.loads(cli.run("log", "verify", "--json").stdout)
    assert report["size"] == 2 + 2 + 80


def test_a_held_write_lock_on_postgres_is_waited_for_then_named(
    cli, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Issue 9, finding 4, on PostgreSQL: the advisory lock is waited for at most
    CUSTODY_LOCK_TIMEOUT seconds (lock_timeout), saying so, then exit 3 naming it."""
    import threading

    from custody.infra.store import Store

    monkeypatch.setenv("CUSTODY_DB", pg_url)
    cli.run("init", "--origin", "pg.example/custody")
    monkeypatch.setenv("CUSTODY_LOCK_TIMEOUT", "2")
    holder = Store.open(pg_url)
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        # Another writer, on its own connection, holds the lock (for 30 s at most, so
        # that a writer that waits for ever shows up as a failure, not a hang).
        with holder.writer():
            locked.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert locked.wait(30)
        start = time.monotonic()
        r = invoke("case", "new", "C1")
        elapsed = time.monotonic() - start
    finally:
        release.set()
        thread.join()
        holder.close()
    assert r.code == 3, r
    lines = r.stderr.rstrip("\n").split("\n")
    assert lines[0] == (
        "custody: waiting for the log's write lock (held by another custody process; "
        "up to 2 s, CUSTODY_LOCK_TIMEOUT)"
    ), r
    assert lines[1] == (
        "custody: error: the log's write lock is held by another process: gave up after 2 s"
    ), r
    assert 1.8 <= elapsed < 6, elapsed
    cli.run("case", "new", "C1")  # released: the same command goes through


def test_a_read_only_postgres_database_is_read_and_never_written(
    cli, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Issue 9, finding 5, on PostgreSQL: a database set to read-only transactions (as a
    hot standby is) serves every reading command; writers fail saying it is read-only."""
    import psycopg

    monkeypatch.setenv("CUSTODY_DB", pg_url)
    cli.run("init", "--origin", "pg.example/custody")
    cli.run("key", "new", "bob", "--role", "agency")
    cli.run("log", "checkpoint")
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as con:
        con.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    assert cli.run("log", "verify").stdout.startswith("OK: the log verifies: 1 entries")
    assert "bob" in cli.run("key", "list").stdout
    cli.run("log", "prove", "0")
    for args in (("case", "new", "C1"), ("log", "checkpoint")):
        r = cli.fail(3, *args)
        assert "is read-only" in r.stderr and "custody_test_" in r.stderr, r
