"""The same store code on PostgreSQL: schema, append-only triggers, concurrent writers.

The server is the session's `pg_server` (tests/conftest.py, tests/pgserver.py): a
throwaway cluster started by the tests, or CUSTODY_TEST_PG_URL.
"""

from __future__ import annotations

import time

import pytest
from appendrace import check_log, make_parties, race
from conftest import invoke

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


def test_concurrent_writers_on_postgres(cli, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Issue #10: 16 writer processes, each with its own key, appending one entry per
    transaction: indexes 0..n-1 exactly once, the root recomputed from the entries is
    the checkpoint's, and `log verify` passes (tests/appendrace.py)."""
    monkeypatch.setenv("CUSTODY_DB", pg_url)
    cli.run("init", "--origin", "pg.example/custody")
    names = [f"w{n:02d}" for n in range(16)]
    make_parties(names)
    reports = race("own", names, 12)
    assert all(not r["refused"] for r in reports), reports
    assert sorted(i for r in reports for i in r["ok"]) == list(range(16, 16 + 16 * 13))
    check_log(cli, 16 + 16 * 13)


def test_racing_handoffs_on_postgres_let_exactly_one_win(
    cli, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """16 processes race to take one exhibit from its holder (and to view it as the
    holder): one handoff wins, no view by the old holder follows it, the log replays."""
    monkeypatch.setenv("CUSTODY_DB", pg_url)
    cli.run("init", "--origin", "pg.example/custody")
    names = [f"r{n:02d}" for n in range(16)]
    make_parties(names, shared=True)
    reports = race("handoff", names, 6)
    datas = check_log(cli, 16 + 2 + sum(len(r["ok"]) for r in reports))
    handoffs = [i for i, d in enumerate(datas) if d.startswith(b"custody/entry/v1\ntype handoff\n")]
    assert len(handoffs) == 1, reports
    views = [i for i, d in enumerate(datas) if d.startswith(b"custody/entry/v1\ntype access\n")]
    assert views and max(views) < handoffs[0]


def test_a_key_revoked_during_a_race_on_postgres_signs_nothing_after(
    cli, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CUSTODY_DB", pg_url)
    cli.run("init", "--origin", "pg.example/custody")
    names = [f"r{n:02d}" for n in range(16)]
    make_parties(names, shared=True)
    reports = race("revoke", names, 6)
    datas = check_log(cli, 16 + 2 + sum(len(r["ok"]) for r in reports))
    key = b"custody/entry/v1\ntype key\n"
    revoked = [i for i, d in enumerate(datas) if d.startswith(key) and i >= 18]
    assert len(revoked) == 1
    views = [i for i, d in enumerate(datas) if d.startswith(b"custody/entry/v1\ntype access\n")]
    assert max(views) < revoked[0]


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
