"""A custody home: the library API that the CLI and scripts use.

A home is a folder (`--home DIR`, `CUSTODY_HOME`, default `~/.custody`) holding
the private key files (`keys/`), the evidence store (`vault/`) and, by default,
the SQLite database (`custody.db`).  `--db URL` / `CUSTODY_DB` points at another
database instead (e.g. PostgreSQL shared by many users).

Every function that records an event takes the claimed time `now` as an
argument; only the CLI reads the clock.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from custody.errors import NotFoundError, StorageError, UsageError
from custody.infra.indexer import append_indexed
from custody.infra.keystore import KeyFile, KeyStore
from custody.infra.log import Log
from custody.infra.store import Meta, PartyRow, Store, sqlite_url
from custody.model.entry import Entry, sign_entry
from custody.tlog.note import Signer, VerifierKey, check_key_name

ENV_HOME = "CUSTODY_HOME"
ENV_DB = "CUSTODY_DB"
PassphraseFn = Callable[[str], str]


@dataclass(frozen=True)
class Home:
    """Where a custody home lives and which database it uses."""

    root: Path
    db_url: str

    @classmethod
    def locate(cls, home: str | Path | None = None, db: str | None = None) -> Home:
        """Resolve `--home`/`CUSTODY_HOME` and `--db`/`CUSTODY_DB` (arguments win)."""
        root = Path(home or os.environ.get(ENV_HOME) or Path.home() / ".custody").expanduser()
        url = db or os.environ.get(ENV_DB) or sqlite_url(root / "custody.db")
        return cls(root=root, db_url=url)

    @property
    def keystore(self) -> KeyStore:
        return KeyStore(self.root / "keys")

    @property
    def vault_root(self) -> Path:
        return self.root / "vault"


def init(home: Home, origin: str, passphrase: PassphraseFn) -> VerifierKey:
    """Create the home, the database and the log's own signing key.

    The log key's name is the log origin (C2SP tlog-checkpoint).  Raises
    UsageError if the home or database is initialised already.
    """
    check_key_name(origin)
    secret = passphrase(f"New passphrase for the log key '{origin}': ")  # before any write
    try:
        home.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StorageError(f"cannot create the custody home {home.root}: {exc.strerror}") from exc
    store = Store.open(home.db_url, create=True)
    try:
        existing = store.meta("origin")
        if existing is not None:
            raise UsageError(
                f"{home.root} is already initialised (log origin '{existing}')",
                hint="use another --home or --db for a new log",
            )
        if home.keystore.exists(origin):
            raise UsageError(f"a key for '{origin}' already exists in {home.keystore.root}")
        keyfile, _ = home.keystore.create(origin, "log", "", secret)
        with store.writer() as s:
            if s.get(Meta, "origin") is not None:
                raise UsageError("another process initialised this database meanwhile")
            s.add(Meta(key="origin", value=origin))
            s.add(Meta(key="log_vkey", value=keyfile.verifier_key.encode()))
        return keyfile.verifier_key
    finally:
        store.close()


class Custody:
    """An opened custody home."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.store = Store.open(home.db_url)
        origin = self.store.meta("origin")
        vkey = self.store.meta("log_vkey")
        if origin is None or vkey is None:
            raise StorageError(
                f"the database {home.db_url} has no log yet",
                hint="run 'custody init --origin NAME' first",
            )
        self.origin = origin
        self.log_key = VerifierKey.parse(vkey)
        self.log = Log(self.store, origin)
        self.keystore = home.keystore

    @classmethod
    def open(cls, home: str | Path | None = None, db: str | None = None) -> Custody:
        return cls(Home.locate(home, db))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Custody:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys -----------------------------------------------------------------

    def log_signer(self, passphrase: PassphraseFn) -> Signer:
        return self.keystore.unlock(self.origin, passphrase)

    def signer(self, name: str, passphrase: PassphraseFn) -> Signer:
        """Unlock party `name`'s private key, checking it is the party's active key."""
        party = self.party(name)
        signer = self.keystore.unlock(name, passphrase)
        if signer.verifier_key.encode() != party.vkey:
            raise UsageError(
                f"the key file for '{name}' is not the key registered on the log",
                hint="the key was rotated: use the current key file",
            )
        if party.status != "active":
            raise UsageError(f"the key of '{name}' is {party.status} and may not sign")
        return signer

    def new_key(
        self, name: str, role: str, org: str, passphrase: PassphraseFn, now: datetime
    ) -> tuple[KeyFile, int]:
        """Create a party key and register it on the log with a self-signed `key` entry."""
        check_key_name(name)
        if name == self.origin:
            raise UsageError(f"'{name}' is the log's own key name")
        if self.store.party(name) is not None:
            raise UsageError(f"party '{name}' is already registered on this log")
        keyfile, signer = self.keystore.create(
            name, role, org, passphrase(f"New passphrase for key '{name}': ")
        )
        entry = Entry.build(
            "key",
            now,
            [
                ("action", "register"),
                ("party", name),
                ("role", role),
                ("org", org or None),
                ("vkey", keyfile.verifier_key.encode()),
            ],
        )
        data = sign_entry(entry, [signer])
        try:
            with self.log.transaction() as w:
                index = append_indexed(w, data)
        except BaseException:
            # The key never reached the log: remove the unused file so the name is free.
            self.keystore.path(name).unlink(missing_ok=True)
            raise
        return keyfile, index

    def parties(self) -> list[PartyRow]:
        return self.store.parties()

    def party(self, name: str) -> PartyRow:
        row = self.store.party(name)
        if row is None:
            raise NotFoundError(
                f"no party named '{name}' on this log",
                hint="list parties with 'custody key list'",
            )
        return row
