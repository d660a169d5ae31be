"""The custody command line: a thin layer over `custody.home` and friends.

This module parses arguments, reads the clock and passphrases, calls the
library and prints.  `main()` is the one place that turns a CustodyError into
a one-line message and an exit code (docs/errors.md): 0 ok, 1 verification
failed, 2 usage error, 3 input or storage problem.  No traceback reaches a user
(set CUSTODY_DEBUG=1 to see one for an internal error).
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
from typing import Annotated, Any, NoReturn

import typer

from custody import __version__
from custody.errors import EXIT_INPUT, EXIT_USAGE, CustodyError, InputError, UsageError
from custody.home import Custody, Home, init

ENV_PASSPHRASE = "CUSTODY_PASSPHRASE"

app = typer.Typer(
    name="custody",
    help="Forensic chain of custody for camera footage: a write-once evidence store and an "
    "append-only, signed Merkle log that anyone can verify offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
key_app = typer.Typer(
    help="Party keys: create, list and show (Ed25519, encrypted at rest).", no_args_is_help=True
)
log_app = typer.Typer(
    help="The log itself: checkpoints, entries, proofs, full verification.", no_args_is_help=True
)
app.add_typer(key_app, name="key")
app.add_typer(log_app, name="log")

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


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def passphrases(passphrase_file: Path | None) -> Callable[[str], str]:
    """Where passphrases come from: --passphrase-file, then $CUSTODY_PASSPHRASE, then a prompt."""

    def get(prompt: str) -> str:
        if passphrase_file is not None:
            try:
                text = passphrase_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
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


def _open(home: Path | None, db: str | None) -> Custody:
    return Custody(Home.locate(home, db))


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _write_out(data: bytes, out: Path | None) -> None:
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}") from exc
    typer.echo(f"wrote {out}", err=True)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


# -- top level ----------------------------------------------------------------------


def _version(value: bool) -> None:
    if value:
        typer.echo(f"custody {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """custody: record, sign and verify the chain of custody of camera footage."""


@app.command("init")
def init_cmd(
    origin: Annotated[
        str,
        typer.Option(
            "--origin",
            help="The log's name, e.g. 'metro-police.example/custody'. No spaces or '+'.",
        ),
    ],
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Create a custody home: the database, the evidence store and the log's signing key."""
    h = Home.locate(home, db)
    vkey = init(h, origin, passphrases(passphrase_file))
    typer.echo(f"initialised custody home {h.root}")
    typer.echo(f"log origin:       {origin}")
    typer.echo(f"log verifier key: {vkey.encode()}")
    typer.echo("Give the verifier key to anyone who will verify this log (e.g. defence counsel).")


# -- keys -----------------------------------------------------------------------------


@key_app.command("new")
def key_new(
    name: Annotated[str, typer.Argument(help="Party name: no spaces, no '+'.")],
    role: Annotated[str, typer.Option("--role", help="owner, agency, lab, court or defence.")],
    org: Annotated[str, typer.Option("--org", help="Organisation, e.g. 'Metro Police'.")] = "",
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Create a party's Ed25519 key (encrypted with a passphrase) and register it on the log."""
    with _open(home, db) as c:
        keyfile, index = c.new_key(name, role, org, passphrases(passphrase_file), _now())
    typer.echo(f"created key '{name}' ({role}) and registered it as log entry {index}")
    typer.echo(f"verifier key: {keyfile.verifier_key.encode()}")


@key_app.command("list")
def key_list(home: HomeOpt = None, db: DbOpt = None, json_: JsonOpt = False) -> None:
    """List the parties registered on the log."""
    with _open(home, db) as c:
        rows = c.parties()
        local = set(c.keystore.names())
    items: list[dict[str, Any]] = [
        {
            "name": r.name,
            "role": r.role,
            "org": r.org,
            "status": r.status,
            "entry": r.entry_idx,
            "vkey": r.vkey,
            "private_key_here": r.name in local,
        }
        for r in rows
    ]
    if json_:
        _emit_json(items)
        return
    if not items:
        typer.echo("no parties yet: create one with 'custody key new NAME --role ROLE'")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "role", "org", "status", "entry", "private key here")
    for i in items:
        table.add_row(
            i["name"],
            i["role"],
            i["org"],
            i["status"],
            str(i["entry"]),
            "yes" if i["private_key_here"] else "no",
        )
    Console().print(table)


@key_app.command("show")
def key_show(name: str, home: HomeOpt = None, db: DbOpt = None, json_: JsonOpt = False) -> None:
    """Print a party's verifier key (safe to share)."""
    with _open(home, db) as c:
        row = c.party(name)
    if json_:
        _emit_json(
            {
                "name": row.name,
                "role": row.role,
                "org": row.org,
                "status": row.status,
                "entry": row.entry_idx,
                "vkey": row.vkey,
            }
        )
    else:
        typer.echo(row.vkey)


# -- log ------------------------------------------------------------------------------


@log_app.command("key")
def log_key(home: HomeOpt = None, db: DbOpt = None) -> None:
    """Print the log's verifier key (give it to verifiers out of band)."""
    with _open(home, db) as c:
        typer.echo(c.log_key.encode())


@log_app.command("checkpoint")
def log_checkpoint(
    out: Annotated[Path | None, typer.Option("--out", help="Also write it to this file.")] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Sign a checkpoint of the log's current tree (C2SP tlog-checkpoint), store and print it."""
    with _open(home, db) as c:
        note = c.log.checkpoint(c.log_signer(passphrases(passphrase_file)))
    if out is not None:
        _write_out(note, out)
    sys.stdout.write(note.decode())


@log_app.command("entry")
def log_entry(
    index: Annotated[int, typer.Argument(help="Entry index (0-based).")],
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Write the exact bytes of one log entry to stdout."""
    with _open(home, db) as c:
        data = c.store.entry(index)
        if data is None:
            raise UsageError(f"the log has no entry {index} (it has {c.log.size()} entries)")
    _write_out(data, None)


@log_app.command("prove")
def log_prove(
    index: Annotated[int, typer.Argument(help="Entry index (0-based).")],
    size: Annotated[
        int | None,
        typer.Option(
            "--size", help="Prove against the stored checkpoint of this size (default: latest)."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the proof here.")] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Write a c2sp.org/tlog-proof@v1 inclusion proof for an entry."""
    with _open(home, db) as c:
        proof = c.log.tlog_proof(index, size)
    _write_out(proof.encode(), out)


@log_app.command("consistency")
def log_consistency(
    old: Annotated[int, typer.Argument(help="Size of the older stored checkpoint.")],
    new: Annotated[int, typer.Argument(help="Size of the newer stored checkpoint.")],
    home: HomeOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Print an RFC 9162 consistency proof between two stored checkpoints."""
    with _open(home, db) as c:
        for size in (old, new):
            c.log.checkpoint_note(size)  # both must be stored checkpoints
        proof = c.log.consistency_proof(old, new)
        old_root = c.store.checkpoint(old)
        new_root = c.store.checkpoint(new)
    assert old_root is not None and new_root is not None
    if json_:
        _emit_json(
            {
                "old_size": old,
                "new_size": new,
                "old_root": _b64(old_root.root),
                "new_root": _b64(new_root.root),
                "proof": [_b64(h) for h in proof],
            }
        )
        return
    typer.echo(f"consistency proof from size {old} to {new} ({len(proof)} hashes)")
    for h in proof:
        typer.echo(_b64(h))


@log_app.command("verify")
def log_verify(
    home: HomeOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", help="Processes for signature checks (default: all cores)."),
    ] = None,
) -> None:
    """Recompute the whole log from its entries and check every signature and checkpoint.

    Exit 0 if everything verifies; exit 1 naming the first bad entry or checkpoint.
    """
    with _open(home, db) as c:
        report = c.log.verify(c.log_key, jobs=jobs)
    if json_:
        _emit_json(
            {
                "verdict": "ok",
                "size": report.size,
                "root": _b64(report.root),
                "checkpoints": report.checkpoints,
                "latest_checkpoint": report.latest_checkpoint,
                "parties": report.parties,
                "signatures": report.signatures,
            }
        )
        return
    typer.echo(
        f"OK: the log verifies: {report.size} entries, {report.signatures} signatures, "
        f"{report.checkpoints} checkpoints"
    )
    typer.echo(f"  root {_b64(report.root)}")
    if report.latest_checkpoint is not None and report.latest_checkpoint < report.size:
        typer.echo(
            f"  note: {report.size - report.latest_checkpoint} entries are newer than "
            "the latest checkpoint; sign one with 'custody log checkpoint'"
        )


# -- the one exit boundary ---------------------------------------------------------------


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"custody: error: {message}\n")
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `custody` console script."""
    try:
        rc = app(args=argv, prog_name="custody", standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except CustodyError as exc:
        _fail(exc.diagnostics(), exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _fail("aborted", EXIT_USAGE)
    except typer.TyperException as exc:
        # Usage errors: name the option or argument, one line, exit 2.
        _fail(exc.format_message().replace("\n", " "), EXIT_USAGE)
    except KeyboardInterrupt:
        _fail("interrupted; nothing half-written was kept (re-run to finish)", 130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # the last line of defence: no traceback for users
        if os.environ.get("CUSTODY_DEBUG"):
            raise
        _fail(
            f"internal error: {type(exc).__name__}: {exc} (set CUSTODY_DEBUG=1 for details "
            "and please report it)",
            EXIT_INPUT,
        )


if __name__ == "__main__":
    main()
