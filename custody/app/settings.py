"""A home's settings file, `custody.toml`: database URL, evidence store, default party.

Order (docs/deployment.md, "Settings"): a command-line flag wins, then the
environment variable (`CUSTODY_DB`, `CUSTODY_VAULT`, `CUSTODY_PARTY`), then
`custody.toml` in the home, then the built-in default (the home's `custody.db`;
the evidence store the log records, else `<home>/vault`; no default party).

The file is TOML with at most three string keys, `db`, `vault` and `party`.  It
is read with `tomllib`; `write_settings` writes it with a small writer of those
keys (basic strings, every character TOML requires escaped).  A file that is not
that is refused in one line naming the file and the key (InputError).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from custody.errors import InputError, StorageError, UsageError

SETTINGS_FILE = "custody.toml"
KEYS = ("db", "vault", "party")
# A settings file holds three short lines; anything much larger is not one.
MAX_SETTINGS_FILE = 64 * 1024


@dataclass(frozen=True)
class Settings:
    """What a home's custody.toml says (None: not set)."""

    db: str | None = None
    vault: str | None = None
    party: str | None = None


def settings_path(root: Path) -> Path:
    return root / SETTINGS_FILE


def parse_settings(data: bytes, where: str) -> Settings:
    """The settings in `data` (the bytes of custody.toml at `where`).

    Raises InputError naming `where` (and the key) for a file that is not UTF-8
    TOML, holds a key other than db/vault/party, or a value that is not a
    non-empty one-line string.
    """
    if len(data) > MAX_SETTINGS_FILE:
        raise InputError(f"{where} is too large to be a custody settings file")
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{where} is not UTF-8 text", hint="rewrite it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(
            f"{where} is not valid TOML: {exc}", hint="fix the file, or delete it and re-run join"
        ) from None
    values: dict[str, str] = {}
    for key, value in doc.items():
        if key not in KEYS:
            raise InputError(
                f"{where}: unknown key {key!r}", hint=f"the keys are: {', '.join(KEYS)}"
            )
        if not isinstance(value, str) or not value or "\n" in value or "\0" in value:
            raise InputError(
                f"{where}: key {key!r} must be a non-empty one-line string",
                hint=f'write it as {key} = "…"',
            )
        values[key] = value
    return Settings(**values)


def load_settings(root: Path) -> Settings:
    """The settings of the home at `root` (all None when it has no custody.toml).

    Raises InputError as `parse_settings`, or when the file cannot be read.
    """
    path = settings_path(root)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SETTINGS_FILE + 1)
    except FileNotFoundError:
        return Settings()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    return parse_settings(data, str(path))


def _toml_string(value: str) -> str:
    """`value` as a TOML basic string (every control character, `"` and `\\` escaped)."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            # A path whose bytes are not UTF-8 (os.fsdecode's surrogates): TOML holds
            # only Unicode text.
            raise UsageError(
                f"{value.encode('utf-8', 'surrogateescape')!r} is not UTF-8 text and cannot "
                "be written to custody.toml",
                hint="use a path of UTF-8 characters",
            )
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def render_settings(settings: Settings) -> str:
    """The text of a custody.toml holding `settings` (keys that are None are left out)."""
    lines = ['# custody settings of this home (docs/deployment.md, "Settings").']
    for key in KEYS:
        value = getattr(settings, key)
        if value is not None:
            lines.append(f"{key} = {_toml_string(value)}")
    return "\n".join(lines) + "\n"


def write_settings(root: Path, settings: Settings) -> Path:
    """Write custody.toml in the home at `root` (mode 0600), durably; its path.

    Raises StorageError when it cannot be written.
    """
    from custody.infra.files import replace_durably

    path = settings_path(root)
    try:
        replace_durably(path, render_settings(settings).encode("utf-8"), mode=0o600)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


@dataclass(frozen=True)
class Resolved:
    """A setting's value and where it came from ("--db", "CUSTODY_DB", the file, …)."""

    value: str | None
    source: str


def resolve(
    flag: str | None, flag_name: str, env: str, file_value: str | None, path: Path
) -> Resolved:
    """The value of one setting: the flag, then the environment variable, then the file."""
    if flag:
        return Resolved(flag, flag_name)
    from_env = os.environ.get(env)
    if from_env:
        return Resolved(from_env, env)
    if file_value:
        return Resolved(file_value, str(path))
    return Resolved(None, "default")


# The names of the environment variables, and the database file a home uses when none
# is named (custody.app.home re-exports them; `locate` is the one place they are read).
ENV_HOME = "CUSTODY_HOME"
ENV_DB = "CUSTODY_DB"
ENV_VAULT = "CUSTODY_VAULT"
ENV_PARTY = "CUSTODY_PARTY"
DB_FILE = "custody.db"
#: the folder of a home that holds its parties' key files (`custody.infra.keystore`)
KEYS_FOLDER = "keys"


@dataclass(frozen=True)
class Located:
    """Where a home is and what it is set to use (`locate`)."""

    root: Path
    #: the database URL; the home's own SQLite file unless one is named
    db_url: str
    #: an explicitly named evidence store (flag, environment, custody.toml), or None
    vault: Path | None
    #: where `vault` was named ("--vault", "CUSTODY_VAULT", the file, or "default")
    vault_source: str
    party: str | None


def locate(
    home: str | Path | None = None, db: str | None = None, vault: str | Path | None = None
) -> Located:
    """Resolve `--home`/`CUSTODY_HOME`, then `--db`, `--vault` and the default party:
    flag > environment variable > the home's custody.toml > built-in default.

    Reads only custody.toml: no database is opened (`custody.app.home.Home.locate`
    wraps this; the fast paths of `custody log key` and `custody ingest` use it before
    the database layer is imported).

    Raises InputError for a bad custody.toml.
    """
    root = Path(home or os.environ.get(ENV_HOME) or Path.home() / ".custody").expanduser()
    file = load_settings(root)
    where = settings_path(root)
    # The same URL form as custody.infra.store.sqlite_url (a contract test holds them equal).
    url = resolve(db, "--db", ENV_DB, file.db, where).value or f"sqlite:///{root / DB_FILE}"
    v = resolve(str(vault) if vault else None, "--vault", ENV_VAULT, file.vault, where)
    vault_path = None
    if v.value is not None:
        vault_path = Path(v.value).expanduser()
        if not vault_path.is_absolute():
            # Relative to where it was said: the working directory, or the home.
            base = root if v.source == str(where) else Path.cwd()
            vault_path = base / vault_path
    party = resolve(None, "", ENV_PARTY, file.party, where).value
    return Located(root, url, vault_path, v.source, party)
