"""The indexed custody state (custody.infra.state): kept in step with every append,
read in O(1) rows per append, rebuilt once for an older database, and checked by
`custody log verify` against a replay of the entries."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import PASSPHRASE, CliRunnerNS
from sqlalchemy import event

from custody.app.home import Custody
from custody.errors import PolicyError
from custody.infra.state import DbState
from custody.infra.store import STATE_MARKER, Store
from custody.model.entry import Entry, sign_entry
from custody.model.rules import replay
from custody.tlog.note import Signer


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


def _ingest(signer: Signer, n: int, basis: str = "warrant") -> bytes:
    fields: list[tuple[str, str | int | None]] = [
        ("case", CASE),
        ("exhibit", f"{CASE}/{n:04d}"),
        ("item", _item(n)),
        ("name", f"{n}.bin"),
        ("size", 1),
        ("kind", "attachment"),
        ("legal-basis", basis),
        ("by", signer.name),
    ]
    return sign_entry(Entry.build("ingest", _now(), fields), [signer])


def _access(signer: Signer, n: int, purpose: str = "review") -> bytes:
    fields = [
        ("case", CASE),
        ("item", _item(n)),
        ("by", signer.name),
        ("purpose", purpose),
        ("action", "view"),
    ]
    return sign_entry(Entry.build("access", _now(), fields), [signer])


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


def _case_of(c: Custody, items: int) -> Signer:
    bob, alice = c.signer("bob", _pw), c.signer("alice", _pw)
    with c.log.transaction() as w:
        w.append(_grant(alice))
        for n in range(1, items + 1):
            w.append(_ingest(bob, n, "consent" if n == 1 else "warrant"))
    return bob


def _replayed(c: Custody) -> object:
    return replay(c.store.iter_entries())


def test_the_state_tables_follow_the_appends(home: Path) -> None:
    with Custody.open() as c:
        _case_of(c, 3)
        with c.store.session() as s:
            state = DbState(s)
            assert state.item(CASE, _item(2)) == _replayed(c).item(CASE, _item(2))  # type: ignore[attr-defined]
            assert state.item(CASE, _item(2)).holder == "bob"  # type: ignore[union-attr]
            assert [k.role for k in state.party_keys("alice")] == ["owner"]
            [covering] = state.consents_covering(CASE, _item(1))
            assert covering.items == frozenset({_item(1)})
            assert state.consents_covering(CASE, _item(2)) == []
        c.log.verify(c.log_key)


def test_an_append_reads_the_same_rows_whatever_the_size_of_the_case(home: Path) -> None:
    """O(1) state rows per append: the statements an access append runs do not grow
    with the number of exhibits in the case (nor with the log)."""
    counts = []
    with Custody.open() as c:
        bob = _case_of(c, 5)
        statements: list[str] = []

        @event.listens_for(c.store.engine, "before_cursor_execute")
        def _count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
            statements.append(statement)

        for n, items in enumerate((5, 300)):
            if items > 5:
                with c.log.transaction() as w:
                    for k in range(6, items + 1):
                        w.append(_ingest(bob, k))
            statements.clear()
            c.log.append(_access(bob, 1, f"look {n}"))  # a consent item: the consent is read
            counts.append(len(statements))
            assert not any("FROM entries WHERE entries.case_id" in s for s in statements)
    assert counts[0] == counts[1], counts


def test_an_altered_state_row_fails_log_verify(home: Path, cli: type[CliRunnerNS]) -> None:
    with Custody.open() as c:
        _case_of(c, 2)
    cli.run("log", "verify")
    con = sqlite3.connect(home / "custody.db")
    with pytest.raises(sqlite3.IntegrityError, match="state_items is append-only"):
        con.execute("UPDATE state_items SET holder = 'alice' WHERE exhibit = ?", (f"{CASE}/0002",))
    # What the tables allow, an insider with INSERT could do: a handoff without an entry.
    con.execute(
        "INSERT INTO state_holders (case_id, item, seq, holder) VALUES (?, ?, 1, 'alice')",
        (CASE, _item(2)),
    )
    con.commit()
    con.close()
    r = cli.fail(1, "log", "verify")
    assert (
        "indexed custody state disagrees with the entries: holder of T-1/0002 is 'alice' in "
        "the database, 'bob' on the log"
    ) in r.stderr


def test_a_deleted_consent_row_fails_log_verify(home: Path, cli: type[CliRunnerNS]) -> None:
    with Custody.open() as c:
        _case_of(c, 1)
    con = sqlite3.connect(home / "custody.db")
    with pytest.raises(sqlite3.IntegrityError, match="state_consents is append-only"):
        con.execute("DELETE FROM state_consents")
    # Around the trigger, as the file's owner could.
    con.execute("DROP TRIGGER state_consents_no_delete")
    con.execute("DELETE FROM state_consents")
    con.commit()
    con.close()
    r = cli.fail(1, "log", "verify")
    assert "indexed custody state disagrees with the entries: consent" in r.stderr
    assert "is missing from the database" in r.stderr


def test_the_state_rules_appends(home: Path) -> None:
    """What the state says is what the log enforces: a non-holder is refused."""
    with Custody.open() as c:
        _case_of(c, 2)
        alice = c.signer("alice", _pw)
        with pytest.raises(PolicyError, match="'alice' may not access T-1/0002"):
            c.log.append(_access(alice, 2))


def test_an_orphan_change_row_fails_log_verify(home: Path, cli: type[CliRunnerNS]) -> None:
    with Custody.open() as c:
        _case_of(c, 1)
    con = sqlite3.connect(home / "custody.db")
    con.execute("INSERT INTO state_consent_revocations (hash, idx) VALUES ('ab12', 3)")
    con.commit()
    con.close()
    r = cli.fail(1, "log", "verify")
    assert "revocation of consent ab12 names nothing on the log" in r.stderr


def test_a_database_made_before_the_state_tables_is_rebuilt_once(
    home: Path, cli: type[CliRunnerNS]
) -> None:
    """A schema-1 database from before the state tables: migrated on open, and the
    state filled by one replay before the first append."""
    with Custody.open() as c:
        bob = _case_of(c, 3)
        c.log.append(_access(bob, 1))
    con = sqlite3.connect(home / "custody.db")
    for table in (
        "state_items",
        "state_holders",
        "state_consents",
        "state_consent_revocations",
        "state_consent_items",
        "state_offers",
        "state_keys",
        "state_key_ends",
    ):
        con.execute(f"DROP TABLE {table}")
    con.execute("DELETE FROM meta WHERE key = ?", (STATE_MARKER,))
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    con.commit()
    con.close()
    # Reads before the first append still see the custody state (replayed).
    with Custody.open() as c:
        with c.log.state() as state:
            assert state.item(CASE, _item(3)).holder == "bob"  # type: ignore[union-attr]
        assert c.log.parties().current("alice") is not None
        cli.run("log", "verify")
        # The first append fills the tables (and is checked against them).
        alice = c.signer("alice", _pw)
        with pytest.raises(PolicyError, match="'alice' may not access"):
            c.log.append(_access(alice, 3))
        c.log.append(_access(bob, 3))
        with c.store.session() as s:
            assert Store.has_state(s)
            assert DbState(s).item(CASE, _item(3)).holder == "bob"  # type: ignore[union-attr]
    cli.run("log", "verify")
