"""The database: the only module that knows SQL (sqlmodel over SQLAlchemy).

SQLite by default (a file in the custody home, WAL, synchronous=FULL);
PostgreSQL through the same code for agencies with many users.

What the log needs from the database:

* `entries` holds each entry's bytes exactly as signed; `tree_nodes` holds every
  perfect subtree hash of the RFC 6962 tree at (level, index), so any proof needs
  O(log n) reads; `checkpoints` holds signed checkpoints.  These three tables are
  append-only in the database itself: triggers refuse UPDATE and DELETE.
* An append is one write transaction that takes the log's write lock first
  (SQLite `BEGIN IMMEDIATE`, PostgreSQL a transaction-scoped advisory lock), so
  two processes appending at once serialise: no fork, no gap.  The primary key on
  `entries.idx` is a second guard.

The `state_*` tables are the custody state the rules read on every append
(holder per item, consent scopes, settled offers, party key timelines), updated
in the append's transaction (custody.infra.state); `custody log verify` replays
the entries and fails if they disagree.  A database made before they existed
gets them on open, and the log fills them by one replay before its next append.

The other tables (parties, cases, items) are indexes derived from the log for
fast look-ups; `custody log verify` never trusts them.

Faults (docs/errors.md):

* A writer waits at most `CUSTODY_LOCK_TIMEOUT` seconds (default 10) for the
  write lock, says on stderr after a second that it is waiting, then raises
  LockTimeoutError.
* A database that cannot be written (a read-only mount, an immutable file, a
  PostgreSQL standby or read-only transaction) is opened read-only: every query
  that only reads works, nothing is ever written (no schema change either), and
  a writer fails at once saying the database is read-only.  SQLite in WAL mode
  needs its `-shm` and `-wal` files: where the folder cannot be written and no
  write-ahead log is pending, the file is opened `immutable` (read as it is, no
  locks), which is right for an archived copy that nothing else writes.
* Every database error becomes a StorageError naming its real cause (a full
  disk, an I/O error, a read-only database, the lock) and the database, from the
  SQLite result code or the PostgreSQL SQLSTATE.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    LargeBinary,
    UniqueConstraint,
    bindparam,
    desc,
    event,
    func,
    inspect,
    or_,
    text,
    update,
)
from sqlalchemy import select as core_select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql.elements import TextClause
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

__all__ = ["ENV_LOCK_TIMEOUT", "STATE_MARKER", "STATE_TABLES", "Session", "Store", "lock_timeout"]

from custody.errors import LockTimeoutError, StorageError, UsageError
from custody.infra.files import NoSpaceError

SCHEMA_VERSION = "1"
APPEND_ONLY_TABLES = ("entries", "tree_nodes", "checkpoints")
_PG_LOCK_ID = 0x637573746F6479  # "custody": the log's advisory write lock

ENV_LOCK_TIMEOUT = "CUSTODY_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 10.0
MAX_LOCK_TIMEOUT = 86400.0
#: How long a writer waits for the lock before saying on stderr that it is waiting.
NOTICE_AFTER = 1.0
#: Free space below which an I/O error is reported as a full disk (SQLite says only
#: "disk I/O error" when, for one, its shared-memory file cannot grow).
_NEARLY_FULL = 1 << 20


class Meta(SQLModel, table=True):
    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str


class EntryRow(SQLModel, table=True):
    __tablename__ = "entries"
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    etype: str = Field(index=True)
    # Look-up columns copied from the signed text; never trusted by verification.
    item: str | None = Field(default=None, index=True)
    case_id: str | None = Field(default=None, index=True)
    ehash: str = Field(index=True)  # entry hash (hex leaf hash): is this entry here already?


class NodeRow(SQLModel, table=True):
    __tablename__ = "tree_nodes"
    level: int = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CheckpointRow(SQLModel, table=True):
    __tablename__ = "checkpoints"
    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class PartyRow(SQLModel, table=True):
    """A registered party key (derived from `key` entries)."""

    __tablename__ = "parties"
    name: str = Field(primary_key=True)
    role: str
    org: str = ""
    vkey: str
    status: str = "active"  # active | revoked | rotated
    entry_idx: int = Field(sa_column=Column(BigInteger, nullable=False))


class CaseRow(SQLModel, table=True):
    __tablename__ = "cases"
    case_id: str = Field(primary_key=True)
    title: str = ""
    created: str


class ItemRow(SQLModel, table=True):
    """An exhibit: one file ingested into one case (derived from its `ingest` entry)."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("case_id", "blake3", name="items_case_blake3"),
        UniqueConstraint("case_id", "number", name="items_case_number"),
    )
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True)
    number: int
    exhibit: str = Field(unique=True)
    blake3: str = Field(index=True)
    sha256: str | None = None
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    name: str
    kind: str  # media | attachment
    metadata_digest: str | None = None
    content_digest: str | None = None
    ingest_idx: int = Field(sa_column=Column(BigInteger, nullable=False))
    holder: str
    ingested_by: str
    ingested_at: str


class StateItemRow(SQLModel, table=True):
    """Custody state: an item of a case and its current holder (rules' view, see
    custody.model.state)."""

    __tablename__ = "state_items"
    case_id: str = Field(primary_key=True)
    item: str = Field(primary_key=True)
    exhibit: str
    holder: str
    legal_basis: str | None = None
    ref: str | None = None
    since: int = Field(sa_column=Column(BigInteger, nullable=False))
    parent: str | None = None


class StateConsentRow(SQLModel, table=True):
    """Custody state: a consent grant, its scope and its revocation."""

    __tablename__ = "state_consents"
    hash: str = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, nullable=False))
    owner: str
    case_id: str = Field(index=True)
    items: str = ""  # the items of the scope, one per line; empty: the whole case
    purpose: str
    until: str | None = None
    onward: str
    revoked_at: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class StateConsentItemRow(SQLModel, table=True):
    """Custody state: which item a consent with an item list covers (the look-up index)."""

    __tablename__ = "state_consent_items"
    __table_args__ = (Index("state_consent_items_case_item", "case_id", "item"),)
    hash: str = Field(primary_key=True)
    item: str = Field(primary_key=True)
    case_id: str


class StateOfferRow(SQLModel, table=True):
    """Custody state: an offer accepted or refused (never usable again)."""

    __tablename__ = "state_offers"
    offer: str = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, nullable=False))


class StateKeyRow(SQLModel, table=True):
    """Custody state: one key of one party, valid for entries [registered_at, ended_at)."""

    __tablename__ = "state_keys"
    name: str = Field(primary_key=True)
    registered_at: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    role: str
    org: str = ""
    vkey: str
    ended_at: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    end_reason: str | None = None


STATE_TABLES: tuple[type[SQLModel], ...] = (
    StateItemRow,
    StateConsentRow,
    StateConsentItemRow,
    StateOfferRow,
    StateKeyRow,
)
#: The `meta` key present once the custody state tables hold the state of the whole log.
STATE_MARKER = "state"

_LOG_SIZE = core_select(func.max(EntryRow.__table__.c.idx))  # type: ignore[attr-defined]
_HAS_STATE = core_select(Meta.__table__.c.value).where(  # type: ignore[attr-defined]
    Meta.__table__.c.key == STATE_MARKER  # type: ignore[attr-defined]
)


@functools.lru_cache(maxsize=256)
def _nodes_query(count: int) -> TextClause:
    """SELECT of `count` tree nodes by primary key, as an OR of equalities.

    SQLite answers it with one index search per node, where a row-value IN
    (level, idx) would scan the whole table; the text is built once per count
    (an append reads the log's frontier: as many nodes as bits set in its size).
    """
    where = " OR ".join(f"(level = :l{n} AND idx = :i{n})" for n in range(count))
    return text(f"SELECT level, idx, hash FROM tree_nodes WHERE {where}")


_items_t = StateItemRow.__table__  # type: ignore[attr-defined]
_consents_t = StateConsentRow.__table__  # type: ignore[attr-defined]
_consent_items_t = StateConsentItemRow.__table__  # type: ignore[attr-defined]
_ITEM = core_select(_items_t).where(
    _items_t.c.case_id == bindparam("case"), _items_t.c.item == bindparam("item")
)
_COVERING = core_select(_consents_t).where(
    _consents_t.c.case_id == bindparam("case"),
    or_(
        _consents_t.c["items"] == "",
        _consents_t.c.hash.in_(
            core_select(_consent_items_t.c.hash).where(
                _consent_items_t.c.case_id == bindparam("case"),
                _consent_items_t.c.item == bindparam("item"),
            )
        ),
    ),
)
_CONSENT = core_select(_consents_t).where(_consents_t.c.hash == bindparam("hash"))
_OFFER = core_select(StateOfferRow.__table__.c.idx).where(  # type: ignore[attr-defined]
    StateOfferRow.__table__.c.offer == bindparam("offer")  # type: ignore[attr-defined]
)
_keys_t = StateKeyRow.__table__  # type: ignore[attr-defined]
_KEYS = (
    core_select(_keys_t)
    .where(_keys_t.c.name == bindparam("name"))
    .order_by(_keys_t.c.registered_at)
)


_SQLITE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS {table}_no_{op} BEFORE {OP} ON {table}
BEGIN SELECT RAISE(ABORT, 'custody: {table} is append-only'); END
"""

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION custody_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION USING MESSAGE = 'custody: ' || TG_TABLE_NAME || ' is append-only'; END;
$$ LANGUAGE plpgsql
"""

_PG_TRIGGERS = """
DROP TRIGGER IF EXISTS {table}_append_only ON {table};
CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION custody_append_only();
DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only()
"""


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _describe(url: str) -> str:
    """The URL without a password, for error messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://…@{rest.split('@', 1)[1]}"
    return url


def lock_timeout() -> float:
    """How many seconds a writer waits for the log's write lock: `CUSTODY_LOCK_TIMEOUT`,
    or 10 when it is unset or empty.

    Raises UsageError if the variable is not a number of seconds from 0 to 86400.
    """
    raw = os.environ.get(ENV_LOCK_TIMEOUT, "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_LOCK_TIMEOUT:  # NaN fails this too
        raise UsageError(
            f"{ENV_LOCK_TIMEOUT} must be a number of seconds from 0 to "
            f"{MAX_LOCK_TIMEOUT:g}, not {raw!r}"
        )
    return value


def _seconds(t: float) -> str:
    return f"{t:g} s"


def lock_timeout_error(timeout: float) -> LockTimeoutError:
    """The error of a writer that gave up waiting for the log's write lock."""
    return LockTimeoutError(
        f"the log's write lock is held by another process: gave up after {_seconds(timeout)}",
        hint=f"let the other custody process finish and run the command again, or set "
        f"{ENV_LOCK_TIMEOUT} to wait longer",
    )


def _waiting_notice(timeout: float) -> None:
    """Say on stderr that a writer is waiting for the lock (once per wait)."""
    sys.stderr.write(
        "custody: waiting for the log's write lock (held by another custody process; "
        f"up to {_seconds(timeout)}, {ENV_LOCK_TIMEOUT})\n"
    )
    sys.stderr.flush()


def _sqlite_access(path: Path) -> str:
    """How an existing SQLite file can be opened: "rw", "ro" or "immutable".

    Read-only ("ro") where the file or its folder cannot be written.  SQLite in WAL
    mode then still needs the `-shm` file (and `-wal`, if changes are pending in it):
    it can create them where the folder is writable, and read them where they exist.
    Where the folder is read-only and no write-ahead log is pending, "immutable"
    reads the file as it is, without locks or side files.

    Raises StorageError if the folder is read-only and the write-ahead log holds
    changes that SQLite cannot read without its shared-memory file.
    """
    folder = path.parent
    folder_w = os.access(folder, os.W_OK)
    if os.access(path, os.W_OK) and folder_w:
        return "rw"
    if folder_w:
        return "ro"
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    try:
        pending = wal.stat().st_size > 0
    except OSError:
        pending = False
    if not pending:
        return "immutable"
    if shm.exists():
        return "ro"
    raise StorageError(
        f"the custody database {path} is on a read-only disk with changes still in "
        f"{wal.name} and no {shm.name}: SQLite cannot read them there",
        hint=f"copy {path.name} and {wal.name} to a writable folder and read that copy "
        "(--db sqlite:///COPY)",
    )


def _disk_nearly_full(path: Path) -> bool:
    """Whether the file system holding `path` has (almost) no space left."""
    folder = path if path.is_dir() else path.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    free = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return free * st.f_frsize < _NEARLY_FULL


class Store:
    """A custody database.  `Store.open(url)` connects and creates the schema if needed.

    `read_only` is true where the database cannot be written (see the module doc);
    `where` names it in messages (the file, or the URL without password).
    """

    def __init__(
        self, engine: Engine, url: str, *, read_only: bool = False, path: Path | None = None
    ) -> None:
        self.engine = engine
        self.url = url
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.read_only = read_only
        self.path = path
        self.where = str(path) if path is not None else _describe(url)

    @classmethod
    def open(cls, url: str, *, create: bool = False) -> Store:
        """Connect to `url`; with `create`, make the schema (idempotent).

        A database that cannot be written is opened read-only (`read_only`); it is
        never written, not even to add tables.  Raises StorageError (one line, the
        URL without password, the real cause) if the database cannot be opened, and
        UsageError if CUSTODY_LOCK_TIMEOUT is not a number of seconds.
        """
        path: Path | None = None
        if url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///") :])
            if not create and not path.exists():
                raise StorageError(
                    f"no custody database at {path}",
                    hint="run 'custody init --origin NAME' first, or pass --home / set "
                    "CUSTODY_HOME to an existing home",
                )
        timeout = lock_timeout()
        store: Store | None = None
        try:
            if path is not None:
                access = "rw" if create else _sqlite_access(path)
                engine = _sqlite_engine(url, path, access, timeout)
                store = cls(engine, url, read_only=access != "rw", path=path)
            elif url.startswith("sqlite"):
                engine = create_engine(url, connect_args={"timeout": timeout})
                _sqlite_setup(engine, read_only=False)
                store = cls(engine, url)
            else:
                engine = create_engine(url, pool_pre_ping=True)
                store = cls(engine, url)
                with engine.connect() as conn:
                    # A hot standby, or a database or role set to read-only transactions.
                    ro = conn.exec_driver_sql("SHOW transaction_read_only").scalar()
                store.read_only = ro == "on"
            if create:
                store._create_schema()
            else:
                store._check_schema()
            return store
        except StorageError:
            raise
        except (SQLAlchemyError, sqlite3.Error) as exc:
            mapped = (store or cls._bare(url, path))._mapped(exc)
            if mapped is not None:
                raise mapped from exc
            raise StorageError(
                f"cannot open the custody database {_describe(url)}: {_first_line(exc)}",
                hint="check --db / CUSTODY_DB, or run 'custody init' first",
            ) from exc
        except (OSError, ImportError) as exc:
            raise StorageError(
                f"cannot open the custody database {_describe(url)}: {_first_line(exc)}",
                hint="check --db / CUSTODY_DB, or run 'custody init' first",
            ) from exc

    @classmethod
    def _bare(cls, url: str, path: Path | None) -> Store:
        """A store object without a usable engine, to name errors met while opening."""
        store = cls.__new__(cls)
        store.url, store.path, store.read_only = url, path, False
        store.is_sqlite = url.startswith("sqlite")
        store.where = str(path) if path is not None else _describe(url)
        return store

    def _create_schema(self) -> None:
        with self.engine.begin() as conn:
            SQLModel.metadata.create_all(conn)
            if self.is_sqlite:
                for table in APPEND_ONLY_TABLES:
                    for op in ("update", "delete"):
                        conn.exec_driver_sql(
                            _SQLITE_TRIGGER.format(table=table, op=op, OP=op.upper())
                        )
            else:
                conn.exec_driver_sql(_PG_FUNCTION)
                for table in APPEND_ONLY_TABLES:
                    for stmt in _PG_TRIGGERS.format(table=table).split(";"):
                        conn.exec_driver_sql(stmt)
        with self.session() as s:
            if s.get(Meta, "schema") is None:
                s.add(Meta(key="schema", value=SCHEMA_VERSION))
                if Store.log_size(s) == 0:
                    # A new log: the (empty) state tables hold its whole state.
                    s.add(Meta(key=STATE_MARKER, value="1"))
                s.commit()

    def _check_schema(self) -> None:
        with self.session() as s:
            row = s.get(Meta, "schema")
        if row is None:
            raise StorageError(
                f"{_describe(self.url)} is not a custody database",
                hint="run 'custody init' to create one",
            )
        if row.value != SCHEMA_VERSION:
            raise StorageError(
                f"database schema version {row.value} is not supported (this custody "
                f"reads version {SCHEMA_VERSION})"
            )
        if self.read_only:
            # Never written: without the state tables, the log replays the state in
            # memory where it needs it (custody.infra.log.Log.state).
            return
        # The custody state tables came after schema 1's first release: a database
        # made before them gets them here (idempotent), and the log fills them by one
        # replay before its next append (see custody.infra.log).
        tables = [t.__table__ for t in STATE_TABLES]  # type: ignore[attr-defined]
        with self.session() as s:
            names = set(inspect(s.connection()).get_table_names())
        if not all(t.name in names for t in tables):
            with self.writer() as s:
                SQLModel.metadata.create_all(s.connection(), tables=tables)

    def close(self) -> None:
        self.engine.dispose()

    # -- errors -----------------------------------------------------------------

    def require_writable(self) -> None:
        """Raise the read-only error now if the database cannot be written.

        For use cases that write files (a key file, an evidence copy) before their
        entry: they call this first, so that a read-only home fails saying so before
        anything else is attempted.  Raises StorageError (see `read_only_error`).
        """
        if self.read_only:
            raise self.read_only_error()

    def read_only_error(self) -> StorageError:
        """The error of a write to a database opened read-only."""
        what = (
            f"the custody database {self.where} is read-only (a read-only disk or folder, "
            "or a file that may not be changed)"
            if self.is_sqlite
            else f"the custody database {self.where} is read-only (the server or the "
            "transaction is read-only)"
        )
        return StorageError(
            f"{what}: nothing can be recorded in it",
            hint="commands that only read (log verify, show, history, verify, export) work on "
            "it; record events in a writable home",
        )

    def _mapped(self, exc: BaseException, *, timeout: float | None = None) -> StorageError | None:
        """The StorageError that names the real cause of a database error, or None where
        the error is not one of the faults below (the caller keeps its own message).

        SQLite result codes: SQLITE_FULL, SQLITE_IOERR (a full disk where the file
        system has no space left), SQLITE_READONLY, SQLITE_CANTOPEN in a read-only
        folder, SQLITE_BUSY and SQLITE_LOCKED (the lock), SQLITE_CORRUPT and
        SQLITE_NOTADB.  PostgreSQL SQLSTATEs: 53100 disk_full, 25006
        read_only_sql_transaction, 55P03 lock_not_available and 57014 query_canceled
        (lock_timeout), 42501 insufficient_privilege, and class 08 (the connection).
        """
        orig = getattr(exc, "orig", None) or exc
        detail = _first_line(exc)
        where = self.where
        if isinstance(orig, sqlite3.Error):
            code = int(getattr(orig, "sqlite_errorcode", -1) or -1) & 0xFF
            name = str(getattr(orig, "sqlite_errorname", "") or "")
            if code == 13 or (
                code == 10 and self.path is not None and _disk_nearly_full(self.path)
            ):
                return self._full()
            if code == 10:
                return StorageError(
                    f"disk I/O error on the custody database {where} ({name or detail})",
                    hint="check the disk and its file system (dmesg); once it is fixed, "
                    "'custody log verify' checks the log",
                )
            if code == 8 or (code == 14 and self.path is not None and _unwritable(self.path)):
                return self.read_only_error()
            if code in (5, 6):
                return lock_timeout_error(lock_timeout() if timeout is None else timeout)
            if code in (11, 26):
                return StorageError(
                    f"the custody database {where} is damaged or not a database ({detail})",
                    hint="restore it from a backup; 'custody log verify' on a copy says what "
                    "is wrong",
                )
            return None
        state = str(getattr(orig, "sqlstate", "") or "")
        if state == "53100":
            return self._full()
        if state == "25006":
            return self.read_only_error()
        if state in ("55P03", "57014"):
            return lock_timeout_error(lock_timeout() if timeout is None else timeout)
        if state == "42501":
            return StorageError(
                f"the database role may not do this on {where}: {detail}",
                hint="ask the database's owner for the privileges custody's role needs",
            )
        if state.startswith("08"):
            return StorageError(
                f"lost the connection to the database server {where}: {detail}",
                hint="check that the server is running and reachable, then run the command "
                "again (nothing half-written is kept)",
            )
        return None

    def _full(self) -> NoSpaceError:
        """A full disk is a NoSpaceError, which stops a batch (every later file would
        meet it too)."""
        what = (
            f"the disk holding {self.where} is full"
            if self.is_sqlite
            else f"the PostgreSQL server's disk is full (database {self.where})"
        )
        return NoSpaceError(
            f"{what}: nothing was written",
            hint="free some space and run the command again (the transaction was rolled "
            "back: the log is as it was)",
        )

    # -- sessions -------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A read (or unlocked write) session; database errors become StorageError
        (naming the real cause: see `_mapped`)."""
        try:
            with Session(self.engine) as s:
                yield s
        except SQLAlchemyError as exc:
            mapped = self._mapped(exc)
            if mapped is not None:
                raise mapped from exc
            raise StorageError(f"database error: {_first_line(exc)}") from exc

    @contextlib.contextmanager
    def writer(self) -> Iterator[Session]:
        """One write transaction holding the log's write lock; commits on success.

        Everything done in the block (entries, nodes, index rows) commits together
        or not at all: an interrupted process leaves no orphan entry.  The lock is
        waited for at most `lock_timeout()` seconds (saying so on stderr after
        NOTICE_AFTER).

        Raises StorageError at once if the database is read-only, LockTimeoutError
        if the lock stays held, StorageError naming the cause for any other database
        failure (a full disk, an I/O error), UsageError for a bad CUSTODY_LOCK_TIMEOUT.
        """
        if self.read_only:
            raise self.read_only_error()
        timeout = lock_timeout()
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(custody_write=True, custody_lock_timeout=timeout)
                with conn.begin():
                    if not self.is_sqlite:
                        _pg_write_lock(conn, timeout)
                    with Session(bind=conn) as s:
                        yield s
                        s.flush()
        except sqlite3.Error as exc:
            # Raised by BEGIN IMMEDIATE, run on the driver's connection (see
            # _sqlite_begin_immediate), so not wrapped by SQLAlchemy.
            raise self._mapped(exc, timeout=timeout) or StorageError(
                f"database refused the write: {_first_line(exc)}"
            ) from exc
        except OperationalError as exc:
            raise self._mapped(exc, timeout=timeout) or StorageError(
                f"database is busy or unavailable: {_first_line(exc)}",
                hint="another custody process may hold the log's write lock; try again",
            ) from exc
        except DBAPIError as exc:
            raise self._mapped(exc, timeout=timeout) or StorageError(
                f"database refused the write: {_first_line(exc)}"
            ) from exc

    # -- the log tables ---------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self.session() as s:
            row = s.get(Meta, key)
            return None if row is None else row.value

    @staticmethod
    def log_size(s: Session) -> int:
        """The number of entries (the primary key's index answers it in O(log n))."""
        n = s.connection().execute(_LOG_SIZE).scalar()
        return 0 if n is None else int(n) + 1

    @staticmethod
    def get_nodes(s: Session, ids: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored hashes of the given perfect subtrees (missing ids are absent)."""
        out: dict[tuple[int, int], bytes] = {}
        wanted = list(dict.fromkeys(ids))
        for i in range(0, len(wanted), 200):
            chunk = wanted[i : i + 200]
            # An OR of primary-key equalities: SQLite answers it with one index search
            # per node, where a row-value IN (level, idx) would scan the whole table.
            params: dict[str, int] = {}
            for n, (lv, ix) in enumerate(chunk):
                params[f"l{n}"], params[f"i{n}"] = lv, ix
            rows = s.connection().execute(_nodes_query(len(chunk)), params).all()
            for level, idx, h in rows:
                out[(int(level), int(idx))] = bytes(h)
        return out

    @staticmethod
    def insert_log_rows(
        s: Session, entries: Sequence[dict[str, Any]], nodes: Sequence[dict[str, Any]]
    ) -> None:
        """Bulk-insert entry and node rows inside the caller's write transaction."""
        if entries:
            s.execute(EntryRow.__table__.insert(), list(entries))  # type: ignore[attr-defined]
        if nodes:
            s.execute(NodeRow.__table__.insert(), list(nodes))  # type: ignore[attr-defined]

    def iter_entries(
        self, start: int = 0, end: int | None = None, chunk: int = 5000
    ) -> Iterator[tuple[int, bytes]]:
        """Stream (index, bytes) in index order, `chunk` rows per query."""
        pos = start
        while end is None or pos < end:
            stop = pos + chunk if end is None else min(pos + chunk, end)
            with self.session() as s:
                rows = s.exec(
                    select(EntryRow.idx, EntryRow.data)
                    .where(EntryRow.idx >= pos, EntryRow.idx < stop)
                    .order_by(EntryRow.idx)  # type: ignore[arg-type]
                ).all()
            if not rows:
                return
            for idx, data in rows:
                yield int(idx), bytes(data)
            pos = stop

    @staticmethod
    def key_entries(s: Session) -> list[tuple[int, bytes]]:
        """(index, bytes) of every entry whose look-up column says it is a `key` entry."""
        rows = s.exec(
            select(EntryRow.idx, EntryRow.data)
            .where(EntryRow.etype == "key")
            .order_by(EntryRow.idx)  # type: ignore[arg-type]
        ).all()
        return [(int(i), bytes(d)) for i, d in rows]

    @staticmethod
    def case_entries(
        s: Session, case: str, skip_types: Sequence[str] = ()
    ) -> list[tuple[int, bytes]]:
        """(index, bytes) of the entries whose look-up column names `case`, in order."""
        q = select(EntryRow.idx, EntryRow.data).where(EntryRow.case_id == case)
        if skip_types:
            q = q.where(col(EntryRow.etype).not_in(skip_types))
        rows = s.exec(q.order_by(col(EntryRow.idx))).all()
        return [(int(i), bytes(d)) for i, d in rows]

    def nodes_at_level(self, level: int, lo: int, hi: int) -> dict[int, bytes]:
        """Stored node hashes at `level` with index in [lo, hi]."""
        with self.session() as s:
            rows = s.exec(
                select(NodeRow.idx, NodeRow.hash).where(
                    NodeRow.level == level, NodeRow.idx >= lo, NodeRow.idx <= hi
                )
            ).all()
        return {int(i): bytes(h) for i, h in rows}

    def parties(self) -> list[PartyRow]:
        with self.session() as s:
            return list(s.exec(select(PartyRow).order_by(PartyRow.name)).all())

    def party(self, name: str) -> PartyRow | None:
        with self.session() as s:
            return s.get(PartyRow, name)

    # -- custody state (what appends read; see custody.infra.state) --------------

    @staticmethod
    def has_state(s: Session) -> bool:
        """Whether the state tables hold the state of the whole log (see STATE_MARKER)."""
        return s.connection().execute(_HAS_STATE).first() is not None

    @staticmethod
    def mark_state(s: Session) -> None:
        s.add(Meta(key=STATE_MARKER, value="1"))
        s.flush()

    # The look-ups below run on every append: they are prepared Core statements
    # (compiled once, executed with bound values) rather than ORM queries, whose
    # construction would cost more than the database's answer.

    @staticmethod
    def state_item(s: Session, case: str, item: str) -> Any:
        """The state row of an item (attributes as StateItemRow's columns), or None."""
        return s.connection().execute(_ITEM, {"case": case, "item": item}).first()

    @staticmethod
    def state_consents_covering(s: Session, case: str, item: str) -> list[Any]:
        """The consent grant rows of `case` for the whole case or naming `item`."""
        return list(s.connection().execute(_COVERING, {"case": case, "item": item}).all())

    @staticmethod
    def state_consent(s: Session, hash: str) -> Any:
        return s.connection().execute(_CONSENT, {"hash": hash}).first()

    @staticmethod
    def state_offer(s: Session, offer: str) -> bool:
        return s.connection().execute(_OFFER, {"offer": offer}).first() is not None

    @staticmethod
    def state_keys(s: Session, name: str) -> list[Any]:
        return list(s.connection().execute(_KEYS, {"name": name}).all())

    @staticmethod
    def state_key_names(s: Session) -> list[str]:
        """The names of every party with a key on the log, in order."""
        rows = s.exec(select(StateKeyRow.name).distinct().order_by(col(StateKeyRow.name))).all()
        return list(rows)

    @staticmethod
    def state_insert(s: Session, table: type[SQLModel], rows: Sequence[dict[str, Any]]) -> None:
        """Insert state rows (one of STATE_TABLES) inside the caller's transaction."""
        if rows:
            s.execute(table.__table__.insert(), list(rows))  # type: ignore[attr-defined]

    @staticmethod
    def state_set_holder(s: Session, case: str, item: str, holder: str) -> None:
        s.execute(
            update(StateItemRow)
            .where(col(StateItemRow.case_id) == case, col(StateItemRow.item) == item)
            .values(holder=holder)
        )

    @staticmethod
    def state_revoke_consent(s: Session, hash: str, index: int) -> None:
        s.execute(
            update(StateConsentRow)
            .where(col(StateConsentRow.hash) == hash)
            .values(revoked_at=index)
        )

    @staticmethod
    def state_end_key(s: Session, name: str, registered_at: int, index: int, reason: str) -> None:
        s.execute(
            update(StateKeyRow)
            .where(col(StateKeyRow.name) == name, col(StateKeyRow.registered_at) == registered_at)
            .values(ended_at=index, end_reason=reason)
        )

    @staticmethod
    def state_all(s: Session) -> dict[str, list[Any]]:
        """Every state row, table by table (what `log verify` compares with its replay)."""
        return {str(t.__tablename__): list(s.exec(select(t)).all()) for t in STATE_TABLES}

    # -- cases and items (look-up indexes derived from the log) -----------------

    def case(self, case_id: str) -> CaseRow | None:
        with self.session() as s:
            return s.get(CaseRow, case_id)

    def cases(self) -> list[CaseRow]:
        with self.session() as s:
            return list(s.exec(select(CaseRow).order_by(col(CaseRow.case_id))).all())

    def items_in_case(self, case_id: str) -> list[ItemRow]:
        with self.session() as s:
            return list(
                s.exec(
                    select(ItemRow).where(ItemRow.case_id == case_id).order_by(col(ItemRow.number))
                ).all()
            )

    def all_items(self) -> list[ItemRow]:
        with self.session() as s:
            return list(s.exec(select(ItemRow).order_by(col(ItemRow.id))).all())

    def item_in_case(self, case_id: str, blake3: str) -> ItemRow | None:
        with self.session() as s:
            return s.exec(
                select(ItemRow).where(ItemRow.case_id == case_id, ItemRow.blake3 == blake3)
            ).first()

    @staticmethod
    def item_in_case_s(s: Session, case_id: str, blake3: str) -> ItemRow | None:
        """`item_in_case` inside the caller's transaction."""
        return s.exec(
            select(ItemRow).where(ItemRow.case_id == case_id, ItemRow.blake3 == blake3)
        ).first()

    def item_by_exhibit(self, exhibit: str) -> ItemRow | None:
        with self.session() as s:
            return s.exec(select(ItemRow).where(ItemRow.exhibit == exhibit)).first()

    def items_by_digest(self, blake3: str) -> list[ItemRow]:
        with self.session() as s:
            return list(s.exec(select(ItemRow).where(ItemRow.blake3 == blake3)).all())

    def items_by_digest_prefix(self, prefix: str, case_id: str | None = None) -> list[ItemRow]:
        with self.session() as s:
            q = select(ItemRow).where(col(ItemRow.blake3).startswith(prefix))
            if case_id is not None:
                q = q.where(ItemRow.case_id == case_id)
            return list(s.exec(q.limit(20)).all())

    @staticmethod
    def next_exhibit_number(s: Session, case_id: str) -> int:
        """The next exhibit number in `case_id` (call inside the write transaction)."""
        n = s.exec(select(func.max(ItemRow.number)).where(ItemRow.case_id == case_id)).one()
        return 1 if n is None else int(n) + 1

    def entries_for_item(self, blake3: str) -> list[tuple[int, bytes]]:
        """(index, bytes) of the entries whose look-up column names this item, in order."""
        with self.session() as s:
            rows = s.exec(
                select(EntryRow.idx, EntryRow.data)
                .where(EntryRow.item == blake3)
                .order_by(col(EntryRow.idx))
            ).all()
        return [(int(i), bytes(d)) for i, d in rows]

    @staticmethod
    def index_of(s: Session, ehash: str) -> int | None:
        """The index of the entry with this entry hash, if the log has it."""
        n = s.exec(select(EntryRow.idx).where(EntryRow.ehash == ehash)).first()
        return None if n is None else int(n)

    def entry(self, index: int) -> bytes | None:
        with self.session() as s:
            row = s.get(EntryRow, index)
            return None if row is None else bytes(row.data)

    def checkpoints(self) -> list[CheckpointRow]:
        with self.session() as s:
            return list(s.exec(select(CheckpointRow).order_by(CheckpointRow.size)).all())  # type: ignore[arg-type]

    def checkpoint(self, size: int | None = None) -> CheckpointRow | None:
        """The checkpoint at `size`, or the latest one."""
        with self.session() as s:
            if size is not None:
                return s.get(CheckpointRow, size)
            return s.exec(select(CheckpointRow).order_by(desc("size")).limit(1)).first()


def _unwritable(path: Path) -> bool:
    """Whether the SQLite file, or the folder that must hold its side files, is read-only."""
    if not os.access(path.parent, os.W_OK):
        return True
    return path.exists() and not os.access(path, os.W_OK)


def _sqlite_engine(url: str, path: Path, access: str, timeout: float) -> Engine:
    """An engine on the SQLite file `path`, opened as `_sqlite_access` decided.

    Read-only connections go through an explicit `file:` URI (`mode=ro`, and
    `immutable=1` for "immutable"), made here rather than parsed from a URL so that
    any character in the path is quoted as SQLite expects.
    """
    if access == "rw":
        engine = create_engine(url, connect_args={"timeout": timeout})
    else:
        uri = f"file:{quote(str(path.absolute()))}?mode=ro"
        if access == "immutable":
            uri += "&immutable=1"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)

        engine = create_engine("sqlite://", creator=connect, poolclass=QueuePool)
    _sqlite_setup(engine, read_only=access != "rw")
    return engine


def _sqlite_setup(engine: Engine, *, read_only: bool) -> None:
    """WAL, synchronous=FULL, and explicit BEGIN (IMMEDIATE for writers).

    pysqlite's own transaction handling is switched off so that the write lock
    is taken at BEGIN, before the log size is read: two writers then queue
    instead of both reading size n and one failing (or, worse, forking) later.
    A read-only connection sets no journal mode (that would be a write).
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not read_only:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        # 64 MiB of page cache (the default is 2 MiB): an append touches a few pages of
        # each index (the entry hash index at random), and on a large log those pages no
        # longer fit the default cache.  Measured at 1,000,000 entries: 407 -> 586
        # appends/s.  (mmap would give more, but turns an I/O error into SIGBUS.)
        cur.execute("PRAGMA cache_size=-65536")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("custody_write", False):
            dbapi_conn = conn.connection.dbapi_connection
            assert dbapi_conn is not None  # a connection being begun is open
            _sqlite_begin_immediate(dbapi_conn, float(options["custody_lock_timeout"]))
        else:
            conn.exec_driver_sql("BEGIN")


def _is_busy(exc: sqlite3.Error) -> bool:
    code = int(getattr(exc, "sqlite_errorcode", -1) or -1) & 0xFF
    return code in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED


def _sqlite_begin_immediate(dbapi_conn: Any, timeout: float) -> None:
    """BEGIN IMMEDIATE (take the write lock), waiting at most `timeout` seconds.

    SQLite's busy handler waits NOTICE_AFTER first; if the lock is still held, the
    waiting notice goes to stderr and the handler waits out the rest.  The busy
    timeout is set back to `timeout` for the statements of the transaction.
    Raises LockTimeoutError if the lock stays held; other sqlite3 errors (a full
    disk creating the write-ahead log) propagate.
    """
    start = time.monotonic()
    first = min(timeout, NOTICE_AFTER)
    try:
        dbapi_conn.execute(f"PRAGMA busy_timeout = {int(first * 1000)}")
        try:
            dbapi_conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.Error as exc:
            if not _is_busy(exc):
                raise
            if timeout <= first:
                raise lock_timeout_error(timeout) from exc
        _waiting_notice(timeout)
        rest = max(timeout - (time.monotonic() - start), 0.001)
        dbapi_conn.execute(f"PRAGMA busy_timeout = {int(rest * 1000)}")
        try:
            dbapi_conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if _is_busy(exc):
                raise lock_timeout_error(timeout) from exc
            raise
    finally:
        dbapi_conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")


def _pg_try_lock(conn: Connection) -> bool:
    return bool(
        conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID}).scalar()
    )


def _pg_write_lock(conn: Connection, timeout: float) -> None:
    """Take the log's advisory write lock in this transaction, waiting at most `timeout` s.

    The lock is tried every 50 ms for NOTICE_AFTER; then the waiting notice goes to
    stderr and the server waits out the rest under `lock_timeout`, which stays set
    for the transaction (any other lock it waits for is bounded the same way).
    Raises LockTimeoutError if the lock stays held (SQLSTATE 55P03).
    """
    start = time.monotonic()
    first = min(timeout, NOTICE_AFTER)
    while True:
        if _pg_try_lock(conn):
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(int(timeout * 1000), 1)}")
            return
        if time.monotonic() - start >= first:
            break
        time.sleep(0.05)
    if timeout <= first:
        raise lock_timeout_error(timeout)
    _waiting_notice(timeout)
    rest = max(timeout - (time.monotonic() - start), 0.001)
    # lock_timeout = 0 would mean "wait for ever": never below 1 ms.
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(int(rest * 1000), 1)}")
    try:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
    except DBAPIError as exc:
        if str(getattr(exc.orig, "sqlstate", "")) in ("55P03", "57014"):
            raise lock_timeout_error(timeout) from exc
        raise
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(int(timeout * 1000), 1)}")


def _first_line(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc)
    return text_.strip().splitlines()[0] if text_.strip() else type(exc).__name__
