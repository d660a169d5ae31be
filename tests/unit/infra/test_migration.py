"""Schema 1 -> 2 (docs/database.md): a real schema-1 database, with handoffs, a
revoked consent, a rotated and a revoked key, is migrated on open (SQLite), in one
transaction, and then verifies, reads and appends as before; the new tables are
insert-only."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import CliRunnerNS, invoke
from schema1 import CASE, _handoff, _pw, schema_of, story

from custody.app.home import Custody
from custody.infra.indexer import append_indexed
from custody.infra.store import APPEND_ONLY_TABLES, SCHEMA_VERSION


@pytest.fixture
def schema1(home: Path, cli: type[CliRunnerNS]) -> Path:
    """The home's database, holding a story (tests/schema1.py), turned into schema 1."""
    return story(home, cli)


def _columns(db: Path, table: str) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
    finally:
        con.close()


def test_a_schema_1_database_is_migrated_on_open(schema1: Path, cli: type[CliRunnerNS]) -> None:
    assert schema_of(schema1) == "1"
    assert "revoked_at" in _columns(schema1, "state_consents")
    assert _columns(schema1, "state_holders") == []
    assert cli.run("log", "verify").stdout.startswith("OK: the log verifies")
    assert schema_of(schema1) == SCHEMA_VERSION
    assert "revoked_at" not in _columns(schema1, "state_consents")
    assert "ended_at" not in _columns(schema1, "state_keys")
    con = sqlite3.connect(schema1)
    try:
        assert con.execute("SELECT count(*) FROM state_consent_revocations").fetchone() == (1,)
        ends = con.execute("SELECT name, reason FROM state_key_ends ORDER BY name").fetchall()
        assert ends == [("carol", "rotated"), ("dave", "revoked: laptop stolen")]
        triggers = {
            r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        }
        assert triggers == {
            f"{t}_no_{op}" for t in APPEND_ONLY_TABLES for op in ("update", "delete")
        }
        for table in ("state_items", "state_consents", "state_keys", "parties"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                con.execute(f"DELETE FROM {table}")
    finally:
        con.close()
    # Reads: the current holder and key status come out as before.
    with Custody.open() as c:
        [one, two] = c.store.items_in_case(CASE)
        assert (one.holder, two.holder) == ("bob", "carol")
        assert c.store.party("dave").status == "revoked"  # type: ignore[union-attr]
        assert c.store.party("carol").status == "active"  # type: ignore[union-attr]
        # Appends: a handoff back (a new state_holders row after the migrated holder).
        bob, carol = c.signer("bob", _pw), c.signer("carol", _pw)
        with c.log.transaction() as w:
            append_indexed(w, _handoff(carol, bob, 2, 4))
        assert c.store.items_in_case(CASE)[1].holder == "bob"
    history = cli.run("history", f"{CASE}/0002").stdout
    assert history.count("handoff") >= 4 or history.count("carol") >= 3, history
    assert cli.run("log", "verify").stdout.startswith("OK: the log verifies")
    assert "nothing to do" in cli.run("db", "migrate").stdout


def test_db_migrate_migrates_explicitly(schema1: Path, cli: type[CliRunnerNS]) -> None:
    out = cli.run("db", "migrate").stdout
    assert f"migrated the database from schema 1 to {SCHEMA_VERSION}" in out
    assert schema_of(schema1) == SCHEMA_VERSION
    cli.run("log", "verify")


def test_a_migration_is_one_transaction(schema1: Path) -> None:
    """A failure half-way (here: a revocation of a consent the table already holds)
    leaves schema 1 exactly as it was."""
    con = sqlite3.connect(schema1)
    # A schema-1 database that already has a stray row where migration will insert.
    con.execute("CREATE TABLE state_consent_revocations (hash VARCHAR PRIMARY KEY, idx BIGINT)")
    hash_ = con.execute("SELECT hash FROM state_consents").fetchone()[0]
    con.execute("INSERT INTO state_consent_revocations VALUES (?, 0)", (hash_,))
    con.commit()
    con.close()
    r = invoke("log", "verify")
    assert r.code == 3 and "Traceback" not in r.stderr, r
    assert schema_of(schema1) == "1"
    assert "revoked_at" in _columns(schema1, "state_consents")


def test_every_table_but_meta_is_insert_only_on_sqlite(home: Path) -> None:
    db = home / "custody.db"
    con = sqlite3.connect(db)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"meta", *APPEND_ONLY_TABLES}
        for table in APPEND_ONLY_TABLES:
            # A row in each table (the triggers are per row), then UPDATE and DELETE it.
            cols = [r for r in con.execute(f"PRAGMA table_info({table})")]
            values = ", ".join(
                "987654" if c[2].upper() in ("INTEGER", "BIGINT") else "'zz'" for c in cols
            )
            con.execute(f"INSERT INTO {table} VALUES ({values})")
            for stmt in (f"UPDATE {table} SET {cols[0][1]} = {cols[0][1]}", f"DELETE FROM {table}"):
                with pytest.raises(sqlite3.IntegrityError, match=f"{table} is append-only"):
                    con.execute(stmt)
        con.execute("UPDATE meta SET value = value")  # meta alone: the operator's settings
    finally:
        con.rollback()
        con.close()
