"""Keep the look-up tables in step with the log.

The tables `parties`, `cases` and `items` are indexes derived from entries, for
fast look-ups (case lists, exhibit numbers, file names); every append that can
change them goes through `append_indexed` so that imported entries (from another
home's offer) are indexed exactly like local ones.  Verification never trusts
these tables.  (The custody state the rules read, holders and consents and key
timelines, is kept by the log itself: `custody.infra.state`.)

The tables are insert-only (schema 2, docs/database.md): an entry adds rows and
never changes one.  A party's current key and status, and an exhibit's current
holder, are read from the custody state (`custody.infra.store.Store.party`,
`custody.infra.store.Store.items_in_case` and the other item look-ups).
"""

from __future__ import annotations

from custody.infra.log import Log, LogWriter
from custody.infra.store import CaseRow, ItemRow, PartyRow, Session
from custody.model.types import Derive, Ingest, KeyEvent, Typed


def append_indexed(w: LogWriter, data: bytes, *, imported: bool = False) -> int:
    """Append one entry (the log checks signatures and custody rules) and add the
    look-up rows it implies (`index_entry`).  `imported`: an entry from elsewhere,
    which keeps its signer's time (`custody.infra.log`, claimed times in order).

    Raises what `LogWriter.append` raises; nothing is indexed then.
    """
    index, typed = w.append_checked(data, imported=imported)
    index_entry(w.session, index, typed)
    return index


def append_indexed_one(log: Log, data: bytes, *, imported: bool = False) -> int:
    """`append_indexed` of one entry in its own transaction, holding the write lock
    only for what must be serial (`custody.infra.log.Log.append_one`)."""
    return log.append_one(data, index_entry, imported=imported)[0]


def index_entry(s: Session, index: int, typed: Typed) -> None:
    """Add the look-up rows entry `index` implies, in the caller's transaction: a party
    for a `key` registration, an exhibit for `ingest`/`derive`, a case for any entry
    naming an unknown case.  (A handoff, a rotation or a revocation adds none: the
    current holder and key come from the custody state.)"""
    case = typed.case_id
    if case is not None and s.get(CaseRow, case) is None:
        s.add(CaseRow(case_id=case, title="", created=typed.time))
    if isinstance(typed, KeyEvent):
        _index_key(s, index, typed)
    elif isinstance(typed, Ingest | Derive):
        s.add(
            ItemRow(
                case_id=typed.case,
                number=int(typed.exhibit.rsplit("/", 1)[1]),
                exhibit=typed.exhibit,
                blake3=typed.item,
                sha256=typed.sha256,
                size=typed.size,
                name=typed.name,
                kind=typed.kind,
                metadata_digest=typed.metadata,
                content_digest=typed.content,
                ingest_idx=index,
                holder=typed.by,
                ingested_by=typed.by,
                ingested_at=typed.time,
            )
        )
    s.flush()


def _index_key(s: Session, index: int, key: KeyEvent) -> None:
    """A party's first registration; later key entries are on its key timeline."""
    if key.action == "register" and s.get(PartyRow, key.party) is None:
        assert key.role is not None and key.vkey is not None  # KeyEvent.check
        s.add(
            PartyRow(
                name=key.party,
                role=key.role,
                org=key.org or "",
                vkey=key.vkey,
                entry_idx=index,
            )
        )
