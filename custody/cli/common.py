"""What every command module of the CLI shares: options, the clock, passphrases, output.

This module imports no sibling CLI module, and nothing heavy at import time: a
command module builds its typer commands from the option types here when
`custody --help` runs, so the database layer (SQLAlchemy), fpdf2, rich and the
crypto libraries are imported only inside the commands that use them
(tests/cli/test_startup.py checks it).
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import io
import os
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, TextIO

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
        help="Read key passphrases from this file (first line; '-': standard input) "
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

    `--passphrase-file -` reads the first line of standard input, once, for every key.

    The returned function raises InputError when the file cannot be read, is empty
    or is larger than MAX_PASSPHRASE_FILE,
    and UsageError when a prompt is needed but there is no terminal, or when a new
    passphrase and its repetition differ.
    """

    from_stdin: list[bytes] = []  # `--passphrase-file -`: its first line, read once

    def get(prompt: str) -> str:
        if passphrase_file is not None:
            try:
                if str(passphrase_file) == "-":
                    if not from_stdin:
                        from_stdin.append(sys.stdin.buffer.readline(MAX_PASSPHRASE_FILE + 1))
                    raw = from_stdin[0]
                else:
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


# -- --quiet ------------------------------------------------------------------------------

# Where `--quiet` is recorded: the click context's `meta`, which one invocation's contexts
# share (the root's and its subcommand's), so that nothing outlives the invocation.
QUIET_KEY = "custody.quiet"
# The lines that --quiet lets through on stderr: errors (docs/errors.md) and the pending
# note of exit 75, which says how to finish.
_KEPT_UNDER_QUIET = ("custody: error:", "custody: pending:")


def set_quiet(value: bool) -> None:
    """Record `--quiet` (`-q`) for the command being run (the option's callback)."""
    if value:
        from typer._click.globals import get_current_context

        ctx = get_current_context(silent=True)
        if ctx is not None:
            ctx.meta[QUIET_KEY] = True


def is_quiet() -> bool:
    """Whether `--quiet` was given, before the subcommand or after it."""
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(QUIET_KEY))


class _Muted(io.TextIOBase):
    """A text stream that drops what is written to it, except the lines `keep` accepts.

    Bytes written to its `buffer` (a file sent to stdout, `--out -`) pass through: they
    are the output asked for.  It is not a terminal, so no progress is drawn on it.
    """

    def __init__(self, real: TextIO, keep: tuple[str, ...] = ()) -> None:
        super().__init__()
        self._real = real
        self._keep = keep

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._real, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._real, "errors", None)

    @property
    def buffer(self) -> BinaryIO:
        return self._real.buffer

    @property
    def unmuted(self) -> TextIO:
        """The stream behind it, for what --quiet keeps (`write_error`)."""
        return self._real

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._real.fileno()

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        if self._keep and s.startswith(self._keep):
            self._real.write(s)
        return len(s)

    def flush(self) -> None:
        self._real.flush()


def write_error(line: str) -> None:
    """Write `line` to stderr as a failure that --quiet keeps: one file of a batch that
    failed while the rest went on (the command's own error ends it, through main)."""
    stream = sys.stderr
    getattr(stream, "unmuted", stream).write(line + "\n")


@contextlib.contextmanager
def quieted(stdout: bool) -> Iterator[None]:
    """Under `--quiet`: stderr keeps only errors (and the pending note of exit 75);
    with `stdout`, the text a command prints to say what it did is dropped too (what a
    command was asked to produce, JSON or a file sent to stdout, is kept by the caller
    not passing `stdout`, or goes to the binary buffer, which passes)."""
    saved = sys.stdout, sys.stderr
    sys.stderr = _Muted(sys.stderr, _KEPT_UNDER_QUIET)
    if stdout:
        sys.stdout = _Muted(sys.stdout)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


# -- progress -----------------------------------------------------------------------------


def feedback_on_terminal() -> bool:
    """Whether progress may be drawn: stderr is a terminal and `--quiet` was not given."""
    try:
        return sys.stderr.isatty() and not is_quiet()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def files_text(done: int, total: int | None, elapsed: float | None) -> str:
    """A phase's file count and rate, as Progress shows it: `123/200 files · 45.6 files/s`
    (`123 files · …` when the total is not known; no rate before any time has passed)."""
    count = f"{done}/{total} files" if total is not None else f"{done} files"
    if not elapsed or elapsed <= 0:
        return count
    return f"{count} · {done / elapsed:.1f} files/s"


class Progress:
    """Feedback on stderr for an operation that can take more than two seconds.

    An operation goes through named phases (`phase`): one with a total in bytes shows a
    bar (done / total, speed in bytes/s, time left), one without shows a spinner and the
    time spent in it; one that goes through files (`files=`) also shows how many are
    done and how many per second (`file_done`, `files_text`).  Drawn only on a terminal
    and never under `--quiet` (`feedback_on_terminal`); elsewhere every method does
    nothing (but `echo`, which then prints plainly), so callers need not check.  It is
    transient: the lines are cleared when it stops, and what the command prints stays.
    Use it as a context manager, or call `stop`.  `advance` may be called from any
    thread.
    """

    def __init__(self, what: str, *, enabled: bool | None = None) -> None:
        self.what = what
        self.enabled = feedback_on_terminal() if enabled is None else enabled
        self._progress: Any = None
        self._task: Any = None
        self._files_done = 0
        self._lock = threading.Lock()
        if not self.enabled:
            return
        from rich.console import Console, RenderableType
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            ProgressColumn,
            SpinnerColumn,
            Task,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress
        from rich.text import Text

        class InBytes(ProgressColumn):
            """A column shown only in a phase with a total in bytes (no `0/? bytes`)."""

            def __init__(self, column: ProgressColumn) -> None:
                super().__init__()
                self.column = column

            def render(self, task: Task) -> RenderableType:
                return self.column(task) if task.total is not None else Text("")

        class Files(ProgressColumn):
            """`123/200 files · 45.6 files/s`, in a phase that goes through files."""

            def render(self, task: Task) -> RenderableType:
                if not task.fields.get("by_file"):
                    return Text("")
                done, total = task.fields["files_done"], task.fields["files"]
                return Text(files_text(done, total, task.elapsed), no_wrap=True)

        self._progress = RichProgress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            Files(),
            InBytes(BarColumn()),
            InBytes(DownloadColumn()),
            InBytes(TransferSpeedColumn()),
            InBytes(TimeRemainingColumn()),
            TimeElapsedColumn(),
            console=Console(file=sys.stderr),
            transient=True,
        )
        self._progress.start()

    def phase(
        self, name: str, total: int | None = None, *, files: int | bool | None = None
    ) -> None:
        """Start the phase `name` (the previous one is done); `total`: its size in bytes;
        `files`: how many files it goes through (True: a count not known beforehand),
        each counted by `file_done`."""
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._files_done = 0
        self._task = self._progress.add_task(
            f"{self.what}: {name}",
            total=total,
            by_file=files is not None and files is not False,
            files=None if isinstance(files, bool) else files,
            files_done=0,
        )
        self._progress.refresh()

    def advance(self, n: int) -> None:
        """`n` more bytes of the current phase are done."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)

    def file_done(self, n: int = 1) -> None:
        """`n` more files of the current phase are done."""
        if self._progress is not None and self._task is not None:
            with self._lock:
                self._files_done += n
                self._progress.update(self._task, files_done=self._files_done)

    def echo(self, line: str, *, error: bool = False) -> None:
        """Print `line` (a result of the command: stdout; with `error`, a failure that
        --quiet keeps: stderr) above the progress, which is drawn again below it."""
        if self._progress is None or (not error and not _real_stdout().isatty()):
            # Not on the terminal the progress is drawn on: as the command would.
            if error:
                write_error(line)
            else:
                typer.echo(line, file=_real_stdout())
            return
        self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        if self._progress is not None:
            progress, self._progress = self._progress, None
            progress.stop()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _real_stdout() -> TextIO:
    """Standard output, also while rich draws progress (it then stands in for it)."""
    out = sys.stdout
    return getattr(out, "rich_proxied_file", out)
