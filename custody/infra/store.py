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
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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
from sqlalchemy.sql.elements import TextClause
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

__all__ = ["STATE_MARKER", "STATE_TABLES", "Session", "Store"]

from custody.errors import StorageError

SCHEMA_VERSION = "1"
APPEND_ONLY_TABLES = ("entries", "tree_nodes", "checkpoints")
_PG_LOCK_ID = 0x637573746F6479  # "custody": the log's advisory write lock


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


class Store:
    """A custody database.  `Store.open(url)` connects and creates the schema if needed."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.is_sqlite = engine.dialect.name == "sqlite"

    @classmethod
    def open(cls, url: str, *, create: bool = False) -> Store:
        """Connect to `url`; with `create`, make the schema (idempotent).

        Raises StorageError (one line, the URL without password) if the database
        cannot be opened.
        """
        if url.startswith("sqlite:///") and not create:
            path = Path(url[len("sqlite:///") :])
            if not path.exists():
                raise StorageError(
                    f"no custody database at {path}",
                    hint="run 'custody init --origin NAME' first, or pass --home / set "
                    "CUSTODY_HOME to an existing home",
                )
        try:
            if url.startswith("sqlite"):
                engine = create_engine(url, connect_args={"timeout": 60})
                _sqlite_setup(engine)
            else:
                engine = create_engine(url, pool_pre_ping=True)
            store = cls(engine, url)
            if create:
                store._create_schema()
            else:
                store._check_schema()
            return store
        except StorageError:
            raise
        except (SQLAlchemyError, OSError, ImportError) as exc:
            raise StorageError(
                f"cannot open the custody database {_describe(url)}: {_first_line(exc)}",
                hint="check --db / CUSTODY_DB, or run 'custody init' first",
            ) from exc

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
        # The custody state tables came after schema 1's first release: a database
        # made before them gets them here (idempotent), and the log fills them by one
        # replay before its next append (see custody.infra.log).
        tables = [t.__table__ for t in STATE_TABLES]  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
        if not all(t.name in names for t in tables):
            with self.engine.begin() as conn:
                SQLModel.metadata.create_all(conn, tables=tables)

    def close(self) -> None:
        self.engine.dispose()

    # -- sessions -------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A read (or unlocked write) session; database errors become StorageError."""
        try:
            with Session(self.engine) as s:
                yield s
        except SQLAlchemyError as exc:
            raise StorageError(f"database error: {_first_line(exc)}") from exc

    @contextlib.contextmanager
    def writer(self) -> Iterator[Session]:
        """One write transaction holding the log's write lock; commits on success.

        Everything done in the block (entries, nodes, index rows) commits together
        or not at all: an interrupted process leaves no orphan entry.
        """
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(custody_write=True)
                with conn.begin():
                    if not self.is_sqlite:
                        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
                    with Session(bind=conn) as s:
                        yield s
                        s.flush()
        except OperationalError as exc:
            raise StorageError(
                f"database is busy or unavailable: {_first_line(exc)}",
                hint="another custody process may hold the log's write lock; try again",
            ) from exc
        except DBAPIError as exc:
            raise StorageError(f"database refused the write: {_first_line(exc)}") from exc

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


def _sqlite_setup(engine: Engine) -> None:
    """WAL, synchronous=FULL, and explicit BEGIN (IMMEDIATE for writers).

    pysqlite's own transaction handling is switched off so that the write lock
    is taken at BEGIN, before the log size is read: two writers then queue
    instead of both reading size n and one failing (or, worse, forking) later.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("custody_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _first_line(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc)
    return text_.strip().splitlines()[0] if text_.strip() else type(exc).__name__
