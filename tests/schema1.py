"""Turn a custody database of this release into the schema-1 database an earlier
release would have made from the same entries, to test migrations on real data.

Schema 1 (custody before the insert-only tables of docs/database.md) kept current
values in mutable columns: `state_items.holder`, `state_consents.revoked_at`,
`state_keys.ended_at`/`end_reason`, `items.holder`, `parties.vkey`/`entry_idx`/
`status`; and append-only triggers on `entries`, `tree_nodes` and `checkpoints`
only.  `downgrade` writes exactly that: the DDL of schema 1's columns, the values
an earlier release would hold, and its `meta` schema version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conftest import PASSPHRASE, CliRunnerNS

from custody.app.home import Custody
from custody.infra.indexer import append_indexed
from custody.model.entry import Entry, sign_entry
from custody.tlog.note import Signer

V1_TRIGGERED = ("entries", "tree_nodes", "checkpoints")
V2_ONLY = ("state_holders", "state_consent_revocations", "state_key_ends")
#: The tables schema 3 added (custody.infra.store.SCHEMA3_TABLES): schema 1 had none.
V3_ONLY = (
    "state_consent_requests",
    "state_requests",
    "state_request_answers",
    "state_emergencies",
    "state_reviews",
    "state_holds",
    "state_hold_releases",
    "state_disposals",
    "state_policies",
)

_SCHEMA1 = [
    # The current holder, in place (schema 1 updated it at each handoff).
    """UPDATE state_items SET holder = (SELECT h.holder FROM state_holders h
         WHERE h.case_id = state_items.case_id AND h.item = state_items.item
         ORDER BY h.seq DESC LIMIT 1)
       WHERE EXISTS (SELECT 1 FROM state_holders h
         WHERE h.case_id = state_items.case_id AND h.item = state_items.item)""",
    "ALTER TABLE state_consents ADD COLUMN revoked_at BIGINT",
    """UPDATE state_consents SET revoked_at = (SELECT r.idx FROM state_consent_revocations r
         WHERE r.hash = state_consents.hash)""",
    "ALTER TABLE state_keys ADD COLUMN ended_at BIGINT",
    "ALTER TABLE state_keys ADD COLUMN end_reason VARCHAR",
    """UPDATE state_keys SET
         ended_at = (SELECT e.ended_at FROM state_key_ends e
           WHERE e.name = state_keys.name AND e.registered_at = state_keys.registered_at),
         end_reason = (SELECT e.reason FROM state_key_ends e
           WHERE e.name = state_keys.name AND e.registered_at = state_keys.registered_at)""",
    """UPDATE items SET holder = (SELECT s.holder FROM state_items s
         WHERE s.case_id = items.case_id AND s.item = items.blake3)
       WHERE EXISTS (SELECT 1 FROM state_items s
         WHERE s.case_id = items.case_id AND s.item = items.blake3)""",
    """UPDATE parties SET
         vkey = (SELECT k.vkey FROM state_keys k WHERE k.name = parties.name
           ORDER BY k.registered_at DESC LIMIT 1),
         entry_idx = (SELECT k.registered_at FROM state_keys k WHERE k.name = parties.name
           ORDER BY k.registered_at DESC LIMIT 1),
         status = CASE WHEN (SELECT k.ended_at FROM state_keys k WHERE k.name = parties.name
           ORDER BY k.registered_at DESC LIMIT 1) IS NULL THEN 'active' ELSE 'revoked' END""",
    *(f"DROP TABLE {t}" for t in (*V2_ONLY, *V3_ONLY)),
    "UPDATE meta SET value = '1' WHERE key = 'schema'",
]


def _tables(execute: Any, sqlite: bool) -> list[str]:
    q = (
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        if sqlite
        else "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    )
    return [str(r[0]) for r in execute(q).fetchall()]


def _run(execute: Any, sqlite: bool) -> None:
    for table in _tables(execute, sqlite):
        if table in V1_TRIGGERED or table == "meta":
            continue
        if sqlite:
            execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        else:
            execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    for stmt in _SCHEMA1:
        execute(stmt)


def downgrade(db: Path | str) -> None:
    """Make the SQLite file `db`, or the PostgreSQL database at URL `db` (as a role
    owning its tables), a schema-1 database holding the same entries."""
    if isinstance(db, Path):
        import sqlite3

        con = sqlite3.connect(db, isolation_level=None)
        try:
            con.execute("BEGIN")
            _run(con.execute, True)
            con.execute("COMMIT")
        finally:
            con.close()
        return
    import psycopg

    with psycopg.connect(str(db).replace("+psycopg", "")) as pg, pg.transaction():
        _run(pg.execute, False)


def schema_of(db: Path) -> str:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return str(con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0])
    finally:
        con.close()


# -- a story to migrate: handoffs, a revoked consent, a rotated and a revoked key -------


def _now() -> datetime:
    """The time the entries built here claim: now, as the home's own entries (made by the
    CLI) do; a log refuses an entry claiming a time well before the one before it
    (docs/spec/entry.md rule 5)."""
    return datetime.now(UTC).replace(microsecond=0)


CASE = "T-1"


def _pw(_prompt: str) -> str:
    return PASSPHRASE


def _item(n: int) -> str:
    return f"{n:08x}" * 8


def _ingest(by: Signer, n: int) -> bytes:
    fields: list[tuple[str, str | int | None]] = [
        ("case", CASE),
        ("exhibit", f"{CASE}/{n:04d}"),
        ("item", _item(n)),
        ("name", f"{n}.bin"),
        ("size", 1),
        ("kind", "attachment"),
        ("legal-basis", "warrant"),
        ("by", by.name),
    ]
    return sign_entry(Entry.build("ingest", _now(), fields), [by])


def _handoff(sender: Signer, receiver: Signer, n: int, offer: int) -> bytes:
    fields = [
        ("case", CASE),
        ("item", _item(n)),
        ("from", sender.name),
        ("to", receiver.name),
        ("purpose", "analysis"),
        ("offer", f"{offer:064x}"),
    ]
    return sign_entry(Entry.build("handoff", _now(), fields), [sender, receiver])


def _grant(owner: Signer) -> bytes:
    fields = [
        ("action", "grant"),
        ("owner", owner.name),
        ("case", CASE),
        ("item", _item(1)),
        ("purpose", "investigation"),
        ("onward", "court"),
    ]
    return sign_entry(Entry.build("consent", _now(), fields), [owner])


def story(home: Path, cli: type[CliRunnerNS]) -> Path:
    """Record a story in the home (its parties alice and bob: the `home` fixture's) and
    turn its database into schema 1; returns the database file.

    Items T-1/0001 (held by bob) and T-1/0002 (handed bob -> carol -> bob -> carol), a
    consent grant revoked, carol's key rotated, dave's revoked ("laptop stolen").
    """
    cli.run("key", "new", "carol", "--role", "lab")
    cli.run("key", "new", "dave", "--role", "lab")
    with Custody.open() as c:
        alice, bob, carol = (c.signer(n, _pw) for n in ("alice", "bob", "carol"))
        with c.log.transaction() as w:
            grant = append_indexed(w, _grant(alice))
            for data in (
                _ingest(bob, 1),
                _ingest(bob, 2),
                _handoff(bob, carol, 2, 1),
                _handoff(carol, bob, 2, 2),
                _handoff(bob, carol, 2, 3),
            ):
                append_indexed(w, data)
    cli.run("consent", "revoke", str(grant), "--owner", "alice")
    cli.run("key", "rotate", "carol")
    cli.run("key", "revoke", "dave", "--reason", "laptop stolen")
    db = home / "custody.db"
    downgrade(db)
    return db
