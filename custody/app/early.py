"""Work started before a home is opened: the first large file of an ingest, and the
signer's key.

Opening a home imports the database layer (SQLAlchemy, sqlmodel) and reads the
database, which takes most of a second on a slow machine: longer than the kernel takes
to copy hundreds of megabytes.  `stage_ahead` starts the copy of an ingest's first
file into the evidence store meanwhile, when that store is known without opening the
home (settings and environment, or the `vault` row of the home's own SQLite database,
read with `custody.infra.quickmeta`).  `custody.app.evidence.ingest` takes the copy
for that file, as if its own worker had made it; a copy it does not take is dropped.

Nothing here decides anything: the copy is the same `Vault.stage_file` every ingest
makes, staged and locked, never in objects/ before its entry is committed.  Where
anything is unusual (PostgreSQL, a store not there, a bad custody.toml, another
schema), nothing is started and the ingest runs as it always did.

`unlock_ahead` unlocks the signer's key first of all, before the first file's copy
maps its windows (3 x 16 MiB) and the database layer (~40 MB) and the media library
(~50 MB) are loaded: its Argon2id memory (64 MiB) is freed before any of them is
there, so they never add up in an ingest's peak memory (docs/ingest.md).  The key is
still checked against the log (`Custody.checked_signer`) once the home is open.

Imports nothing of the database layer (tests/contracts/test_cli_startup.py).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from custody.app.settings import KEYS_FOLDER, locate
from custody.errors import CustodyError
from custody.infra.keystore import KeyStore
from custody.infra.quickmeta import read_meta
from custody.infra.vault import StagedAhead, Vault
from custody.tlog.note import Signer

#: Smaller files are not started early: their copy takes less than the thread costs.
AHEAD_MIN_BYTES = 32 << 20
# The meta row where `custody init --vault DIR` records the shared evidence store
# (custody.app.home.META_VAULT; a contract test holds them equal).
_META_VAULT = "vault"


def vault_root_quick(home: str | Path | None, db: str | None) -> Path | None:
    """The evidence store `Custody.vault_root` will name, found without the database
    layer, or None where that cannot be told quickly (or the folder is not there)."""
    try:
        at = locate(home, db)
    except CustodyError:
        return None  # opening the home says what is wrong
    if at.vault is not None:
        root = at.vault
    else:
        meta = read_meta(at.db_url, ("origin", _META_VAULT))
        if meta is None or "origin" not in meta:
            return None
        recorded = meta.get(_META_VAULT)
        root = Path(recorded) if recorded is not None else at.root / "vault"
    return root if root.is_dir() else None


def stage_ahead(
    home: str | Path | None, db: str | None, path: Path, *, sha256: bool = False
) -> StagedAhead | None:
    """Start copying `path` into the home's evidence store, or None: not a regular file
    of at least `AHEAD_MIN_BYTES`, or the store not known without opening the home."""
    try:
        st = path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size < AHEAD_MIN_BYTES:
        return None
    root = vault_root_quick(home, db)
    if root is None or not os.access(root, os.W_OK):
        return None
    try:
        vault = Vault(root)
    except CustodyError:
        return None
    return StagedAhead(vault, path, sha256=sha256)


def unlock_ahead(
    home: str | Path | None, db: str | None, by: str | None, passphrase: Callable[[str], str]
) -> Signer | None:
    """Party `by`'s key (else the home's default party's), unlocked with `passphrase`
    (one that never prompts), or None where anything is amiss: no party named, no key
    file, a wrong passphrase.  The caller then unlocks as it always did, and says what is
    wrong in the words it always used."""
    try:
        at = locate(home, db)
        name = by or at.party
        if not name:
            return None
        keys = KeyStore(at.root / KEYS_FOLDER)  # warns of a key file others can read
        if not keys.exists(name):
            return None
        return keys.unlock(name, passphrase)
    except CustodyError:
        return None
