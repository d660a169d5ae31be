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
(holder per item, consent scopes, settled offers, party key timelines), written
in the append's transaction (custody.infra.state); `custody log verify` replays
the entries and fails if they disagree.

The other tables (parties, cases, items) are indexes derived from the log for
fast look-ups; `custody log verify` never trusts them.

Schema version 3 (docs/database.md): every table but `meta` is insert-only.  A
change is a new row and the current value is the newest row: a handoff adds a
`state_holders` row, a revocation a `state_consent_revocations` row, the end of a
key a `state_key_ends` row, an answer to a request a `state_request_answers` row,
a review, a hold's release and a disposal their own rows, a policy a
`state_policies` row; the current holder of an exhibit and the current key and
status of a party are read from the state tables.  Triggers refuse UPDATE,
DELETE (and on PostgreSQL TRUNCATE) on every table but `meta`, so an append needs
only SELECT and INSERT: on PostgreSQL, `grant_role` gives investigators exactly
that, auditors SELECT, and the schema to the `custody_operator` group.  A schema-1
or schema-2 database is migrated in one transaction where the connection owns the
schema (`migrate`), and refused with a clear message where it does not.

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
import random
import re
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
)
from sqlalchemy import insert as sa_insert
from sqlalchemy import select as core_select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql.elements import TextClause
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

__all__ = ["ENV_LOCK_TIMEOUT", "STATE_MARKER", "STATE_TABLES", "Session", "Store", "lock_timeout"]

from custody.errors import LockTimeoutError, StorageError, UsageError
from custody.infra.crash import crash_point
from custody.infra.files import NoSpaceError

SCHEMA_VERSION = "3"
#: Schema versions this custody migrates from (`Store.migrate`).
OLD_SCHEMAS = ("1", "2")
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
    """A registered party (derived from its `key` registration entry).

    The table holds the registration (insert-only); `Store.party` and
    `Store.parties` return rows whose `vkey`, `entry_idx` and `status` are the
    party's current key, the entry that registered it, and "active", "revoked" or
    "rotated", from the key timeline (`state_keys`, `state_key_ends`).
    """

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
    """An exhibit: one file ingested into one case (derived from its `ingest` entry).

    The table is insert-only: `holder` there is the holder at ingest; the rows the
    Store returns carry the current holder, from the custody state.
    """

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
    """Custody state: an item of a case and its first holder (rules' view, see
    custody.model.state); later holders are `StateHolderRow` rows."""

    __tablename__ = "state_items"
    case_id: str = Field(primary_key=True)
    item: str = Field(primary_key=True)
    exhibit: str
    holder: str
    legal_basis: str | None = None
    ref: str | None = None
    since: int = Field(sa_column=Column(BigInteger, nullable=False))
    parent: str | None = None


class StateHolderRow(SQLModel, table=True):
    """Custody state: custody of an item passed to `holder` (a handoff).  The current
    holder is the row with the greatest `seq` (1, 2, ... per item), else the item's
    first holder."""

    __tablename__ = "state_holders"
    case_id: str = Field(primary_key=True)
    item: str = Field(primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    holder: str


class StateConsentRow(SQLModel, table=True):
    """Custody state: a consent grant and its scope (its revocation is a
    `StateRevocationRow`)."""

    __tablename__ = "state_consents"
    hash: str = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, nullable=False))
    owner: str
    case_id: str = Field(index=True)
    items: str = ""  # the items of the scope, one per line; empty: the whole case
    purpose: str
    until: str | None = None
    onward: str


class StateRevocationRow(SQLModel, table=True):
    """Custody state: consent `hash` revoked at entry `idx`."""

    __tablename__ = "state_consent_revocations"
    hash: str = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, nullable=False))


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
    """Custody state: one key of one party, valid from entry `registered_at` (until its
    `StateKeyEndRow`, if any)."""

    __tablename__ = "state_keys"
    name: str = Field(primary_key=True)
    registered_at: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    role: str
    org: str = ""
    vkey: str


class StateKeyEndRow(SQLModel, table=True):
    """Custody state: the key of `name` registered at `registered_at` ended at entry
    `ended_at` ("rotated", or "revoked: <reason>")."""

    __tablename__ = "state_key_ends"
    name: str = Field(primary_key=True)
    registered_at: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    ended_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    reason: str


class StateConsentRequestRow(SQLModel, table=True):
    """Custody state (schema 3): consent grant `hash` answers request `request`."""

    __tablename__ = "state_consent_requests"
    hash: str = Field(primary_key=True)
    request: str


class StateRequestRow(SQLModel, table=True):
    """Custody state (schema 3): a request for footage (its answers are
    `StateAnswerRow` rows)."""

    __tablename__ = "state_requests"
    hash: str = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, nullable=False))
    case_id: str = Field(index=True)
    by_party: str
    owner: str | None = None
    start_at: str
    end_at: str
    area: str | None = None
    answer_by: str | None = None


class StateAnswerRow(SQLModel, table=True):
    """Custody state (schema 3): request `hash` answered at entry `idx` by `owner`,
    `outcome` "consent" or "refusal"."""

    __tablename__ = "state_request_answers"
    hash: str = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    owner: str
    outcome: str


class StateEmergencyRow(SQLModel, table=True):
    """Custody state (schema 3): an emergency disclosure (the ingest with entry hash
    `hash`), its review due by `due` (its review is a `StateReviewRow`)."""

    __tablename__ = "state_emergencies"
    __table_args__ = (Index("state_emergencies_case_item", "case_id", "item"),)
    hash: str = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, nullable=False))
    case_id: str
    item: str
    by_party: str
    claimed: str
    due: str


class StateReviewRow(SQLModel, table=True):
    """Custody state (schema 3): emergency disclosure `hash` reviewed at entry `idx`;
    a `rejected` outcome restricts the item from then on."""

    __tablename__ = "state_reviews"
    hash: str = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, nullable=False))
    outcome: str
    reviewer: str
    claimed: str


class StateHoldRow(SQLModel, table=True):
    """Custody state (schema 3): a legal hold on a case (`item` NULL) or an item (its
    release is a `StateReleaseRow`)."""

    __tablename__ = "state_holds"
    hash: str = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, nullable=False))
    case_id: str = Field(index=True)
    item: str | None = None
    by_party: str


class StateReleaseRow(SQLModel, table=True):
    """Custody state (schema 3): hold `hash` released at entry `idx`."""

    __tablename__ = "state_hold_releases"
    hash: str = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, nullable=False))


class StateDisposalRow(SQLModel, table=True):
    """Custody state (schema 3): an item of a case disposed of at entry `idx`."""

    __tablename__ = "state_disposals"
    case_id: str = Field(primary_key=True)
    item: str = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, nullable=False))


class StatePolicyRow(SQLModel, table=True):
    """Custody state (schema 3): a policy in force from entry `idx` (the newest row is
    the policy in force); `forbid` and `warrant_required` hold one analysis kind per
    line."""

    __tablename__ = "state_policies"
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    forbid: str = ""
    warrant_required: str = ""
    review_hours: int = Field(sa_column=Column(BigInteger, nullable=False))


#: The tables schema 3 adds (requests, emergencies, holds, disposals, policies).
SCHEMA3_TABLES: tuple[type[SQLModel], ...] = (
    StateConsentRequestRow,
    StateRequestRow,
    StateAnswerRow,
    StateEmergencyRow,
    StateReviewRow,
    StateHoldRow,
    StateReleaseRow,
    StateDisposalRow,
    StatePolicyRow,
)
STATE_TABLES: tuple[type[SQLModel], ...] = (
    StateItemRow,
    StateHolderRow,
    StateConsentRow,
    StateRevocationRow,
    StateConsentItemRow,
    StateOfferRow,
    StateKeyRow,
    StateKeyEndRow,
    *SCHEMA3_TABLES,
)
#: The tables custody writes on an append (insert-only: triggers refuse UPDATE, DELETE
#: and TRUNCATE); `meta` and `checkpoints` are written by the log operator only.
INSERT_TABLES = (
    "entries",
    "tree_nodes",
    "parties",
    "cases",
    "items",
    *(str(t.__tablename__) for t in STATE_TABLES),
)
#: Every table but `meta` refuses UPDATE and DELETE.
APPEND_ONLY_TABLES = (*INSERT_TABLES, "checkpoints")
ALL_TABLES = ("meta", *APPEND_ONLY_TABLES)
#: The PostgreSQL group roles of `grant_role` (docs/database.md).
ROLES = ("investigator", "operator", "auditor")
#: The `meta` key present once the custody state tables hold the state of the whole log.
STATE_MARKER = "state"

_LOG_SIZE = core_select(func.max(EntryRow.__table__.c.idx))  # type: ignore[attr-defined]
_meta_t = Meta.__table__  # type: ignore[attr-defined]
#: The state marker, of a database at this schema version (an older one read in place,
#: read-only, has its state replayed in memory).
_HAS_STATE = core_select(_meta_t.c.value).where(
    _meta_t.c.key == STATE_MARKER,
    core_select(_meta_t.c.key)
    .where(_meta_t.c.key == "schema", _meta_t.c.value == SCHEMA_VERSION)
    .exists(),
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
_holders_t = StateHolderRow.__table__  # type: ignore[attr-defined]
_consents_t = StateConsentRow.__table__  # type: ignore[attr-defined]
_revoked_t = StateRevocationRow.__table__  # type: ignore[attr-defined]
_consent_items_t = StateConsentItemRow.__table__  # type: ignore[attr-defined]
_keys_t = StateKeyRow.__table__  # type: ignore[attr-defined]
_key_ends_t = StateKeyEndRow.__table__  # type: ignore[attr-defined]
_items_ix = ItemRow.__table__  # type: ignore[attr-defined]
_parties_t = PartyRow.__table__  # type: ignore[attr-defined]


def _newest_holder(case: Any, item: Any) -> Any:
    """The newest `state_holders` row of an item (its primary key answers it)."""
    return (
        core_select(_holders_t.c.holder, _holders_t.c.seq)
        .where(_holders_t.c.case_id == case, _holders_t.c.item == item)
        .order_by(_holders_t.c.seq.desc())
        .limit(1)
    )


def _current_holder(case: Any, item: Any, first: Any) -> Any:
    """The current holder of an item: its newest handoff, else `first`."""
    newest = _newest_holder(case, item).with_only_columns(_holders_t.c.holder)
    return func.coalesce(newest.scalar_subquery(), first)


_offers_t = StateOfferRow.__table__  # type: ignore[attr-defined]
_consent_requests_t = StateConsentRequestRow.__table__  # type: ignore[attr-defined]
_requests_t = StateRequestRow.__table__  # type: ignore[attr-defined]
_answers_t = StateAnswerRow.__table__  # type: ignore[attr-defined]
_emergencies_t = StateEmergencyRow.__table__  # type: ignore[attr-defined]
_reviews_t = StateReviewRow.__table__  # type: ignore[attr-defined]
_holds_t = StateHoldRow.__table__  # type: ignore[attr-defined]
_releases_t = StateReleaseRow.__table__  # type: ignore[attr-defined]
_disposals_t = StateDisposalRow.__table__  # type: ignore[attr-defined]
_policies_t = StatePolicyRow.__table__  # type: ignore[attr-defined]
_item_cols = [c for c in _items_t.c if c.name != "holder"]
#: The `review` that rejected an item's emergency disclosure (None: not restricted).
_RESTRICTED_AT = (
    core_select(_reviews_t.c.idx)
    .select_from(_reviews_t.join(_emergencies_t, _emergencies_t.c.hash == _reviews_t.c.hash))
    .where(
        _emergencies_t.c.case_id == _items_t.c.case_id,
        _emergencies_t.c.item == _items_t.c.item,
        _reviews_t.c.outcome == "rejected",
    )
    .limit(1)
    .scalar_subquery()
)
_DISPOSED_AT = (
    core_select(_disposals_t.c.idx)
    .where(_disposals_t.c.case_id == _items_t.c.case_id, _disposals_t.c.item == _items_t.c.item)
    .scalar_subquery()
)
#: State items with their current holder and the `seq` of its handoff (0: the first),
#: and the entries that restricted and disposed of them (None: not so).
_ITEMS = core_select(
    *_item_cols,
    _current_holder(_items_t.c.case_id, _items_t.c.item, _items_t.c.holder).label("holder"),
    func.coalesce(
        _newest_holder(_items_t.c.case_id, _items_t.c.item)
        .with_only_columns(_holders_t.c.seq)
        .scalar_subquery(),
        0,
    ).label("holder_seq"),
    _RESTRICTED_AT.label("restricted_at"),
    _DISPOSED_AT.label("disposed_at"),
)
_ITEM = _ITEMS.where(_items_t.c.case_id == bindparam("case"), _items_t.c.item == bindparam("item"))
#: Consent rows with their revocation (`revoked_at`, None if not revoked).
_CONSENTS = core_select(
    *_consents_t.c, _revoked_t.c.idx.label("revoked_at"), _consent_requests_t.c.request
).select_from(
    _consents_t.outerjoin(_revoked_t, _revoked_t.c.hash == _consents_t.c.hash).outerjoin(
        _consent_requests_t, _consent_requests_t.c.hash == _consents_t.c.hash
    )
)
_COVERING = _CONSENTS.where(
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
_CONSENT = _CONSENTS.where(_consents_t.c.hash == bindparam("hash"))
_OFFER = core_select(StateOfferRow.__table__.c.idx).where(  # type: ignore[attr-defined]
    StateOfferRow.__table__.c.offer == bindparam("offer")  # type: ignore[attr-defined]
)
#: Key rows with their end (`ended_at`, `end_reason`: None while the key is valid).
_KEY_TIMELINE = core_select(
    *_keys_t.c, _key_ends_t.c.ended_at, _key_ends_t.c.reason.label("end_reason")
).select_from(
    _keys_t.outerjoin(
        _key_ends_t,
        (_key_ends_t.c.name == _keys_t.c.name)
        & (_key_ends_t.c.registered_at == _keys_t.c.registered_at),
    )
)
_KEYS = _KEY_TIMELINE.where(_keys_t.c.name == bindparam("name")).order_by(_keys_t.c.registered_at)
#: Requests, emergencies (with their review) and holds (with their release).
_REQUESTS = core_select(_requests_t)
_REQUEST = _REQUESTS.where(_requests_t.c.hash == bindparam("hash"))
_ANSWERS = core_select(_answers_t).order_by(_answers_t.c.hash, _answers_t.c.idx)
_ANSWERS_OF = (
    core_select(_answers_t).where(_answers_t.c.hash == bindparam("hash")).order_by(_answers_t.c.idx)
)
_EMERGENCIES = core_select(
    *_emergencies_t.c,
    _reviews_t.c.idx.label("reviewed_at"),
    _reviews_t.c.outcome,
    _reviews_t.c.reviewer,
    _reviews_t.c.claimed.label("reviewed_time"),
).select_from(_emergencies_t.outerjoin(_reviews_t, _reviews_t.c.hash == _emergencies_t.c.hash))
_EMERGENCY = _EMERGENCIES.where(_emergencies_t.c.hash == bindparam("hash"))
_HOLDS = core_select(*_holds_t.c, _releases_t.c.idx.label("released_at")).select_from(
    _holds_t.outerjoin(_releases_t, _releases_t.c.hash == _holds_t.c.hash)
)
_HOLD = _HOLDS.where(_holds_t.c.hash == bindparam("hash"))
_HOLDS_COVERING = _HOLDS.where(
    _holds_t.c.case_id == bindparam("case"),
    or_(_holds_t.c.item.is_(None), _holds_t.c.item == bindparam("item")),
).order_by(_holds_t.c.idx)
_POLICY = core_select(_policies_t).order_by(_policies_t.c.idx.desc()).limit(1)
_LOG_VKEY = core_select(_meta_t.c.value).where(_meta_t.c.key == "log_vkey")


def _orphan(label: str, col_: Any, parent: Any, *on: tuple[Any, Any]) -> tuple[str, Any]:
    """Rows of a change table whose (`on`) columns name no row of `parent`."""
    match = core_select(parent).where(*(a == b for a, b in on)).exists()
    return label, core_select(col_).where(~match)


#: Change rows naming no item, consent or key (a database altered outside custody).
_ORPHANS = (
    (
        "handoff of item",
        core_select(_holders_t.c.item).where(
            ~core_select(_items_t.c.item)
            .where(_items_t.c.case_id == _holders_t.c.case_id, _items_t.c.item == _holders_t.c.item)
            .exists()
        ),
    ),
    (
        "revocation of consent",
        core_select(_revoked_t.c.hash).where(
            ~core_select(_consents_t.c.hash).where(_consents_t.c.hash == _revoked_t.c.hash).exists()
        ),
    ),
    (
        "end of a key of",
        core_select(_key_ends_t.c.name).where(
            ~core_select(_keys_t.c.name)
            .where(
                _keys_t.c.name == _key_ends_t.c.name,
                _keys_t.c.registered_at == _key_ends_t.c.registered_at,
            )
            .exists()
        ),
    ),
    _orphan(
        "answer to request",
        _answers_t.c.hash,
        _requests_t,
        (_requests_t.c.hash, _answers_t.c.hash),
    ),
    _orphan(
        "request of consent",
        _consent_requests_t.c.hash,
        _consents_t,
        (_consents_t.c.hash, _consent_requests_t.c.hash),
    ),
    _orphan(
        "review of emergency disclosure",
        _reviews_t.c.hash,
        _emergencies_t,
        (_emergencies_t.c.hash, _reviews_t.c.hash),
    ),
    _orphan(
        "release of hold",
        _releases_t.c.hash,
        _holds_t,
        (_holds_t.c.hash, _releases_t.c.hash),
    ),
    _orphan(
        "disposal of item",
        _disposals_t.c.item,
        _items_t,
        (_items_t.c.case_id, _disposals_t.c.case_id),
        (_items_t.c.item, _disposals_t.c.item),
    ),
)
#: The current holder of an `items` row, from the custody state.
_ITEM_HOLDER = _current_holder(
    _items_ix.c.case_id,
    _items_ix.c.blake3,
    func.coalesce(
        core_select(_items_t.c.holder)
        .where(_items_t.c.case_id == _items_ix.c.case_id, _items_t.c.item == _items_ix.c.blake3)
        .scalar_subquery(),
        _items_ix.c.holder,
    ),
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


def _install_triggers(conn: Connection, *, sqlite: bool) -> None:
    """The append-only triggers of every table but `meta` (idempotent; DDL: the schema
    owner's alone)."""
    if sqlite:
        for table in APPEND_ONLY_TABLES:
            for op in ("update", "delete"):
                conn.exec_driver_sql(_SQLITE_TRIGGER.format(table=table, op=op, OP=op.upper()))
        return
    conn.exec_driver_sql(_PG_FUNCTION)
    for table in APPEND_ONLY_TABLES:
        for stmt in _PG_TRIGGERS.format(table=table).split(";"):
            conn.exec_driver_sql(stmt)


def _migrate_1_to_2(conn: Connection) -> None:
    """Schema 1 -> 2 inside the caller's transaction (the schema owner's).

    The new tables are created (and schema 1's state tables where a database from
    before them lacks them: the log fills them by one replay before its next
    append); a consent's `revoked_at` and a key's `ended_at`/`end_reason` move into
    `state_consent_revocations` and `state_key_ends`, and the columns are dropped.
    `state_items.holder`, `items.holder` and the `parties` columns hold the current
    values in schema 1: in schema 2 they are the first ones, and every later change
    is a new row, so they stay as they are.
    """
    insp = inspect(conn)
    names = set(insp.get_table_names())
    old_consents = "state_consents" in names and any(
        c["name"] == "revoked_at" for c in insp.get_columns("state_consents")
    )
    old_keys = "state_keys" in names and any(
        c["name"] == "ended_at" for c in insp.get_columns("state_keys")
    )
    SQLModel.metadata.create_all(conn)
    if old_consents:
        conn.exec_driver_sql(
            "INSERT INTO state_consent_revocations (hash, idx) "
            "SELECT hash, revoked_at FROM state_consents WHERE revoked_at IS NOT NULL"
        )
        conn.exec_driver_sql("ALTER TABLE state_consents DROP COLUMN revoked_at")
    if old_keys:
        conn.exec_driver_sql(
            "INSERT INTO state_key_ends (name, registered_at, ended_at, reason) "
            "SELECT name, registered_at, ended_at, COALESCE(end_reason, '') FROM state_keys "
            "WHERE ended_at IS NOT NULL"
        )
        conn.exec_driver_sql("ALTER TABLE state_keys DROP COLUMN ended_at")
        conn.exec_driver_sql("ALTER TABLE state_keys DROP COLUMN end_reason")


def _migrate_2_to_3(conn: Connection) -> None:
    """Schema 2 -> 3 inside the caller's transaction (the schema owner's): the state
    tables of requests, emergencies, holds, disposals and policies are created, empty.

    A log at schema 2 holds no entry that writes them (those entry types, a consent's
    `request`, and legal-basis `emergency` are newer than it), so empty tables are its
    state: the state marker stays.
    """
    SQLModel.metadata.create_all(conn, tables=[t.__table__ for t in SCHEMA3_TABLES])  # type: ignore[attr-defined]


_ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,62}")


def check_role_name(user: str) -> str:
    """A PostgreSQL role name custody will create or change: 1 to 63 letters, digits,
    `_`, `.`, `-`, not starting with a digit, `pg_` or `custody_` (the group roles).

    Raises UsageError otherwise (the name is untrusted input).
    """
    if not _ROLE_NAME.fullmatch(user) or user.lower().startswith(("pg_", "custody_")):
        raise UsageError(
            f"{user!r} is not a role name custody accepts",
            hint="use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or "
            "'_' (not 'pg_' or 'custody_')",
        )
    if user.lower() in ("public", "none", "current_user", "session_user", "current_role"):
        raise UsageError(f"{user!r} is a reserved role name in PostgreSQL")
    return user


def group_role(role: str) -> str:
    """The PostgreSQL group role of a custody role ("investigator" -> custody_investigator)."""
    return f"custody_{role}"


def _pg_run(conn: Connection, query: Any) -> None:
    """Run a psycopg `sql.Composable` (identifiers and literals quoted by the driver)."""
    conn.exec_driver_sql(query.as_string(conn.connection.dbapi_connection))


def _pg_has_groups(conn: Connection) -> bool:
    """Whether custody's PostgreSQL group roles exist (`custody db grant` ran once)."""
    n = conn.execute(
        text("SELECT count(*) FROM pg_roles WHERE rolname = ANY(:g)"),
        {"g": [group_role(r) for r in ROLES]},
    ).scalar()
    return n == len(ROLES)


def _pg_privileges(conn: Connection) -> None:
    """Give every custody table, sequence and function to `custody_operator`, and set the
    privileges of `custody_investigator` and `custody_auditor` on them to exactly those
    of docs/database.md (idempotent; the group roles exist)."""
    from psycopg import sql

    run, ident = _pg_run, sql.Identifier
    op = ident(group_role("operator"))
    inv, aud = ident(group_role("investigator")), ident(group_role("auditor"))
    member = conn.execute(
        text("SELECT pg_has_role(current_user, :g, 'MEMBER')"), {"g": group_role("operator")}
    ).scalar()
    if not member:
        me = str(conn.exec_driver_sql("SELECT current_user").scalar())
        run(conn, sql.SQL("GRANT {} TO {}").format(op, ident(me)))
    schema = ident(str(conn.exec_driver_sql("SELECT current_schema()").scalar()))
    tables = sql.SQL(", ").join(ident(t) for t in ALL_TABLES)
    inserts = sql.SQL(", ").join(ident(t) for t in INSERT_TABLES)
    for t in ALL_TABLES:
        run(conn, sql.SQL("ALTER TABLE {} OWNER TO {}").format(ident(t), op))
    run(conn, sql.SQL("ALTER FUNCTION custody_append_only() OWNER TO {}").format(op))
    seqs = conn.execute(
        text(
            "SELECT DISTINCT s.relname FROM pg_class s "
            "JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass "
            "JOIN pg_class t ON t.oid = d.refobjid "
            "WHERE s.relkind = 'S' AND t.relname = ANY(:t) "
            "AND t.relnamespace = current_schema()::regnamespace"
        ),
        {"t": list(INSERT_TABLES)},
    ).all()
    run(conn, sql.SQL("REVOKE ALL ON {} FROM PUBLIC, {}, {}").format(tables, inv, aud))
    run(conn, sql.SQL("GRANT SELECT ON {} TO {}, {}").format(tables, inv, aud))
    run(conn, sql.SQL("GRANT INSERT ON {} TO {}").format(inserts, inv))
    for (seq,) in seqs:
        name = ident(str(seq))
        run(conn, sql.SQL("REVOKE ALL ON SEQUENCE {} FROM PUBLIC, {}, {}").format(name, inv, aud))
        run(conn, sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(name, inv))
    run(conn, sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC, {}, {}").format(schema, inv, aud))
    run(conn, sql.SQL("GRANT USAGE ON SCHEMA {} TO {}, {}").format(schema, inv, aud))


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
        #: A read-only database at an older schema version, read as it is: the custody
        #: state is replayed in memory and the look-up tables' columns are current.
        self.legacy = False

    @classmethod
    def open(cls, url: str, *, create: bool = False, upgrade: bool = True) -> Store:
        """Connect to `url`; with `create`, make the schema (idempotent).

        A database at an older schema version is migrated (`migrate`) where the
        connection owns its schema, and refused (StorageError) where it does not;
        with `upgrade` false it is opened as it is (for `custody db migrate` alone).
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
                store._check_schema(upgrade=upgrade)
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
        store.legacy = False
        return store

    def _create_schema(self) -> None:
        """Make the schema of a new database; an existing one is checked (and migrated
        where this connection owns it) instead, without DDL."""
        with self.session() as s:
            exists = "meta" in inspect(s.connection()).get_table_names()
            row = s.get(Meta, "schema") if exists else None
        if row is not None:
            self._check_schema()
            return
        with self.engine.begin() as conn:
            SQLModel.metadata.create_all(conn)
            _install_triggers(conn, sqlite=self.is_sqlite)
        with self.session() as s:
            if s.get(Meta, "schema") is None:
                s.add(Meta(key="schema", value=SCHEMA_VERSION))
                if Store.log_size(s) == 0:
                    # A new log: the (empty) state tables hold its whole state.
                    s.add(Meta(key=STATE_MARKER, value="1"))
                s.commit()

    def schema_version(self) -> str | None:
        """The `schema` value in `meta`, or None where the database is not custody's."""
        with self.session() as s:
            if "meta" not in inspect(s.connection()).get_table_names():
                return None
            row = s.get(Meta, "schema")
        return None if row is None else row.value

    def _check_schema(self, *, upgrade: bool = True) -> None:
        version = self.schema_version()
        if version is None:
            raise StorageError(
                f"{_describe(self.url)} is not a custody database",
                hint="run 'custody init' to create one",
            )
        if version in OLD_SCHEMAS:
            if self.read_only:
                # Never written, so never migrated: read as it is.  Schema 1 kept current
                # values in its look-up columns (see `legacy`); schema 2 has the insert-only
                # tables of its state, and the custody state is replayed in memory.
                self.legacy = version == "1"
            elif upgrade:
                self.migrate()
            return
        if version != SCHEMA_VERSION:
            raise StorageError(
                f"database schema version {version} is not supported (this custody "
                f"reads version {SCHEMA_VERSION})",
                hint="use the custody release that made this database, or a newer one",
            )

    def owns_schema(self) -> bool:
        """Whether this connection may change the schema: always on SQLite; on PostgreSQL
        where the role owns the `meta` table (directly or as a member of its owner)."""
        if self.is_sqlite:
            return True
        with self.session() as s:
            owns = s.connection().execute(
                text(
                    "SELECT pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c "
                    "WHERE c.oid = to_regclass('meta')"
                )
            )
            return bool(owns.scalar())

    def migrate(self) -> bool:
        """Bring a schema-1 or schema-2 database to this schema version, in one
        transaction.

        Returns False where it is at this version already.  From schema 1: the tables
        schema 2 adds are created and the mutable columns of schema 1 (a consent's
        revocation, a key's end) become rows of the new insert-only tables.  Then the
        tables schema 3 adds are created (`_migrate_2_to_3`), every table but `meta`
        gets its append-only triggers, and on PostgreSQL the group roles their
        privileges on them; a crash leaves the old schema as it was.  Raises
        StorageError if the database is read-only or this connection does not own
        its schema (the log operator must run 'custody db migrate').
        """
        version = self.schema_version()
        if version == SCHEMA_VERSION:
            return False
        if version not in OLD_SCHEMAS:
            self._check_schema(upgrade=False)  # raises, naming the version
        if self.read_only:
            raise StorageError(
                f"the custody database {self.where} is at schema version {version} and "
                "read-only: this custody cannot read it without migrating it",
                hint="copy the database to a writable place and open the copy (it is "
                "migrated on open), or read it with the custody release that made it",
            )
        if not self.owns_schema():
            raise StorageError(
                f"the database {self.where} is at schema version {version}; the log "
                "operator must run 'custody db migrate'",
                hint="ask the log operator (the owner of the database's tables) to run "
                "'custody db migrate --db URL' once; nothing was changed",
            )
        with self.writer() as s:
            conn = s.connection()
            row = s.get(Meta, "schema")
            if row is None or row.value == SCHEMA_VERSION:  # migrated meanwhile
                return False
            if row.value == "1":
                _migrate_1_to_2(conn)
            _migrate_2_to_3(conn)
            _install_triggers(conn, sqlite=self.is_sqlite)
            if not self.is_sqlite and _pg_has_groups(conn):
                _pg_privileges(conn)  # the new tables: the roles keep what they may do
            row.value = SCHEMA_VERSION
            s.add(row)
        crash_point("migrate.committed")
        return True

    def close(self) -> None:
        self.engine.dispose()

    # -- PostgreSQL roles (docs/database.md) --------------------------------------

    def grant_role(self, user: str, role: str, password: str | None = None) -> bool:
        """Give PostgreSQL role `user` the custody role `role` (one of ROLES), in one
        transaction; returns whether `user` was created.

        The group roles `custody_operator` (owns every custody table, sequence and
        function: migrations, triggers and checkpoints are its alone),
        `custody_investigator` (SELECT on every table, INSERT on INSERT_TABLES and
        USAGE on their sequences) and `custody_auditor` (SELECT) are created or set
        to exactly these privileges; CREATE on the schema is revoked from PUBLIC and
        the groups.  `user` is created (LOGIN, no superuser, CREATEROLE or CREATEDB)
        if missing, and made a member of its group only (an earlier custody role is
        revoked).  Idempotent.  Raises UsageError for a name custody does not accept
        or a superuser given a lesser role, StorageError (the 42501 mapping) where
        this connection may not do it.
        """
        if self.is_sqlite or role not in ROLES:
            raise UsageError(f"custody roles are {', '.join(ROLES)} on PostgreSQL")
        check_role_name(user)
        from psycopg import sql  # the driver: identifiers and literals quoted by it

        run, ident = _pg_run, sql.Identifier
        groups = {r: group_role(r) for r in ROLES}
        with self.session() as s:
            conn = s.connection()
            if conn.exec_driver_sql("SELECT to_regclass('meta')").scalar() is None:
                raise StorageError(
                    f"{self.where} is not a custody database",
                    hint="run 'custody init' on it first (as the log operator)",
                )
            found = conn.execute(
                text("SELECT rolname, rolsuper FROM pg_roles WHERE rolname = ANY(:n)"),
                {"n": [*groups.values(), user]},
            ).all()
            exists = {str(r[0]): bool(r[1]) for r in found}
            for g in groups.values():
                if g not in exists:
                    run(conn, sql.SQL("CREATE ROLE {} NOLOGIN").format(ident(g)))
            if exists.get(user) and role != "operator":
                raise UsageError(
                    f"role '{user}' is a PostgreSQL superuser: no privilege can be taken "
                    f"from it, so it cannot be an {role}",
                    hint="grant the role to an ordinary login role",
                )
            me = str(conn.exec_driver_sql("SELECT current_user").scalar())
            _pg_privileges(conn)
            created = user not in exists
            if created:
                run(
                    conn,
                    sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
                        ident(user)
                    ),
                )
            else:
                run(conn, sql.SQL("ALTER ROLE {} LOGIN").format(ident(user)))
            for r, g in groups.items():
                if r != role and (r != "operator" or user != me):
                    run(conn, sql.SQL("REVOKE {} FROM {}").format(ident(g), ident(user)))
            run(conn, sql.SQL("GRANT {} TO {}").format(ident(groups[role]), ident(user)))
            if password is not None:
                run(
                    conn,
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident(user), sql.Literal(password)),
                )
            s.commit()
        return created

    def role_members(self) -> list[tuple[str, str]]:
        """(role name, custody role) of every member of a custody group role, by name."""
        if self.is_sqlite:
            return []
        with self.session() as s:
            rows = (
                s.connection()
                .execute(
                    text(
                        "SELECT m.rolname, g.rolname FROM pg_auth_members a "
                        "JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member "
                        "WHERE g.rolname = ANY(:g) ORDER BY m.rolname, g.rolname"
                    ),
                    {"g": [group_role(r) for r in ROLES]},
                )
                .all()
            )
        return [(str(m), str(g).removeprefix("custody_")) for m, g in rows]

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
                hint="ask the log operator for the role this work needs (custody db grant "
                "USER --as investigator|auditor|operator)",
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
            with Session(self.engine, info={"custody_legacy": self.legacy}) as s:
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
    def type_entries(s: Session, etype: str) -> list[tuple[int, bytes]]:
        """(index, bytes) of every entry whose look-up column says it is of type `etype`
        (the log-wide `policy` entries a bundle carries, like key entries)."""
        rows = s.exec(
            select(EntryRow.idx, EntryRow.data)
            .where(EntryRow.etype == etype)
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
        """Every registered party, by name, with its current key and status."""
        with self.session() as s:
            rows = s.exec(select(PartyRow).order_by(PartyRow.name)).all()
            return list(rows) if self.legacy else [_party_now(s, r) for r in rows]

    def party(self, name: str) -> PartyRow | None:
        """The party `name` with its current key and status, or None."""
        with self.session() as s:
            row = s.get(PartyRow, name)
            return row if row is None or self.legacy else _party_now(s, row)

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
    def state_request(s: Session, hash: str) -> tuple[Any, list[Any]] | None:
        """The request row with this entry hash and its answer rows (in log order)."""
        conn = s.connection()
        row = conn.execute(_REQUEST, {"hash": hash}).first()
        if row is None:
            return None
        return row, list(conn.execute(_ANSWERS_OF, {"hash": hash}).all())

    @staticmethod
    def state_emergency(s: Session, hash: str) -> Any:
        """The emergency disclosure row (with its review's columns, None if unreviewed)."""
        return s.connection().execute(_EMERGENCY, {"hash": hash}).first()

    @staticmethod
    def state_hold(s: Session, hash: str) -> Any:
        """The hold row (with `released_at`, None while in force), or None."""
        return s.connection().execute(_HOLD, {"hash": hash}).first()

    @staticmethod
    def state_holds_covering(s: Session, case: str, item: str) -> list[Any]:
        """The hold rows on `case` as a whole or on `item`, in log order."""
        return list(s.connection().execute(_HOLDS_COVERING, {"case": case, "item": item}).all())

    @staticmethod
    def state_policy(s: Session) -> Any:
        """The newest policy row, or None."""
        return s.connection().execute(_POLICY).first()

    @staticmethod
    def log_vkey(s: Session) -> str | None:
        """The log's verifier key as `meta` holds it (`log_vkey`), or None."""
        row = s.connection().execute(_LOG_VKEY).first()
        return None if row is None else str(row[0])

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
    def state_set_holder(s: Session, case: str, item: str, seq: int, holder: str) -> None:
        """Record that custody of an item passed to `holder` (its `seq`-th handoff)."""
        s.execute(
            _holders_t.insert(), [{"case_id": case, "item": item, "seq": seq, "holder": holder}]
        )

    @staticmethod
    def state_revoke_consent(s: Session, hash: str, index: int) -> None:
        s.execute(_revoked_t.insert(), [{"hash": hash, "idx": index}])

    @staticmethod
    def state_end_key(s: Session, name: str, registered_at: int, index: int, reason: str) -> None:
        s.execute(
            _key_ends_t.insert(),
            [{"name": name, "registered_at": registered_at, "ended_at": index, "reason": reason}],
        )

    @staticmethod
    def state_all(s: Session) -> dict[str, list[Any]]:
        """The current custody state, table by table, as schema 1 held it (what `log
        verify` compares with its replay): `state_items` rows carry the current holder,
        `state_consents` rows `revoked_at`, `state_keys` rows `ended_at` and
        `end_reason`; `state_emergencies` rows their review's columns, `state_holds`
        rows `released_at`, `state_policy` the newest policy row.  `orphans` lists the
        change rows (a handoff, a revocation, a key's end, an answer, a review, a
        release, a disposal) that name no item, consent, key, request, disclosure or
        hold."""
        conn = s.connection()
        orphans: list[str] = []
        for label, q in _ORPHANS:
            orphans.extend(f"{label} {r[0]}" for r in conn.execute(q).all())
        return {
            "state_items": list(conn.execute(_ITEMS).all()),
            "state_consents": list(conn.execute(_CONSENTS).all()),
            "state_consent_items": list(conn.execute(core_select(_consent_items_t)).all()),
            "state_offers": list(conn.execute(core_select(_offers_t)).all()),
            "state_keys": list(conn.execute(_KEY_TIMELINE).all()),
            "state_requests": list(conn.execute(_REQUESTS).all()),
            "state_request_answers": list(conn.execute(_ANSWERS).all()),
            "state_emergencies": list(conn.execute(_EMERGENCIES).all()),
            "state_holds": list(conn.execute(_HOLDS).all()),
            "state_policy": list(conn.execute(_POLICY).all()),
            "orphans": orphans,
        }

    # -- cases and items (look-up indexes derived from the log) -----------------

    def case(self, case_id: str) -> CaseRow | None:
        with self.session() as s:
            return s.get(CaseRow, case_id)

    def cases(self) -> list[CaseRow]:
        with self.session() as s:
            return list(s.exec(select(CaseRow).order_by(col(CaseRow.case_id))).all())

    def items_in_case(self, case_id: str) -> list[ItemRow]:
        with self.session() as s:
            return _items_now(
                s, select(ItemRow).where(ItemRow.case_id == case_id).order_by(col(ItemRow.number))
            )

    def all_items(self) -> list[ItemRow]:
        with self.session() as s:
            return _items_now(s, select(ItemRow).order_by(col(ItemRow.id)))

    def item_in_case(self, case_id: str, blake3: str) -> ItemRow | None:
        with self.session() as s:
            return Store.item_in_case_s(s, case_id, blake3)

    @staticmethod
    def item_in_case_s(s: Session, case_id: str, blake3: str) -> ItemRow | None:
        """`item_in_case` inside the caller's transaction."""
        found = _items_now(
            s, select(ItemRow).where(ItemRow.case_id == case_id, ItemRow.blake3 == blake3)
        )
        return found[0] if found else None

    def item_by_exhibit(self, exhibit: str) -> ItemRow | None:
        with self.session() as s:
            found = _items_now(s, select(ItemRow).where(ItemRow.exhibit == exhibit))
            return found[0] if found else None

    def items_by_digest(self, blake3: str) -> list[ItemRow]:
        with self.session() as s:
            return _items_now(s, select(ItemRow).where(ItemRow.blake3 == blake3))

    def items_by_digest_prefix(self, prefix: str, case_id: str | None = None) -> list[ItemRow]:
        with self.session() as s:
            q = select(ItemRow).where(col(ItemRow.blake3).startswith(prefix))
            if case_id is not None:
                q = q.where(ItemRow.case_id == case_id)
            return _items_now(s, q.limit(20))

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

    # -- the append path's one-round-trip helpers (custody.infra.log) -------------------

    @staticmethod
    def log_size_and_quiet_since(s: Session, since: int) -> tuple[int, bool]:
        """The number of entries, and whether every entry from index `since` on is an
        `access` entry (which changes no custody state), in one round trip."""
        t = EntryRow.__table__  # type: ignore[attr-defined]
        later = t.alias("later")
        changed = core_select(later.c.idx).where(later.c.idx >= since, later.c.etype != "access")
        row = s.connection().execute(core_select(func.max(t.c.idx), ~changed.exists())).one()
        return (0 if row[0] is None else int(row[0]) + 1), bool(row[1])

    @staticmethod
    def insert_log_rows_at_once(
        s: Session, entries: Sequence[dict[str, Any]], nodes: Sequence[dict[str, Any]]
    ) -> None:
        """`insert_log_rows` in one statement (one round trip under the write lock) on
        PostgreSQL: the node rows' INSERT carries the entry rows' INSERT as a data-
        modifying CTE.  Elsewhere (SQLite: no round trips) the two inserts."""
        bind = s.get_bind()
        params = 6 * len(entries) + 3 * len(nodes)  # PostgreSQL takes at most 65,535
        if not entries or not nodes or params > 30_000 or bind.dialect.name != "postgresql":
            Store.insert_log_rows(s, entries, nodes)
            return
        e = sa_insert(EntryRow.__table__).values(list(entries)).cte("new_entries")  # type: ignore[attr-defined]
        s.execute(sa_insert(NodeRow.__table__).values(list(nodes)).add_cte(e))  # type: ignore[attr-defined]


def _items_now(s: Session, q: Any) -> list[ItemRow]:
    """The ItemRows `q` selects, each with its current holder from the custody state.

    The rows are detached from the session, so setting `holder` is never written back
    (the table is insert-only).  In a schema-1 database read in place (`Store.legacy`)
    the column holds the current holder already.
    """
    if s.info.get("custody_legacy"):  # schema 1, read in place: `holder` is current
        return list(s.exec(q).all())
    out: list[ItemRow] = []
    for row, holder in s.execute(q.add_columns(_ITEM_HOLDER.label("current_holder"))).all():
        s.expunge(row)
        row.holder = holder
        out.append(row)
    return out


def _party_now(s: Session, row: PartyRow) -> PartyRow:
    """A detached copy of a `parties` row with the party's current key, the entry that
    registered it, and its status ("active", "revoked", "rotated"), from the key timeline
    (the registration as stored where the timeline is not built yet)."""
    keys = Store.state_keys(s, row.name)
    if not keys:
        return PartyRow(**row.model_dump())
    last = keys[-1]
    reason = last.end_reason or ""
    status = (
        "active"
        if last.ended_at is None
        else "revoked"
        if reason.startswith("revoked")
        else "rotated"
    )
    return PartyRow(
        name=row.name,
        role=row.role,
        org=row.org,
        vkey=last.vkey,
        status=status,
        entry_idx=int(last.registered_at),
    )


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

    The lock is tried again and again with short sleeps (0.2 ms growing to 2 ms, with
    jitter), not SQLite's own busy handler: that one sleeps up to 100 ms between
    tries, so with many writers the lock sat free most of the time (measured: 4
    writers appended at a third of one writer's rate).  After NOTICE_AFTER the
    waiting notice goes to stderr, once.  The busy timeout is `timeout` for the
    statements of the transaction.  Raises LockTimeoutError if the lock stays held;
    other sqlite3 errors (a full disk creating the write-ahead log) propagate.
    """
    start = time.monotonic()
    noticed = False
    pause = 0.0002
    try:
        dbapi_conn.execute("PRAGMA busy_timeout = 0")
        while True:
            try:
                dbapi_conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.Error as exc:
                if not _is_busy(exc):
                    raise
                waited = time.monotonic() - start
                if waited >= timeout:
                    raise lock_timeout_error(timeout) from exc
            if not noticed and waited >= NOTICE_AFTER:
                _waiting_notice(timeout)
                noticed = True
            time.sleep(min(pause * (0.5 + random.random()), max(timeout - waited, 0.0)))
            pause = min(pause * 1.5, 0.002)
    finally:
        dbapi_conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")


_PG_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:k), set_config('lock_timeout', :t, true)")


def _pg_try_lock(conn: Connection, timeout: float) -> bool:
    """One try for the lock, setting `lock_timeout` (ms) for the transaction in the same
    round trip (an append holds the lock for a few statements: each one counts)."""
    row = conn.execute(_PG_TRY_LOCK, {"k": _PG_LOCK_ID, "t": _pg_ms(timeout)}).first()
    return row is not None and bool(row[0])


def _pg_ms(seconds: float) -> str:
    # lock_timeout = 0 would mean "wait for ever": never below 1 ms.
    return str(max(int(seconds * 1000), 1))


def _pg_lock_wait(conn: Connection, wait: float, timeout: float) -> bool:
    """Wait at most `wait` seconds for the log's advisory lock (the server wakes the
    waiter when the holder commits); False if it stayed held.  The wait runs in a
    savepoint so that a timed-out wait leaves the transaction usable; once the lock
    is held, `lock_timeout` is set to `timeout` for the rest of the transaction, in
    the same round trip as the savepoint's release (the lock is held from here on:
    each round trip counts)."""
    conn.exec_driver_sql(f"SAVEPOINT custody_lock_wait; SET LOCAL lock_timeout = {_pg_ms(wait)}")
    try:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
    except DBAPIError as exc:
        if str(getattr(exc.orig, "sqlstate", "")) not in ("55P03", "57014"):
            raise
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT custody_lock_wait")
        return False
    conn.exec_driver_sql(
        f"RELEASE SAVEPOINT custody_lock_wait; SET LOCAL lock_timeout = {_pg_ms(timeout)}"
    )
    return True


def _pg_write_lock(conn: Connection, timeout: float) -> None:
    """Take the log's advisory write lock in this transaction, waiting at most `timeout` s.

    One try first (no waiting: the common case on a quiet log).  Then the server
    queues the waiter (`pg_advisory_xact_lock` under `lock_timeout`, woken the moment
    the holder commits: no polling) for NOTICE_AFTER; if the lock is still held the
    waiting notice goes to stderr and the wait goes on for the rest.  `lock_timeout`
    stays set to `timeout` for the transaction (any other lock it waits for is
    bounded the same way).  Raises LockTimeoutError if the lock stays held.
    """
    start = time.monotonic()
    if _pg_try_lock(conn, timeout):
        return
    if timeout <= 0:
        raise lock_timeout_error(timeout)
    first = min(timeout, NOTICE_AFTER)
    if _pg_lock_wait(conn, first, timeout):
        return
    if timeout <= first:
        raise lock_timeout_error(timeout)
    _waiting_notice(timeout)
    if not _pg_lock_wait(conn, max(timeout - (time.monotonic() - start), 0.001), timeout):
        raise lock_timeout_error(timeout)


def _first_line(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc)
    return text_.strip().splitlines()[0] if text_.strip() else type(exc).__name__
