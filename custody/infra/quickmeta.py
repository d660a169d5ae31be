"""A home's `meta` rows, read from its SQLite database without the database layer.

SQLAlchemy and sqlmodel take longer to import than `custody log key` may take, and
longer than a large ingest should wait before its first byte is copied.  The commands
that only need a few recorded values (the log's origin and key, the shared evidence
store) read them here, with the standard library's sqlite3, read-only, and fall back
to opening the home as every command does whenever anything is unusual: that path
migrates, explains or refuses.

Only a SQLite URL of the form `custody.infra.store.sqlite_url` makes (`sqlite:///PATH`)
is read; a database at another schema version than `custody.infra.store.SCHEMA_VERSION`
is not (tests/contracts/test_cli_startup.py holds the two constants equal).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

#: custody.infra.store.SCHEMA_VERSION (not imported: that module imports SQLAlchemy)
SCHEMA_VERSION = "3"
_SQLITE = "sqlite:///"


def sqlite_path(url: str) -> Path | None:
    """The file of a `sqlite:///PATH` URL, or None for any other database."""
    if not url.startswith(_SQLITE) or "?" in url:
        return None
    return Path(url[len(_SQLITE) :])


def read_meta(url: str, keys: Iterable[str]) -> dict[str, str] | None:
    """The `meta` rows named by `keys` that the database at `url` holds (a key it does
    not hold is absent from the result), or None: not a SQLite file that exists, not
    readable, locked for longer than a second, or not at the current schema.

    Never writes: the file is opened read-only (`mode=ro`), so a missing file is not
    created and a read-only home is read as it is.
    """
    path = sqlite_path(url)
    if path is None or not path.is_file():
        return None
    wanted = sorted({"schema", *keys})
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=1)
        try:
            rows = conn.execute(
                f"SELECT key, value FROM meta WHERE key IN ({', '.join('?' * len(wanted))})",
                wanted,
            ).fetchall()
        finally:
            conn.close()
    except (sqlite3.Error, ValueError, OSError):
        return None
    found = {k: v for k, v in rows if isinstance(k, str) and isinstance(v, str)}
    if found.pop("schema", None) != SCHEMA_VERSION:
        return None
    return found
