"""Helpers for the tests of published logs (tlog-tiles): grow a home's log fast.

`grow(n)` appends `n` access entries by bob (the conftest home's agency) in one
transaction, after one ingest of a notional attachment, so that logs of hundreds
or thousands of entries (full tiles) cost a second, not thousands of commands.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from conftest import PASSPHRASE

from custody.app.home import Custody
from custody.model.entry import Entry, sign_entry
from custody.tlog.note import Signer

CASE, ITEM = "P-1", "cd" * 32


def _ingest(signer: Signer) -> bytes:
    fields = [
        ("case", CASE),
        ("exhibit", f"{CASE}/0001"),
        ("item", ITEM),
        ("name", "x.json"),
        ("size", 10),
        ("kind", "attachment"),
        ("by", signer.name),
        ("holder", signer.name),
    ]
    return sign_entry(Entry.build("ingest", datetime.now(UTC), fields), [signer])


def _access(signer: Signer, purpose: str) -> bytes:
    fields = [
        ("case", CASE),
        ("item", ITEM),
        ("by", signer.name),
        ("purpose", purpose),
        ("action", "view"),
    ]
    return sign_entry(Entry.build("access", datetime.now(UTC), fields), [signer])


def grow(n: int, home: Path | None = None, tag: str = "look") -> int:
    """Append `n` entries to the log of `home` (default: $CUSTODY_HOME); returns its size.

    `tag` goes into each entry, so that two copies of a home grown with different
    tags have different histories under the same log key.
    """
    with Custody.open(home) as c:
        bob = c.signer("bob", lambda _prompt: PASSPHRASE)
        ingested = _has_ingest(c)
        with c.log.transaction() as w:
            if not ingested:
                w.append(_ingest(bob))
            for i in range(n):
                w.append(_access(bob, f"{tag} {i}"))
        return c.log.size()


def _has_ingest(c: Custody) -> bool:
    mine = f"\nitem {ITEM}\n".encode()
    return any(b"\ntype ingest\n" in data and mine in data for _, data in c.store.iter_entries())
