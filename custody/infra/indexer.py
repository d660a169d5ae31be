"""Keep the look-up tables in step with the log.

The tables `parties`, `cases` and `items` are indexes derived from entries, for
fast look-ups; every append that can change them goes through `append_indexed`
so that imported entries (from another home's offer) are indexed exactly like
local ones.  Verification never trusts these tables.
"""

from __future__ import annotations

from custody.infra.log import LogWriter
from custody.infra.store import CaseRow, ItemRow, PartyRow, Session, Store
from custody.model.entry import Entry, SignedEntry


def append_indexed(w: LogWriter, data: bytes) -> int:
    """Append one entry (the log checks signatures and custody rules) and update the
    look-up tables it implies: parties for `key`, exhibits for `ingest`/`derive`,
    holders for `handoff`, cases for any entry naming an unknown case."""
    index = w.append(data)
    entry = SignedEntry.parse(data).entry
    s = w.session
    case = entry.get("case")
    if case is not None and s.get(CaseRow, case) is None:
        s.add(CaseRow(case_id=case, title="", created=entry.time))
    if entry.type == "key":
        _index_key(s, index, entry)
    elif entry.type in ("ingest", "derive"):
        assert case is not None
        exhibit = entry.require("exhibit")
        by = entry.require("by")
        s.add(
            ItemRow(
                case_id=case,
                number=int(exhibit.rsplit("/", 1)[1]),
                exhibit=exhibit,
                blake3=entry.require("item"),
                sha256=entry.get("sha256"),
                size=int(entry.require("size")),
                name=entry.require("name"),
                kind=entry.require("kind"),
                metadata_digest=entry.get("metadata"),
                content_digest=entry.get("content"),
                ingest_idx=index,
                holder=by,
                ingested_by=by,
                ingested_at=entry.time,
            )
        )
    elif entry.type == "handoff":
        assert case is not None
        for item in entry.get_all("item"):
            row = Store.item_in_case_s(s, case, item)
            if row is not None:
                row.holder = entry.require("to")
                s.add(row)
    s.flush()
    return index


def _index_key(s: Session, index: int, entry: Entry) -> None:
    name, action = entry.require("party"), entry.require("action")
    row = s.get(PartyRow, name)
    if action == "register":
        if row is None:
            s.add(
                PartyRow(
                    name=name,
                    role=entry.require("role"),
                    org=entry.get("org") or "",
                    vkey=entry.require("vkey"),
                    entry_idx=index,
                )
            )
    elif row is not None and action == "rotate":
        row.vkey, row.entry_idx = entry.require("vkey"), index
        s.add(row)
    elif row is not None and action == "revoke":
        row.status = "revoked"
        s.add(row)
