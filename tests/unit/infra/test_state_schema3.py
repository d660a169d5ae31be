"""Schema 3 (docs/database.md): the indexed state of requests, answers, emergency
disclosures and their reviews, holds, disposals and the log's policy.  The same entries
appended through a real home's log give a `DbState` equal to the replay's `MemoryState`,
`log verify` compares the two, the rules refuse through the log what they refuse in
memory, and a schema-2 database is migrated on open (SQLite here; PostgreSQL below)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import PASSPHRASE, CliRunnerNS

from custody.app.home import Custody
from custody.errors import PolicyError
from custody.infra.indexer import append_indexed, append_indexed_one
from custody.infra.state import DbState, compare, write_all
from custody.infra.store import APPEND_ONLY_TABLES, SCHEMA3_TABLES, SCHEMA_VERSION, Store
from custody.model.entry import Entry, sign_entry
from custody.model.rules import entry_hash, replay
from custody.model.state import MemoryState
from custody.tlog.note import Signer

CASE = "R-1"
NEW_TABLES = tuple(str(t.__tablename__) for t in SCHEMA3_TABLES)
Fields = list[tuple[str, str | int | None]]


def _pw(_prompt: str) -> str:
    return PASSPHRASE


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _item(n: int) -> str:
    return f"{n:08x}" * 8


def _sign(type_: str, fields: Fields, *signers: Signer) -> bytes:
    return sign_entry(Entry.build(type_, _now(), fields), list(signers))


def _ingest(bob: Signer, n: int, basis: str, **extra: str) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("exhibit", f"{CASE}/{n:04d}"),
        ("item", _item(n)),
        ("name", f"cam{n}.mp4"),
        ("size", 1),
        ("kind", "media"),
        ("legal-basis", basis),
        *((k.replace("_", "-"), v) for k, v in extra.items()),
        ("by", bob.name),
    ]
    return _sign("ingest", fields, bob)


class Story:
    """Requests (one answered by consent, one refused), a consent ingest inside the
    request's window, two emergency disclosures (one reviewed and rejected), a policy,
    holds placed and released, a retention, an analysis and a disposal."""

    def __init__(self, c: Custody) -> None:
        self.c = c
        self.bob, self.alice = c.signer("bob", _pw), c.signer("alice", _pw)
        self.carol, self.log_key = c.signer("carol", _pw), c.log_signer(_pw)
        now = _now()
        self.window = (
            (now - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )

    def request(self, owner: str | None, ref: str) -> bytes:
        fields: Fields = [
            ("case", CASE),
            ("by", "bob"),
            ("owner", owner),
            ("purpose", "burglary"),
            ("start", self.window[0]),
            ("end", self.window[1]),
            ("area", "51.5,-0.1,300"),
            ("answer-by", "2099-01-01"),
            ("ref", ref),
        ]
        return _sign("request", fields, self.bob)

    def grant(self, request: bytes) -> bytes:
        fields: Fields = [
            ("action", "grant"),
            ("owner", "alice"),
            ("case", CASE),
            ("purpose", "investigation"),
            ("onward", "court"),
            ("request", entry_hash(request)),
        ]
        return _sign("consent", fields, self.alice)

    def refusal(self, request: bytes) -> bytes:
        fields: Fields = [("case", CASE), ("owner", "alice"), ("request", entry_hash(request))]
        return _sign("refusal", fields, self.alice)

    def review(self, ingest: bytes, n: int, outcome: str) -> bytes:
        fields: Fields = [
            ("case", CASE),
            ("item", _item(n)),
            ("ingest", entry_hash(ingest)),
            ("by", "carol"),
            ("outcome", outcome),
            ("note", "reviewed"),
        ]
        return _sign("review", fields, self.carol)

    def hold(self, by: Signer, item: str | None) -> bytes:
        fields: Fields = [
            ("case", CASE),
            ("item", item),
            ("action", "place"),
            ("reason", "appeal"),
            ("by", by.name),
        ]
        return _sign("hold", fields, by)

    def release(self, placed: bytes) -> bytes:
        fields: Fields = [
            ("case", CASE),
            ("action", "release"),
            ("hold", entry_hash(placed)),
            ("reason", "decided"),
            ("by", "bob"),
        ]
        return _sign("hold", fields, self.bob)

    def policy(self, *forbid: str, hours: str = "24") -> bytes:
        fields: Fields = [*(("forbid", k) for k in forbid), ("review-within", hours)]
        return _sign("policy", fields, self.log_key)

    def analysis(self, n: int, kind: str) -> bytes:
        fields: Fields = [
            ("case", CASE),
            ("item", _item(n)),
            ("by", "bob"),
            ("kind", kind),
            ("tool", "whisper"),
            ("tool-version", "3"),
            ("purpose", "transcript"),
        ]
        return _sign("analysis", fields, self.bob)

    def disposal(self, n: int) -> bytes:
        fields: Fields = [("case", CASE), ("item", _item(n)), ("by", "bob"), ("reason", "done")]
        return _sign("disposal", fields, self.bob)

    def run(self) -> dict[str, bytes]:
        bob = self.bob
        asked, open_ = self.request("alice", "R-1"), self.request(None, "R-2")
        mid = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        grant = self.grant(asked)
        e2 = _ingest(bob, 2, "emergency", justification="a child is missing")
        placed = self.hold(bob, _item(1))
        out = {
            "asked": asked,
            "open": open_,
            "grant": grant,
            "refusal": self.refusal(open_),
            "ingest1": _ingest(bob, 1, "consent", consent=entry_hash(grant), recorded=mid),
            "ingest2": e2,
            "ingest4": _ingest(bob, 4, "warrant", ref="W-4"),
            "policy": self.policy("face-recognition"),
        }
        with self.c.log.transaction() as w:
            for data in out.values():
                append_indexed(w, data)
        e3 = _ingest(bob, 3, "emergency", justification="fire")
        more = {
            "ingest3": e3,
            "review2": self.review(e2, 2, "rejected"),
            "hold1": placed,
            "release1": self.release(placed),
            "analysis1": self.analysis(1, "transcription"),
            "disposal4": self.disposal(4),
            "case_hold": self.hold(self.carol, None),
            "retention": _sign(
                "retention",
                [("case", CASE), ("until", "2030-01-01"), ("basis", "schedule"), ("by", "bob")],
                bob,
            ),
        }
        for data in more.values():  # one transaction each: the short-lock append path
            self.c.log.append(data)
        return {**out, **more}


@pytest.fixture
def story(home: Path, cli: type[CliRunnerNS]) -> dict[str, bytes]:
    cli.run("key", "new", "carol", "--role", "court")
    with Custody.open() as c:
        return Story(c).run()


def _replay(c: Custody) -> MemoryState:
    return replay(c.store.iter_entries(), MemoryState(log_vkey=c.log_key))


def test_the_db_state_is_the_replayed_state(
    story: dict[str, bytes], cli: type[CliRunnerNS]
) -> None:
    with Custody.open() as c:
        mem = _replay(c)
        with c.store.session() as s:
            db = DbState(s)
            assert db.log_key() == c.log_key
            for name in ("asked", "open"):
                h = entry_hash(story[name])
                assert db.request(h) == mem.request(h) is not None
            asked = db.request(entry_hash(story["asked"]))
            assert asked is not None and asked.answers[0][1:] == ("alice", "consent")
            opened = db.request(entry_hash(story["open"]))
            assert opened is not None and opened.answers[0][1:] == ("alice", "refusal")
            grant = db.consent(entry_hash(story["grant"]))
            assert grant is not None and grant.request == entry_hash(story["asked"])
            for name in ("ingest2", "ingest3"):
                h = entry_hash(story[name])
                assert db.emergency(h) == mem.emergency(h) is not None
            e2 = db.emergency(entry_hash(story["ingest2"]))
            e3 = db.emergency(entry_hash(story["ingest3"]))
            assert e2 is not None and (e2.outcome, e2.reviewer) == ("rejected", "carol")
            assert e3 is not None and e3.outcome is None
            # e2 came before the policy (72 h), e3 after it (24 h).
            assert e2.due.endswith(e2.time[13:]) and e3.due.endswith(e3.time[13:])
            for n in (1, 2, 3, 4):
                assert db.item(CASE, _item(n)) == mem.item(CASE, _item(n))
            restricted, disposed = db.item(CASE, _item(2)), db.item(CASE, _item(4))
            assert restricted is not None and restricted.restricted_at is not None
            assert disposed is not None and disposed.disposed_at is not None
            assert db.holds_covering(CASE, _item(1)) == mem.holds_covering(CASE, _item(1))
            assert [h.released_at is None for h in db.holds_covering(CASE, _item(1))] == [
                False,
                True,
            ]
            assert db.hold(entry_hash(story["case_hold"])) == mem.hold(
                entry_hash(story["case_hold"])
            )
            policy = db.policy()
            assert policy == mem.policy() and policy is not None
            assert policy.forbid == frozenset({"face-recognition"}) and policy.review_hours == 24
            compare(s, mem)
        # In worker processes too (each checks the policy entry's signature by the log key).
        assert c.log.verify(c.log_key, jobs=2, chunk=4).size == 3 + len(story)
    assert cli.run("log", "verify").stdout.startswith("OK: the log verifies")


def test_the_log_refuses_what_the_rules_refuse(story: dict[str, bytes], home: Path) -> None:
    with Custody.open() as c:
        s = Story(c)
        with pytest.raises(PolicyError, match=r"the log's policy \(entry \d+\) forbids face-rec"):
            c.log.append(s.analysis(1, "face-recognition"))
        with pytest.raises(PolicyError, match=r"R-1/0001 is under hold .* placed by carol"):
            c.log.append(s.disposal(1))
        with pytest.raises(PolicyError, match="R-1/0002 may not be analysed: its emergency"):
            c.log.append(s.analysis(2, "transcription"))
        with pytest.raises(PolicyError, match="R-1/0004 was disposed of at entry"):
            c.log.append(s.analysis(4, "transcription"))
        late = _ingest(
            s.bob, 5, "consent", consent=entry_hash(story["grant"]), recorded="2000-01-01T00:00:00Z"
        )
        with pytest.raises(PolicyError, match=r"clip 'cam5.mp4' was recorded at 2000-01-01T00"):
            c.log.append(late)
        with pytest.raises(PolicyError, match="'alice' answered request"):
            c.log.append(s.refusal(story["asked"]))


def test_an_altered_oversight_row_fails_log_verify(
    story: dict[str, bytes], home: Path, cli: type[CliRunnerNS]
) -> None:
    con = sqlite3.connect(home / "custody.db")
    for table in NEW_TABLES:
        with pytest.raises(sqlite3.IntegrityError, match=f"{table} is append-only"):
            con.execute(f"DELETE FROM {table}")
    # What INSERT alone allows an insider: a hold released without an entry.
    con.execute(
        "INSERT INTO state_hold_releases (hash, idx) VALUES (?, 5)",
        (entry_hash(story["case_hold"]),),
    )
    con.commit()
    con.close()
    r = cli.fail(1, "log", "verify")
    assert "indexed custody state disagrees with the entries: the record of hold" in r.stderr


def test_an_orphan_disposal_row_fails_log_verify(
    story: dict[str, bytes], home: Path, cli: type[CliRunnerNS]
) -> None:
    con = sqlite3.connect(home / "custody.db")
    con.execute("INSERT INTO state_disposals (case_id, item, idx) VALUES ('X-9', 'ab12', 3)")
    con.commit()
    con.close()
    r = cli.fail(1, "log", "verify")
    assert "disposal of item ab12 names nothing on the log" in r.stderr


def test_write_all_writes_what_compare_reads(story: dict[str, bytes], tmp_path: Path) -> None:
    with Custody.open() as c:
        mem = _replay(c)
    fresh = Store.open(f"sqlite:///{tmp_path / 'fresh.db'}", create=True)
    try:
        with fresh.writer() as s:
            write_all(s, mem)
        with fresh.session() as s:
            compare(s, mem)
            mem.current_policy = None  # a replay that disagrees is named
            with pytest.raises(Exception, match="the policy in force differs"):
                compare(s, mem)
    finally:
        fresh.close()


def _downgrade_to_2(db: Path) -> None:
    """The schema-2 database an earlier release would hold: no schema-3 tables."""
    con = sqlite3.connect(db)
    for table in NEW_TABLES:
        con.execute(f"DROP TABLE {table}")
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    con.commit()
    con.close()


def _schema(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return str(con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0])
    finally:
        con.close()


def test_a_schema_2_database_is_migrated_on_open(home: Path, cli: type[CliRunnerNS]) -> None:
    cli.run("key", "new", "carol", "--role", "court")
    with Custody.open() as c:
        bob = c.signer("bob", _pw)
        c.log.append(_ingest(bob, 1, "warrant"))
    db = home / "custody.db"
    _downgrade_to_2(db)
    assert cli.run("log", "verify").stdout.startswith("OK: the log verifies")
    assert _schema(db) == SCHEMA_VERSION == "3"
    con = sqlite3.connect(db)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert set(NEW_TABLES) <= tables == {"meta", *APPEND_ONLY_TABLES}
        triggers = {
            r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'")
        }
        assert {f"{t}_no_{op}" for t in NEW_TABLES for op in ("update", "delete")} <= triggers
    finally:
        con.close()
    # The migrated home takes the new entry types, and verifies.
    with Custody.open() as c:
        s = Story(c)
        c.log.append(s.policy("licence-plate"))
        c.log.append(s.disposal(1))
        with c.store.session() as sess:
            item = DbState(sess).item(CASE, _item(1))
            assert item is not None and item.disposed_at == 5
    assert cli.run("log", "verify").stdout.startswith("OK: the log verifies: 6 entries")
    assert "nothing to do" in cli.run("db", "migrate").stdout


def test_a_read_only_schema_2_database_is_read_in_place(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never migrated where it cannot be written: its custody state is replayed in memory
    and its look-ups read the schema-2 tables it has."""
    with Custody.open() as c:
        bob, alice = c.signer("bob", _pw), c.signer("alice", _pw)
        append_indexed_one(c.log, _ingest(bob, 1, "warrant"))
        c.log.append(
            _sign(
                "handoff",
                [
                    ("case", CASE),
                    ("item", _item(1)),
                    ("from", "bob"),
                    ("to", "alice"),
                    ("purpose", "return"),
                    ("offer", "0e" * 16),
                ],
                bob,
                alice,
            )
        )
    db = home / "custody.db"
    _downgrade_to_2(db)
    monkeypatch.setattr("custody.infra.store._sqlite_access", lambda _path: "ro")
    with Custody.open() as c:
        assert c.store.read_only and not c.store.legacy
        assert [r.holder for r in c.store.items_in_case(CASE)] == ["alice"]
        with c.log.state() as st:
            item = st.item(CASE, _item(1))
            assert item is not None and item.holder == "alice" and item.disposed_at is None
            assert st.log_key() == c.log_key
        assert c.log.verify(c.log_key).size == 4
    assert _schema(db) == "2"


def test_state_tables_rebuilt_by_replay_hold_the_oversight_records(
    story: dict[str, bytes], home: Path, cli: type[CliRunnerNS]
) -> None:
    """A database whose state tables are rebuilt (a schema-1 one from before them) gets
    the schema-3 records from one replay that knows the log key (the policy entry)."""
    con = sqlite3.connect(home / "custody.db")
    for (table,) in con.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'state_%'"
    ).fetchall():
        con.execute(f"DROP TABLE {table}")
    con.execute("DELETE FROM meta WHERE key = 'state'")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    con.commit()
    con.close()
    with Custody.open() as c:
        s = Story(c)
        with pytest.raises(PolicyError, match="forbids face-recognition"):
            c.log.append(s.analysis(1, "face-recognition"))
        c.log.append(s.analysis(1, "object-detection"))
        with c.store.session() as sess:
            assert Store.has_state(sess)
            compare(sess, _replay(c))
    assert cli.run("log", "verify").stdout.startswith("OK: the log verifies")


def _pg_init(cli: type[CliRunnerNS], url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTODY_DB", url)
    cli.run("init", "--origin", "pg.example/custody")
    cli.run("key", "new", "alice", "--role", "owner")
    cli.run("key", "new", "bob", "--role", "agency")
    cli.run("key", "new", "carol", "--role", "court")


@pytest.mark.postgres
def test_schema_3_on_postgres(
    cli: type[CliRunnerNS], pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The story on PostgreSQL: the state agrees with the replay, `log verify` passes,
    and the new tables are append-only."""
    import psycopg

    _pg_init(cli, pg_url, monkeypatch)
    with Custody.open() as c:
        Story(c).run()
        with c.store.session() as s:
            compare(s, _replay(c))
    assert cli.run("log", "verify").stdout.startswith("OK: the log verifies: 19 entries")
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as con:
        for table in NEW_TABLES:
            for stmt in (f"DELETE FROM {table}", f"TRUNCATE {table}"):
                with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                    con.execute(stmt)


@pytest.mark.postgres
def test_a_schema_2_database_on_postgres_is_migrated_by_the_operator(
    cli: type[CliRunnerNS], pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema 2 -> 3 on PostgreSQL, in one transaction: the new tables, their triggers,
    and the investigators' INSERT on them (and nothing more)."""
    import psycopg

    _pg_init(cli, pg_url, monkeypatch)
    cli.run("db", "grant", "ivan", "--as", "investigator")
    with Custody.open() as c:
        c.log.append(_ingest(c.signer("bob", _pw), 1, "warrant"))
    plain = pg_url.replace("+psycopg", "")
    with psycopg.connect(plain) as con, con.transaction():
        for table in NEW_TABLES:
            con.execute(f"DROP TABLE {table}")
        con.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    assert "from schema 2 to 3" in cli.run("db", "migrate").stdout
    with Custody.open() as c:
        s = Story(c)
        c.log.append(s.policy("face-recognition"))
        c.log.append(s.disposal(1))
    assert cli.run("log", "verify").stdout.startswith("OK: the log verifies: 6 entries")
    with psycopg.connect(plain, autocommit=True) as con:
        for table in NEW_TABLES:
            may = con.execute(
                "SELECT has_table_privilege('custody_investigator', %s, 'INSERT'), "
                "has_table_privilege('custody_investigator', %s, 'DELETE')",
                (table, table),
            ).fetchone()
            assert may == (True, False), table
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                con.execute(f"TRUNCATE {table}")  # a statement trigger: empty tables too
