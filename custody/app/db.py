"""The database itself: its schema version and, on PostgreSQL, who may do what.

`grant` gives a PostgreSQL role one of custody's roles (docs/database.md):
investigators append and read, auditors only read, the operator owns the schema
(migrations, triggers, checkpoints).  `migrate` brings a database made by an
earlier release to this schema version; `roles` lists who has which role.  The
SQL is `custody.infra.store`'s; this module decides what to run and checks the
request first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from custody.app.home import Home
from custody.errors import StorageError, UsageError
from custody.infra.log import Log
from custody.infra.store import ROLES, SCHEMA_VERSION, Store, check_role_name


@dataclass(frozen=True)
class Granted:
    """What `grant` did."""

    user: str
    role: str
    created: bool


@dataclass(frozen=True)
class Migrated:
    """What `migrate` did: the version found, and whether it changed anything."""

    found: str
    version: str
    migrated: bool


def _postgres_url(home: str | Path | None, db: str | None) -> str:
    url = Home.locate(home, db).db_url
    if url.startswith("sqlite"):
        raise UsageError(
            "database roles are a PostgreSQL feature: a SQLite log is protected by its "
            "file's permissions",
            hint="limit who may write the home's custody.db (chmod, chown), or use "
            "--db postgresql+psycopg://... for a shared log",
        )
    return url


def grant(
    user: str,
    role: str,
    *,
    password: str | None = None,
    home: str | Path | None = None,
    db: str | None = None,
) -> Granted:
    """Give PostgreSQL role `user` the custody `role` (investigator, operator, auditor),
    replacing any custody role it had; create `user` (LOGIN) if missing.

    Run by the log operator (the owner of the schema, or a role that may create roles).
    Raises UsageError for a SQLite database, an unknown role or a name custody does not
    accept; StorageError if the server refuses (the database role may not do this).
    """
    if role not in ROLES:
        raise UsageError(
            f"--as must be one of {', '.join(ROLES)}, not {role!r}",
            hint="investigators append and read, auditors read, the operator owns the schema",
        )
    check_role_name(user)
    url = _postgres_url(home, db)
    store = Store.open(url)
    try:
        created = store.grant_role(user, role, password)
    finally:
        store.close()
    return Granted(user, role, created)


def roles(*, home: str | Path | None = None, db: str | None = None) -> list[tuple[str, str]]:
    """(PostgreSQL role, custody role) of every member of custody's group roles."""
    store = Store.open(_postgres_url(home, db))
    try:
        return store.role_members()
    finally:
        store.close()


def migrate(*, home: str | Path | None = None, db: str | None = None) -> Migrated:
    """Bring the database to this release's schema version, in one transaction, and
    fill its custody state where a database from before the state tables lacks it.

    Raises StorageError if this connection does not own the schema ("the log operator
    must run 'custody db migrate'") or the database is read-only.
    """
    store = Store.open(Home.locate(home, db).db_url, upgrade=False)
    try:
        found = store.schema_version() or "?"
        if found == SCHEMA_VERSION and not store.owns_schema():
            raise StorageError(
                f"the database role does not own the schema of {store.where}: only the log "
                "operator may run 'custody db migrate'",
                hint="ask the log operator (custody db grant USER --as operator)",
            )
        migrated = store.migrate()
        origin = store.meta("origin")
        if origin is not None:
            # Opening a write transaction fills the state tables by one replay where
            # they are empty (custody.infra.log.LogWriter); otherwise it changes nothing.
            with Log(store, origin).transaction():
                pass
    finally:
        store.close()
    return Migrated(found, SCHEMA_VERSION, migrated)
