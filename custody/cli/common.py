"""What every command module of the CLI shares: options, the clock, passphrases, output.

This module imports no sibling CLI module, and nothing heavy at import time: a
command module builds its typer commands from the option types here when
`custody --help` runs, so the database layer (SQLAlchemy), fpdf2, rich and the
crypto libraries are imported only inside the commands that use them
(tests/cli/test_startup.py checks it).
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from custody.errors import InputError, UsageError

if TYPE_CHECKING:
    from custody.app.home import Custody

ENV_PASSPHRASE = "CUSTODY_PASSPHRASE"

# -- shared options ---------------------------------------------------------------

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Custody home folder (keys, evidence, database). "
        "Default: $CUSTODY_HOME or ~/.custody.",
        show_default=False,
    ),
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (SQLAlchemy), e.g. postgresql+psycopg://… "
        "Default: $CUSTODY_DB or the SQLite file in the home.",
        show_default=False,
    ),
]
VaultOpt = Annotated[
    Path | None,
    typer.Option(
        "--vault",
        help="Evidence store folder, where this machine reaches it. Default: $CUSTODY_VAULT, "
        "custody.toml, the one the log records, or the home's vault/.",
        show_default=False,
    ),
]
PassFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="Read key passphrases from this file (first line) "
        "instead of $CUSTODY_PASSPHRASE or a prompt.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ItemArg = Annotated[
    str, typer.Argument(help="Exhibit number (CASE/NNNN) or BLAKE3 digest (prefix).")
]
CaseOpt = Annotated[
    str | None, typer.Option("--case", help="The case, where a digest prefix is ambiguous.")
]

# The most a small input file (a checkpoint, a proof, a cosigned note) may weigh.
MAX_SMALL_FILE = 1 << 20
# The most a --passphrase-file may weigh (docs/spec/keyfile.md): one line.
MAX_PASSPHRASE_FILE = 1024
# The largest log index or tree size an option may name: a log's indices are SQL
# BIGINTs (SQLite's INTEGER), so nothing larger can exist; bounding them turns a
# typo of 25 digits into a usage error instead of an integer overflow.
MAX_INDEX = (1 << 63) - 1
# The most worker processes an option may ask for.
MAX_JOBS = 256


def now() -> datetime:
    """The time commands claim in the entries they sign: now, in UTC, whole seconds."""
    return datetime.now(UTC).replace(microsecond=0)


def passphrases(passphrase_file: Path | None) -> Callable[[str], str]:
    """Where passphrases come from: --passphrase-file, then $CUSTODY_PASSPHRASE, then a prompt.

    The returned function raises InputError when the file cannot be read, is empty
    or is larger than MAX_PASSPHRASE_FILE,
    and UsageError when a prompt is needed but there is no terminal, or when a new
    passphrase and its repetition differ.
    """

    def get(prompt: str) -> str:
        if passphrase_file is not None:
            try:
                with passphrase_file.open("rb") as f:
                    raw = f.read(MAX_PASSPHRASE_FILE + 1)
            except OSError as exc:
                raise InputError(f"cannot read --passphrase-file {passphrase_file}: {exc}") from exc
            if len(raw) > MAX_PASSPHRASE_FILE:
                # Reading on would hang on /dev/zero or a never-ending pipe.
                raise InputError(
                    f"--passphrase-file {passphrase_file} is larger than "
                    f"{MAX_PASSPHRASE_FILE} bytes: it should hold one line, the passphrase"
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"cannot read --passphrase-file {passphrase_file}: {exc}") from exc
            line = text.splitlines()[0] if text else ""
            if not line:
                raise InputError(f"--passphrase-file {passphrase_file} is empty")
            return line
        env = os.environ.get(ENV_PASSPHRASE)
        if env:
            return env
        if not sys.stdin.isatty():
            raise UsageError(
                "a key passphrase is needed but there is no terminal to ask on",
                hint=f"set {ENV_PASSPHRASE} or pass --passphrase-file FILE",
            )
        first = getpass.getpass(prompt)
        if prompt.startswith("New passphrase") and getpass.getpass("Repeat it: ") != first:
            raise UsageError("the two passphrases differ")
        return first

    return get


def open_home(home: Path | None, db: str | None, vault: Path | None = None) -> Custody:
    """The custody home at --home/--db/--vault (or their defaults), opened.

    Imports the database layer, so only commands that need a home call it.
    Raises StorageError (via `Home.locate` and `Custody`) when there is no home
    there or its database cannot be opened, InputError for a bad custody.toml.
    """
    from custody.app.home import Custody, Home

    return Custody(Home.locate(home, db, vault))


def party_or_default(given: str | None, c: Custody, option: str = "--by") -> str:
    """The party an option names, else the home's default party (CUSTODY_PARTY, then
    `party` in custody.toml); UsageError when neither says."""
    if given:
        return given
    if c.home.party:
        return c.home.party
    raise UsageError(
        f"{option} is required: which party signs?",
        hint=f'pass {option} NAME, or set CUSTODY_PARTY or party = "NAME" in the home\'s '
        "custody.toml",
    )


def emit_json(obj: Any) -> None:
    """Print `obj` as indented JSON with sorted keys, one document."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_out(data: bytes, out: Path | None) -> None:
    """Write `data` to `out` (saying so on stderr), or to stdout when `out` is None.

    Raises InputError when the file cannot be written.
    """
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}") from exc
    typer.echo(f"wrote {out}", err=True)


def b64(b: bytes) -> str:
    """Standard base64 of `b`, as text."""
    return base64.b64encode(b).decode()


def read_input(path: Path, what: str) -> bytes:
    """The bytes of an input file; InputError naming `what` if it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from exc


def read_small(path: Path, what: str) -> bytes:
    """The bytes of a small input file (at most MAX_SMALL_FILE).

    Raises InputError naming `what` when it cannot be read or is too large to be one.
    """
    from custody.infra.vault import display_path

    try:
        with path.open("rb") as f:
            data = f.read(MAX_SMALL_FILE + 1)
    except OSError as exc:
        raise InputError(f"cannot read {what} {display_path(path)}: {exc.strerror}") from exc
    if len(data) > MAX_SMALL_FILE:
        raise InputError(f"{what} {display_path(path)} is too large to be one")
    return data


class ProgressBar:
    """A transient rich progress bar on stderr, in bytes (callers show it only on a terminal)."""

    def __init__(self, what: str) -> None:
        from rich.progress import DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self._progress = Progress(
            TextColumn(what), DownloadColumn(), TransferSpeedColumn(), transient=True
        )
        self._task = self._progress.add_task(what, total=None)
        self._progress.start()
        self._running = True

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._progress.stop()
