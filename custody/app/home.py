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
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from custody.app.settings import ENV_DB as ENV_DB  # re-exported: where they were named first
from custody.app.settings import ENV_HOME as ENV_HOME
from custody.app.settings import ENV_PARTY as ENV_PARTY
from custody.app.settings import ENV_VAULT as ENV_VAULT
from custody.app.settings import (
    KEYS_FOLDER,
    Settings,
    load_settings,
    locate,
    settings_path,
    write_settings,
)
from custody.errors import (
    CustodyError,
    FormatError,
    KeyFileError,
    NotFoundError,
    PolicyError,
    StorageError,
    UsageError,
)
from custody.infra.crash import crash_point
from custody.infra.indexer import append_indexed_one
from custody.infra.keystore import KeyFile, KeyStore, seal
from custody.infra.log import Log
from custody.infra.store import Meta, PartyRow, Store, sqlite_url
from custody.model.entry import Entry, sign_entry
from custody.model.names import check_origin, check_party_name, find_confusable
from custody.model.types import ROLES
from custody.tlog.note import Signer, VerifierKey

# The meta row where `custody init --vault DIR` records the shared evidence store.
META_VAULT = "vault"
PassphraseFn = Callable[[str], str]


@dataclass(frozen=True)
class Home:
    """Where a custody home lives, which database it uses, and its settings.

    `vault` is an explicit evidence-store location (from --vault, CUSTODY_VAULT or
    custody.toml, `vault_source` says which), None when the log's recorded one (or
    the home's own `vault/`) applies; `party` is the default party (--by) from
    CUSTODY_PARTY or custody.toml.  Order: docs/deployment.md, "Settings".
    """

    root: Path
    db_url: str
    vault: Path | None = None
    vault_source: str = ""
    party: str | None = None

    @classmethod
    def locate(
        cls, home: str | Path | None = None, db: str | None = None, vault: str | Path | None = None
    ) -> Home:
        """Resolve `--home`/`CUSTODY_HOME`, then `--db`, `--vault` and the default party:
        flag > environment variable > the home's custody.toml > built-in default
        (`custody.app.settings.locate`).

        Raises InputError for a bad custody.toml.
        """
        at = locate(home, db, vault)
        return cls(at.root, at.db_url, at.vault, at.vault_source, at.party)

    @property
    def keystore(self) -> KeyStore:
        return KeyStore(self.root / KEYS_FOLDER)

    @property
    def vault_root(self) -> Path:
        """The home's own evidence store folder (the default; see `Custody.vault_root`)."""
        return self.root / "vault"


def _usage(check: Callable[[str], str], name: str) -> str:
    """`check(name)`, its FormatError turned into a UsageError (a bad argument: exit 2)."""
    try:
        return check(name)
    except FormatError as exc:
        raise UsageError(exc.message, hint=exc.hint) from None


def _create_private_db(url: str) -> None:
    """Create an empty SQLite database file at `url` with mode 0600, if it is one and missing.

    SQLite gives the `-wal` and `-shm` files it creates later the mode of the
    database file, so the whole database stays private to its owner.
    """
    if not url.startswith("sqlite:///"):
        return
    path = Path(url[len("sqlite:///") :])
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StorageError(f"cannot create the custody database {path}: {exc.strerror}") from exc
    os.close(fd)


def init(home: Home, origin: str, passphrase: PassphraseFn) -> VerifierKey:
    """Create the home, the database and the log's own signing key.

    The log key's name is the log origin (C2SP tlog-checkpoint), which must keep
    the origin rule (`custody.model.names.check_origin`).  Everything is checked
    before anything is written; the home, `custody.db` and `vault/` are created
    without access for the group or others.  The key is written only after the
    database records it as pending, so that a re-run after a crash between the two
    finishes with that key (given its passphrase) instead of refusing it.

    Raises UsageError for a bad origin or if the home or database is initialised
    already, KeyFileError for a wrong passphrase when finishing an interrupted
    init, StorageError when the home or database cannot be written.
    """
    _usage(check_origin, origin)
    keystore = home.keystore
    key_path = keystore.path(origin)  # a name too long for a file fails here, not half-way
    secret = passphrase(f"New passphrase for the log key '{origin}': ")  # before any write
    new_keyfile = seal(Signer.generate(origin), "log", "", secret)
    try:
        home.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StorageError(f"cannot create the custody home {home.root}: {exc.strerror}") from exc
    _create_private_db(home.db_url)
    # Files SQLite creates while opening (the -wal and -shm) get no group or other
    # access either, whatever the caller's umask.
    umask = os.umask(0o077)
    try:
        store = Store.open(home.db_url, create=True)
    finally:
        os.umask(umask)
    try:
        existing = store.meta("origin")
        if existing is not None:
            raise UsageError(
                f"{home.root} is already initialised (log origin '{existing}')",
                hint="use another --home or --db for a new log",
            )
        _create_vault(home)
        pending = store.meta(_PENDING)
        written = False
        if keystore.exists(origin):
            keyfile = keystore.load(origin)
            if pending is None or keyfile.verifier_key.encode() != pending:
                raise UsageError(f"a key for '{origin}' already exists in {keystore.root}")
            # The key of this database's own interrupted init: finish with it.
            try:
                keyfile.unlock(secret, str(key_path))
            except KeyFileError as exc:
                raise KeyFileError(
                    exc.message,
                    hint=f"an interrupted 'custody init' left {key_path}: give the "
                    "passphrase chosen then, or delete that file (it never signed anything) "
                    "and run init again",
                ) from None
        else:
            keyfile = new_keyfile
            _forget_pending_key(store, keystore, pending)
            with store.writer() as s:
                s.merge(Meta(key=_PENDING, value=keyfile.verifier_key.encode()))
            crash_point("init.pending-committed")
            keystore.write(keyfile)
            written = True
            crash_point("init.key-written")
        try:
            with store.writer() as s:
                if s.get(Meta, "origin") is not None:
                    raise UsageError("another process initialised this database meanwhile")
                s.add(Meta(key="origin", value=origin))
                s.add(Meta(key="log_vkey", value=keyfile.verifier_key.encode()))
                if home.vault is not None:
                    s.add(Meta(key=META_VAULT, value=str(home.vault)))
                marker = s.get(Meta, _PENDING)
                if marker is not None:
                    s.delete(marker)
        except BaseException:
            # The key never became the log's: remove it so that a re-run starts afresh.
            if written:
                key_path.unlink(missing_ok=True)
            raise
        crash_point("init.committed")
        _write_operator_settings(home)
        return keyfile.verifier_key
    finally:
        store.close()


# A shared evidence store made by `init --vault DIR`: the owner and the group of the
# share read and write it (set-group-ID, so what is made inside keeps the group);
# others nothing.  docs/deployment.md, "Shared storage".
SHARED_VAULT_MODE = 0o2770


def _create_vault(home: Home) -> None:
    """Create the evidence store folder: the home's own `vault/` (0700), or the shared
    one named by --vault (SHARED_VAULT_MODE, parents too) when it is missing; an
    existing shared folder is used as it is."""
    if home.vault is None:
        try:
            home.vault_root.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageError(
                f"cannot create the evidence store {home.vault_root}: {exc.strerror}"
            ) from exc
        return
    if home.vault.is_dir():
        return
    try:
        home.vault.parent.mkdir(parents=True, exist_ok=True)
        home.vault.mkdir(mode=0o700)
        os.chmod(home.vault, SHARED_VAULT_MODE)  # mkdir's mode passes through the umask
    except FileExistsError:
        if not home.vault.is_dir():
            raise StorageError(f"the evidence store {home.vault} is not a folder") from None
    except OSError as exc:
        raise StorageError(
            f"cannot create the evidence store {home.vault}: {exc.strerror}",
            hint="create the shared folder first (see docs/deployment.md) and pass it again",
        ) from exc


def url_password(url: str) -> str | None:
    """The password written in a database URL (`scheme://user:password@host/db`), if any.

    Raises UsageError when `url` is not a database URL.
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        parts, password = None, None
    if parts is None or not re.fullmatch(r"[a-z][a-z0-9+]*", parts.scheme) or "://" not in url:
        raise UsageError(
            f"{url!r} is not a database URL",
            hint="e.g. postgresql+psycopg://alice@db.example/custody or sqlite:////srv/custody.db",
        )
    return password


def _write_operator_settings(home: Home) -> None:
    """After `init --db URL` / `--vault DIR`: the operator's custody.toml names them, so
    later commands need neither flag (a URL with a password is left out)."""
    default_db = sqlite_url(home.root / "custody.db")
    db = home.db_url if home.db_url != default_db else None
    if db is not None and url_password(db) is not None:
        db = None  # never in clear in a file: the caller warns (see `init_settings_note`)
    if db is None and home.vault is None:
        return
    old = load_settings(home.root)
    write_settings(
        home.root,
        Settings(
            db=db or old.db,
            vault=str(home.vault) if home.vault is not None else old.vault,
            party=old.party,
        ),
    )


# The meta row naming the log key an init has started to write (see `init`).
_PENDING = "init_pending_vkey"


def _forget_pending_key(store: Store, keystore: KeyStore, pending: str | None) -> None:
    """Remove the key file of an earlier interrupted init that named another origin.

    Such a key was recorded as pending in this database and never became any log's
    key, so it has signed nothing; other key files are left alone.
    """
    if pending is None:
        return
    try:
        vkey = VerifierKey.parse(pending)
        if keystore.exists(vkey.name) and keystore.load(vkey.name).verifier_key == vkey:
            keystore.path(vkey.name).unlink()
    except (CustodyError, OSError):
        return  # not ours to judge: leave whatever is there


@dataclass(frozen=True)
class Joined:
    """What `join` did: the log found there (compare its key out of band), the
    settings file written, and the evidence store this home will use (`vault_note`:
    why it may not be usable yet, or None)."""

    origin: str
    log_key: VerifierKey
    settings: Path
    vault: Path
    vault_note: str | None


def join(home: Home, db: str, vault: Path | None, party: str | None) -> Joined:
    """Make a personal home attached to the existing log at `db` (`custody join`).

    Writes `custody.toml` (db, and vault and party if given) and creates `keys/`;
    never creates a log or writes to the database.  A URL with a password is
    refused: custody.toml would keep it in clear (use ~/.pgpass or PGPASSWORD).

    Raises UsageError if the home exists already, for a bad URL or one with a
    password, or a bad party name; StorageError if the database cannot be opened or
    holds no log, or `vault` is not a folder.
    """
    if url_password(db) is not None:
        raise UsageError(
            "the database URL holds a password, which custody.toml would keep in clear",
            hint="give the URL without it and put the password in ~/.pgpass (mode 0600) or "
            "PGPASSWORD; see docs/deployment.md",
        )
    if party is not None:
        _usage(check_party_name, party)
    marks = [settings_path(home.root), home.root / "custody.db", home.keystore.root]
    taken = [p for p in marks if p.exists()]
    if taken:
        raise UsageError(
            f"{home.root} is a custody home already ({taken[0].name} is there)",
            hint="join with another --home (a home is personal: one per user and log)",
        )
    if vault is not None:
        vault = vault.expanduser().absolute()
        if not vault.is_dir():
            raise StorageError(
                f"the evidence store {vault} (from --vault) is not a folder",
                hint="is the share mounted? give where this machine mounts it",
            )
    store = Store.open(db)
    try:
        origin = store.meta("origin")
        vkey = store.meta("log_vkey")
        recorded = store.meta(META_VAULT)
    finally:
        store.close()
    if origin is None or vkey is None:
        raise StorageError(
            f"the database {db} holds no custody log",
            hint="the log operator creates it with 'custody init --origin NAME --db URL "
            "--vault DIR'; check the URL",
        )
    note = None
    if vault is not None:
        used = vault
    elif recorded is not None:
        used = Path(recorded)
        if not used.is_dir():
            note = (
                f"the log's evidence store {used} is not there on this machine: mount the "
                "share there, or re-run with --vault DIR where this machine mounts it"
            )
    else:
        used = home.vault_root
        note = (
            "the log records no shared evidence store (it was made without --vault): this "
            f"home uses its own {used}; pass --vault DIR to share the operator's"
        )
    try:
        home.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        home.keystore.root.mkdir(mode=0o700)
    except OSError as exc:
        raise StorageError(f"cannot create the custody home {home.root}: {exc.strerror}") from exc
    path = write_settings(
        home.root, Settings(db=db, vault=None if vault is None else str(vault), party=party)
    )
    return Joined(origin, VerifierKey.parse(vkey), path, used, note)


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
        self.recorded_vault = self.store.meta(META_VAULT)

    @property
    def vault_root(self) -> Path:
        """The evidence store this home uses: --vault / CUSTODY_VAULT / custody.toml if
        given, else the one the log records (`init --vault`), else `<home>/vault`.

        Raises StorageError when a named store is not there (an unmounted share).
        """
        if self.home.vault is not None:
            path, source = self.home.vault, self.home.vault_source
        elif self.recorded_vault is not None:
            path, source = Path(self.recorded_vault), "the log's database"
        else:
            return self.home.vault_root  # a one-machine home: its own, made on demand
        if not path.is_dir():
            raise StorageError(
                f"the evidence store {path} (from {source}) is not there",
                hint="is the share mounted? pass --vault DIR or set CUSTODY_VAULT to where "
                "this machine mounts it",
            )
        return path

    def holds_log_key(self) -> bool:
        """Whether this home holds the log's private key (the log operator's home)."""
        return self.keystore.exists(self.origin)

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

    def log_signer(self, passphrase: PassphraseFn, *, what: str = "sign checkpoints") -> Signer:
        """Unlock the log's own key, which only the log operator's home holds.

        Raises UsageError naming the log key when this home does not hold it
        (`what` says what needed it), KeyFileError for a wrong passphrase.
        """
        if not self.holds_log_key():
            raise UsageError(
                f"only the log operator, whose home holds the log key '{self.origin}', can {what}",
                hint="run it in the log operator's home (its keys/ folder holds the log key); "
                "investigators need not: the operator signs checkpoints, e.g. with "
                "'custody log checkpoint --every 60'",
            )
        return self.keystore.unlock(self.origin, passphrase)

    def signer(self, name: str, passphrase: PassphraseFn) -> Signer:
        """Unlock party `name`'s private key, checking it is the party's active key."""
        self.party(name)  # an unknown party is told before any passphrase is asked
        return self.checked_signer(name, self.keystore.unlock(name, passphrase))

    def checked_signer(self, name: str, signer: Signer) -> Signer:
        """`signer` (party `name`'s key, unlocked already: `custody.app.early.unlock_ahead`),
        once it is checked to be the party's active key."""
        party = self.party(name)
        if signer.verifier_key.encode() != party.vkey:
            raise UsageError(
                f"the key file for '{name}' is not the key registered on the log",
                hint="the key was rotated: use the current key file",
            )
        if party.status != "active":
            # A revoked key is a custody rule's refusal (exit 4), whatever the command.
            raise PolicyError(
                f"refused: the key of '{name}' is {party.status} and may not sign",
                hint=f"sign with another party's key, or register a new key for '{name}'",
            )
        return signer

    def signer_meanwhile(self, name: str, passphrase: PassphraseFn) -> Future[Signer]:
        """`signer`, run in a thread: the caller starts its work (an ingest copies and
        hashes its files) while the key is unlocked, Argon2id taking ~0.15 s outside the
        GIL.  Its errors come from ``.result()``.  Only for a `passphrase` that never
        prompts (a file, the environment): a prompt belongs to the calling thread.
        """
        future: Future[Signer] = Future()

        def unlock() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self.signer(name, passphrase))
            except BaseException as exc:
                future.set_exception(exc)

        threading.Thread(target=unlock, name="custody-unlock", daemon=True).start()
        return future

    def unregistered_key_file(self, name: str) -> bool:
        """Whether `name` has a key file here but is not a party of this log.

        `new_key` registers such a file instead of creating a new key.  Raises
        UsageError if `name` breaks the party-name rule.
        """
        _usage(check_party_name, name)
        return self.keystore.exists(name) and self.store.party(name) is None

    def new_key(
        self,
        name: str,
        role: str,
        org: str,
        passphrase: PassphraseFn,
        now: datetime,
        held_by: str | None = None,
    ) -> tuple[KeyFile, int]:
        """Create a party key and register it on the log with a self-signed `key` entry.

        All or nothing: the name (`custody.model.names.check_party_name`), role,
        organisation and passphrase are checked and the entry is built and signed
        before the key file is written, and the file is removed again if the entry
        is not committed.  A key file for `name` that is not registered on this log
        (left by an interrupted `key new`, or this party's key from another log) is
        registered as it is when its role and organisation are the ones given and
        the passphrase opens it.

        Raises UsageError for a bad or taken name (one differing from a registered
        party's only by case or by look-alike characters included), a bad role or
        organisation, or a key file that does not fit; KeyFileError for a wrong
        passphrase of an existing key file; the append's errors otherwise.
        """
        _usage(check_party_name, name)
        from custody.model.types import kept_fields

        # Where the private key is kept (entry.md §key): the other keys in this home now.
        try:
            kept = kept_fields(
                name,
                self.keystore.names(),
                self.origin if self.holds_log_key() else None,
                held_by,
            )
        except FormatError as exc:
            raise UsageError(
                exc.message.replace("key entry field 'held-by'", "--held-by"),
                hint="--held-by names the party whose home keeps this key",
            ) from None
        if role not in ROLES:  # a party's roles (the key file's 'log' is the log key's)
            raise UsageError(f"role {role!r} is not one of: {', '.join(ROLES)}")
        if name == self.origin:
            raise UsageError(f"'{name}' is the log's own key name")
        known = self.store.party(name)
        if known is not None:
            raise UsageError(
                f"party '{name}' is already registered on this log",
                hint=f"its key entry is log entry {known.entry_idx}",
            )
        alike = find_confusable(name, [p.name for p in self.store.parties()] + [self.origin])
        if alike is not None:
            raise UsageError(
                f"party name '{name}' looks like '{alike}', already on this log",
                hint="choose a name that cannot be mistaken for another",
            )
        self.store.require_writable()  # a read-only home: fail before a key file is written
        path = self.keystore.path(name)
        leftover = self.keystore.exists(name)
        if leftover:
            keyfile = self.keystore.load(name)
            if keyfile.name != name:
                raise UsageError(
                    f"the key file {path} holds the key of '{keyfile.name}', not '{name}'",
                    hint="move the file away to create a new key",
                )
            if (keyfile.role, keyfile.org) != (role, org):
                raise UsageError(
                    f"a key file for '{name}' exists ({path}) with role {keyfile.role} and "
                    f"org {keyfile.org!r}, but '{name}' is not registered on this log",
                    hint="re-run with that --role and --org to register it, or move the file "
                    "away to create a new key",
                )
            try:
                signer = keyfile.unlock(passphrase(f"Passphrase for key '{name}': "), str(path))
            except KeyFileError as exc:
                raise KeyFileError(
                    exc.message,
                    hint=f"'{name}' has a key file but is not registered on this log (an "
                    "interrupted 'key new'?): give that key's passphrase to register it, or "
                    "move the file away to create a new key",
                ) from None
        else:
            signer = Signer.generate(name)
            keyfile = seal(signer, role, org, passphrase(f"New passphrase for key '{name}': "))
        entry = Entry.build(
            "key",
            now,
            [
                ("action", "register"),
                ("party", name),
                ("role", role),
                ("org", org or None),
                ("vkey", keyfile.verifier_key.encode()),
                *kept,
            ],
        )
        data = sign_entry(entry, [signer])
        if not leftover:
            self.keystore.write(keyfile)
            crash_point("key.file-written")
        try:
            index = append_indexed_one(self.log, data)
        except BaseException:
            # The key never reached the log: remove the file written for it, so the
            # name is free (a file that was here before is left as it was).
            if not leftover:
                path.unlink(missing_ok=True)
            raise
        crash_point("key.entry-committed")
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
