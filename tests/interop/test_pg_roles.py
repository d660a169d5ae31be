"""Least privilege on PostgreSQL (docs/database.md): `custody db grant` gives real
server roles exactly what their custody role needs, and the server itself refuses
the rest.  The schema is made by the `postgres` superuser (the operator); `alice`
(investigator) and `audrey` (auditor) then connect as themselves (trust auth).
"""

from __future__ import annotations

import pytest
from conftest import CliRunnerNS, invoke

from custody.infra.store import ALL_TABLES, APPEND_ONLY_TABLES

pytestmark = pytest.mark.postgres

ORIGIN = "pg.example/custody"


def _as(url: str, user: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}@{rest.split('@', 1)[1]}"


def _libpq(url: str) -> str:
    return url.replace("+psycopg", "")


@pytest.fixture
def operated(cli: type[CliRunnerNS], pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A log on `pg_url` made by the operator, with alice (investigator) and audrey
    (auditor) granted; CUSTODY_DB is the operator's URL."""
    monkeypatch.setenv("CUSTODY_DB", pg_url)
    cli.run("init", "--origin", ORIGIN)
    cli.run("key", "new", "bob", "--role", "agency")
    cli.run("log", "checkpoint")
    out = cli.run("db", "grant", "alice", "--as", "investigator").stdout
    assert "role 'alice': investigator" in out
    cli.run("db", "grant", "audrey", "--as", "auditor")
    return pg_url


def _refusals(url: str, user: str, statements: list[str]) -> list[str]:
    """The statements the server did NOT refuse as `user` (each in its own transaction)."""
    import psycopg

    allowed = []
    with psycopg.connect(_libpq(_as(url, user)), autocommit=True) as con:
        for stmt in statements:
            try:
                con.execute(stmt)
            except psycopg.errors.InsufficientPrivilege:
                continue
            allowed.append(stmt)
    return allowed


def test_the_server_refuses_an_investigator_everything_but_select_and_insert(
    operated: str,
) -> None:
    forbidden = [f"UPDATE {t} SET {_col(t)} = {_col(t)}" for t in ALL_TABLES]
    forbidden += [f"DELETE FROM {t}" for t in ALL_TABLES]
    forbidden += [f"TRUNCATE {t}" for t in ALL_TABLES]
    forbidden += [f"ALTER TABLE {t} DISABLE TRIGGER ALL" for t in APPEND_ONLY_TABLES]
    forbidden += [f"DROP TRIGGER {t}_append_only ON {t}" for t in APPEND_ONLY_TABLES]
    forbidden += [f"DROP TABLE {t}" for t in ALL_TABLES]
    forbidden += [f"ALTER TABLE {t} ADD COLUMN x integer" for t in ALL_TABLES]
    forbidden += [
        "CREATE TABLE sneaky (x integer)",
        "CREATE FUNCTION sneaky() RETURNS integer AS 'SELECT 1' LANGUAGE sql",
        "DROP FUNCTION custody_append_only()",
        "CREATE OR REPLACE FUNCTION custody_append_only() RETURNS trigger AS "
        "$$ BEGIN RETURN NEW; END; $$ LANGUAGE plpgsql",
        "INSERT INTO meta (key, value) VALUES ('schema', '9')",
        "INSERT INTO checkpoints (size, root, note) VALUES (99, 'x', 'x')",
        "ALTER ROLE alice SUPERUSER",
        "CREATE ROLE mallory",
        "GRANT custody_operator TO alice",
    ]
    assert _refusals(operated, "alice", forbidden) == []
    # Reads are allowed.
    assert _refusals(operated, "alice", ["SELECT count(*) FROM entries"]) != []


def _col(table: str) -> str:
    return _first_column[table]


_first_column = {
    "meta": "value",
    "tree_nodes": "hash",
    "checkpoints": "note",
    "entries": "etype",
    "parties": "role",
    "cases": "title",
    "items": "name",
    "state_items": "holder",
    "state_holders": "holder",
    "state_consents": "purpose",
    "state_consent_revocations": "idx",
    "state_consent_items": "item",
    "state_offers": "idx",
    "state_keys": "vkey",
    "state_key_ends": "reason",
    "state_consent_requests": "request",
    "state_requests": "by_party",
    "state_request_answers": "outcome",
    "state_emergencies": "due",
    "state_reviews": "outcome",
    "state_holds": "by_party",
    "state_hold_releases": "idx",
    "state_disposals": "idx",
    "state_policies": "forbid",
}


def test_an_investigator_appends_through_custody(
    cli: type[CliRunnerNS], operated: str, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CUSTODY_DB", _as(operated, "alice"))
    cli.run("key", "new", "carol", "--role", "lab")
    cli.run("key", "rotate", "carol")
    cli.run("key", "new", "dave", "--role", "lab")
    cli.run("key", "revoke", "dave", "--reason", "lost laptop")
    cli.run("case", "new", "C-1")
    note = tmp_path / "note.txt"
    note.write_text("a statement\n")
    cli.run("ingest", str(note), "--case", "C-1", "--by", "bob", "--legal-basis", "warrant")
    listed = cli.run("key", "list").stdout
    assert "dave" in listed and "revoked" in listed
    assert cli.run("log", "verify").stdout.startswith("OK: the log verifies")
    # Only the operator signs checkpoints: the refusal names what and whom to ask.
    r = cli.fail(3, "log", "checkpoint")
    assert "the database role may not do this on" in r.stderr
    assert "checkpoints" in r.stderr and "custody db grant" in r.stderr
    # Nor may an investigator migrate or grant.
    r = cli.fail(3, "db", "migrate")
    assert "only the log operator may run 'custody db migrate'" in r.stderr
    r = invoke("db", "grant", "mallory", "--as", "operator")
    assert r.code == 3 and "may not do this" in r.stderr


def test_an_auditor_only_reads(cli: type[CliRunnerNS], operated: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    audrey = _as(operated, "audrey")
    inserts = [
        "INSERT INTO cases (case_id, title, created) VALUES ('X', '', 'now')",
        "INSERT INTO entries (idx, data, etype, ehash) VALUES (99, 'x', 'x', 'x')",
        "INSERT INTO state_holders (case_id, item, seq, holder) VALUES ('X', 'i', 1, 'h')",
    ]
    assert _refusals(operated, "audrey", inserts) == []
    monkeypatch.setenv("CUSTODY_DB", audrey)
    assert cli.run("log", "verify").stdout.startswith("OK: the log verifies: 1 entries")
    assert "bob" in cli.run("key", "list").stdout
    r = cli.fail(3, "key", "new", "eve", "--role", "lab")
    assert "may not do this" in r.stderr


def test_a_new_role_replaces_the_old_one(cli: type[CliRunnerNS], operated: str) -> None:
    ins = ["INSERT INTO cases (case_id, title, created) VALUES ('P-1', '', 'now')"]
    assert _refusals(operated, "alice", list(ins)) == ins  # an investigator inserts
    cli.run("db", "grant", "alice", "--as", "auditor")
    ins2 = ["INSERT INTO cases (case_id, title, created) VALUES ('P-2', '', 'now')"]
    assert _refusals(operated, "alice", ins2) == []
    roles = cli.run("db", "roles").stdout
    assert "alice  auditor" in roles and "alice  investigator" not in roles
    cli.run("db", "grant", "alice", "--as", "investigator")  # back again, idempotent
    cli.run("db", "grant", "alice", "--as", "investigator")
    assert "alice  investigator" in cli.run("db", "roles").stdout


def test_an_operator_may_migrate_and_sign(
    cli: type[CliRunnerNS], operated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.run("db", "grant", "olga", "--as", "operator")
    monkeypatch.setenv("CUSTODY_DB", _as(operated, "olga"))
    assert "nothing to do" in cli.run("db", "migrate").stdout
    cli.run("key", "new", "frank", "--role", "lab")
    cli.run("log", "checkpoint")
    assert cli.run("log", "verify").stdout.startswith("OK: the log verifies: 2 entries")


def test_hostile_and_reserved_role_names_are_refused(cli: type[CliRunnerNS], operated: str) -> None:
    import psycopg

    for name in (
        'alice"; DROP TABLE entries; --',
        "x' OR '1'='1",
        "pg_signal_backend",
        "custody_operator",
        "public",
        "",
        "a" * 64,
    ):
        r = cli.fail(2, "db", "grant", name, "--as", "investigator")
        assert "role name" in r.stderr
    with psycopg.connect(_libpq(operated), autocommit=True) as con:
        assert con.execute("SELECT count(*) FROM entries").fetchone() == (1,)
    # A superuser cannot be given a lesser role (nothing can be taken from it).
    r = cli.fail(2, "db", "grant", "postgres", "--as", "auditor")
    assert "superuser" in r.stderr


def test_a_password_is_set_from_a_file(cli: type[CliRunnerNS], operated: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    pw = tmp_path / "pw"
    pw.write_text("it's a 'quoted' secret\n")
    cli.run("db", "grant", "paula", "--as", "auditor", "--password-file", str(pw))
    with psycopg.connect(_libpq(operated), autocommit=True) as con:
        row = con.execute(
            "SELECT rolpassword IS NOT NULL, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb "
            "FROM pg_authid WHERE rolname = 'paula'"
        ).fetchone()
    assert row == (True, True, False, False, False)


def test_roles_are_a_postgresql_feature(cli: type[CliRunnerNS], home) -> None:  # type: ignore[no-untyped-def]
    r = cli.fail(2, "db", "grant", "alice", "--as", "investigator")
    assert "PostgreSQL feature" in r.stderr and "file's permissions" in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2


def test_a_schema_1_database_on_postgres(
    cli: type[CliRunnerNS], operated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the operator migrates; the investigator is told so, then works on schema 3
    with the privileges it had (the new tables included)."""
    from schema1 import downgrade

    monkeypatch.setenv("CUSTODY_DB", operated)
    cli.run("key", "new", "carol", "--role", "lab")
    cli.run("key", "revoke", "carol", "--reason", "left the lab")
    downgrade(operated)
    monkeypatch.setenv("CUSTODY_DB", _as(operated, "alice"))
    for args in (("key", "list"), ("db", "migrate")):
        r = cli.fail(3, *args)
        assert "is at schema version 1; the log operator must run 'custody db migrate'" in r.stderr
    monkeypatch.setenv("CUSTODY_DB", operated)
    assert "from schema 1 to 3" in cli.run("db", "migrate").stdout
    monkeypatch.setenv("CUSTODY_DB", _as(operated, "alice"))
    assert "revoked" in cli.run("key", "list").stdout
    cli.run("key", "new", "dora", "--role", "lab")
    cli.run("key", "rotate", "dora")  # a row in state_key_ends, new since schema 1
    assert cli.run("log", "verify").stdout.startswith("OK: the log verifies: 5 entries")
    assert _refusals(operated, "alice", ["DELETE FROM state_key_ends"]) == []


def test_a_name_that_needs_quoting_is_quoted(cli: type[CliRunnerNS], operated: str) -> None:
    cli.run("db", "grant", "J.Doe-2", "--as", "auditor")  # mixed case, '.', '-': quoted
    assert _refusals(operated, "J.Doe-2", ["SELECT count(*) FROM entries"]) != []
    assert _refusals(operated, "J.Doe-2", ["DELETE FROM cases"]) == []
    assert "J.Doe-2  auditor" in cli.run("db", "roles").stdout
