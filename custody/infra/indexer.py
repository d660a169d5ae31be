"""Keep the look-up tables in step with the log.

The tables `parties`, `cases` and `items` are indexes derived from entries, for
fast look-ups (case lists, exhibit numbers, file names); every append that can
change them goes through `append_indexed` so that imported entries (from another
home's offer) are indexed exactly like local ones.  Verification never trusts
these tables.  (The custody state the rules read, holders and consents and key
timelines, is kept by the log itself: `custody.infra.state`.)
"""

from __future__ import annotations

from custody.infra.log import LogWriter
from custody.infra.store import CaseRow, ItemRow, PartyRow, Session, Store
from custody.model.types import Derive, Handoff, Ingest, KeyEvent


def append_indexed(w: LogWriter, data: bytes) -> int:
    """Append one entry (the log checks signatures and custody rules) and update the
    look-up tables it implies: parties for `key`, exhibits for `ingest`/`derive`,
    holders for `handoff`, cases for any entry naming an unknown case.

    Raises what `LogWriter.append` raises; nothing is indexed then.
    """
    index, typed = w.append_checked(data)
    s = w.session
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
    elif isinstance(typed, Handoff):
        for item in typed.items:
            row = Store.item_in_case_s(s, typed.case, item)
            if row is not None:
                row.holder = typed.receiver
                s.add(row)
    s.flush()
    return index


def _index_key(s: Session, index: int, key: KeyEvent) -> None:
    row = s.get(PartyRow, key.party)
    if key.action == "register":
        if row is None:
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
    elif row is not None and key.action == "rotate":
        assert key.vkey is not None  # KeyEvent.check
        row.vkey, row.entry_idx = key.vkey, index
        s.add(row)
    elif row is not None and key.action == "revoke":
        row.status = "revoked"
        s.add(row)
