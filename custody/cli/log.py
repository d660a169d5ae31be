"""CLI: `custody log ...`, the log itself: its key, checkpoints, entries, proofs,
full verification, witnesses' cosignatures and entries carried over from other logs.

Thin: parse, call `custody.app.home` / `custody.app.events` / `custody.app.witness`,
print.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import (
    MAX_INDEX,
    MAX_JOBS,
    DbOpt,
    HomeOpt,
    JsonOpt,
    PassFileOpt,
    Progress,
    b64,
    open_home,
    passphrases,
    read_input,
    read_small,
    write_out,
)
from custody.cli.jsonout import emit_json, emit_json_line
from custody.errors import UsageError

log_app = typer.Typer(
    help="The log itself: checkpoints, entries, proofs, full verification.", no_args_is_help=True
)


@log_app.command("key")
def log_key(home: HomeOpt = None, db: DbOpt = None, json_: JsonOpt = False) -> None:
    """Print the log's verifier key (give it to verifiers out of band)."""
    recorded = _recorded_log_key(home, db)
    if recorded is None:
        with open_home(home, db) as c:
            recorded = c.origin, c.log_key.encode()
    origin, vkey = recorded
    if json_:
        emit_json({"origin": origin, "vkey": vkey})
        return
    typer.echo(vkey)


def _recorded_log_key(home: Path | None, db: str | None) -> tuple[str, str] | None:
    """The log's origin and verifier key, read from a home's own SQLite database without
    the database layer (SQLAlchemy takes longer to import than `custody log key` may take).

    Only where nothing is unusual: the database is a SQLite file (by --db, CUSTODY_DB,
    custody.toml or default, as `Home.locate` resolves it), readable, at the current
    schema, with a valid key recorded (`custody.infra.quickmeta`).  Anything else returns
    None, and the caller opens the home as every command does, which migrates, explains
    or refuses.
    """
    from custody.app.settings import locate
    from custody.errors import CustodyError
    from custody.infra.quickmeta import read_meta
    from custody.tlog.note import VerifierKey

    try:
        url = locate(home, db).db_url
    except CustodyError:
        return None  # a bad custody.toml: the full path says what is wrong with it
    rows = read_meta(url, ("origin", "log_vkey"))
    if rows is None or "origin" not in rows or "log_vkey" not in rows:
        return None
    origin = rows["origin"]
    try:
        key = VerifierKey.parse(rows["log_vkey"])
    except (CustodyError, ValueError):
        return None
    if key.name != origin:
        return None
    return origin, key.encode()


# The longest pause `log checkpoint --every` takes between checks: a day.
MAX_EVERY = 86400


@log_app.command("checkpoint")
def log_checkpoint(
    out: Annotated[Path | None, typer.Option("--out", help="Also write it to this file.")] = None,
    every: Annotated[
        float | None,
        typer.Option(
            "--every",
            help="Keep running: every SECONDS, sign a checkpoint if the log has grown "
            "(one line per checkpoint; stop with SIGTERM or Ctrl-C).",
            min=0.001,
            max=MAX_EVERY,
            show_default=False,
        ),
    ] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Sign a checkpoint of the log's current tree (C2SP tlog-checkpoint), store and print it.

    Only the log operator's home holds the log key.  With --every, runs until
    SIGTERM or SIGINT, then finishes the checkpoint in progress and exits 0.
    """
    if every is not None:
        if out is not None:
            raise UsageError("--out and --every do not go together: --out writes one checkpoint")
        _sign_every(every, home, db, passphrase_file, json_)
        return
    with open_home(home, db) as c:
        note = c.log.checkpoint(c.log_signer(passphrases(passphrase_file)))
        row = c.store.checkpoint() if json_ else None
    if out is not None:
        write_out(note, out)
    if json_:
        assert row is not None
        emit_json({"size": row.size, "root": b64(row.root), "note": note.decode(), "out": out})
        return
    sys.stdout.write(note.decode())


def _sign_every(
    every: float,
    home: Path | None,
    db: str | None,
    passphrase_file: Path | None,
    json_: bool = False,
) -> None:
    """`log checkpoint --every`: sign whenever the log has grown, until SIGTERM/SIGINT
    (with --json, one JSON object per checkpoint, one per line)."""
    import signal
    import time

    from custody.errors import LockTimeoutError

    stop: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop.append(signum)

    with open_home(home, db) as c:
        signer = c.log_signer(passphrases(passphrase_file))  # the passphrase, asked once
        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            typer.echo(f"signing checkpoints of '{c.origin}' every {every:g} s", err=True)
            while not stop:
                try:
                    latest = c.store.checkpoint()
                    size = c.log.size()
                    if latest is None or latest.size < size:
                        c.log.checkpoint(signer)
                        row = c.store.checkpoint()
                        assert row is not None
                        if json_:
                            emit_json_line({"size": row.size, "root": b64(row.root)})
                        else:
                            typer.echo(f"checkpoint {row.size} {b64(row.root)}")
                        sys.stdout.flush()
                except LockTimeoutError as exc:
                    # The log is busy; the next round tries again.
                    typer.echo(f"custody: warning: {exc.message}; trying again", err=True)
                deadline = time.monotonic() + every
                while not stop and (left := deadline - time.monotonic()) > 0:
                    time.sleep(min(0.2, left))
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    typer.echo("stopped", err=True)


@log_app.command("entry")
def log_entry(
    index: Annotated[int, typer.Argument(help="Entry index (0-based).", min=0, max=MAX_INDEX)],
    home: HomeOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Write the exact bytes of one log entry to stdout."""
    with open_home(home, db) as c:
        data = c.store.entry(index)
        if data is None:
            raise UsageError(f"the log has no entry {index} (it has {c.log.size()} entries)")
    if json_:
        from custody.model.entry import SignedEntry

        signed = SignedEntry.parse(data)
        emit_json(
            {
                "index": index,
                "type": signed.entry.type,
                "time": signed.entry.time,
                "signed_by": list(signed.signer_names),
                "text": data.decode("utf-8"),
            }
        )
        return
    write_out(data, None)


@log_app.command("prove")
def log_prove(
    index: Annotated[int, typer.Argument(help="Entry index (0-based).", min=0, max=MAX_INDEX)],
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            help="Prove against the stored checkpoint of this size (default: latest).",
            min=0,
            max=MAX_INDEX,
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the proof here.")] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Write a c2sp.org/tlog-proof@v1 inclusion proof for an entry."""
    with open_home(home, db) as c:
        proof = c.log.tlog_proof(index, size)
    if json_:
        if out is not None:
            write_out(proof.encode(), out)
        # The checkpoint's second line is its tree size (c2sp.org/tlog-checkpoint).
        tree_size = int(proof.checkpoint.split(b"\n")[1])
        emit_json({"index": index, "size": tree_size, "proof": proof.encode().decode(), "out": out})
        return
    write_out(proof.encode(), out)


@log_app.command("consistency")
def log_consistency(
    old: Annotated[
        int, typer.Argument(help="Size of the older stored checkpoint.", min=0, max=MAX_INDEX)
    ],
    new: Annotated[
        int, typer.Argument(help="Size of the newer stored checkpoint.", min=0, max=MAX_INDEX)
    ],
    home: HomeOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Print an RFC 9162 consistency proof between two stored checkpoints."""
    with open_home(home, db) as c:
        for size in (old, new):
            c.log.checkpoint_note(size)  # both must be stored checkpoints
        proof = c.log.consistency_proof(old, new)
        old_root = c.store.checkpoint(old)
        new_root = c.store.checkpoint(new)
    assert old_root is not None and new_root is not None
    if json_:
        emit_json(
            {
                "old_size": old,
                "new_size": new,
                "old_root": b64(old_root.root),
                "new_root": b64(new_root.root),
                "proof": [b64(h) for h in proof],
            }
        )
        return
    typer.echo(f"consistency proof from size {old} to {new} ({len(proof)} hashes)")
    for h in proof:
        typer.echo(b64(h))


@log_app.command("verify")
def log_verify(
    home: HomeOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            help="Processes for signature checks (default: all cores).",
            min=1,
            max=MAX_JOBS,
        ),
    ] = None,
) -> None:
    """Recompute the whole log from its entries and check every signature and checkpoint.

    Exit 0 if everything verifies; exit 1 naming the first bad entry or checkpoint.
    """
    with open_home(home, db) as c, Progress("log verify") as progress:
        progress.phase(f"{c.log.size()} entries: signatures, tree, checkpoints, state")
        report = c.log.verify(c.log_key, jobs=jobs)
    if json_:
        emit_json(
            {
                "verdict": "ok",
                "verified": True,
                "size": report.size,
                "root": b64(report.root),
                "checkpoints": report.checkpoints,
                "latest_checkpoint": report.latest_checkpoint,
                "parties": report.parties,
                "signatures": report.signatures,
                "time_order": [d.to_json() for d in report.disorder],
            }
        )
        return
    typer.echo(
        f"OK: the log verifies: {report.size} entries, {report.signatures} signatures, "
        f"{report.checkpoints} checkpoints"
    )
    typer.echo(f"  root {b64(report.root)}")
    for found in report.disorder:  # claimed times out of order: reported, not a failure
        typer.echo(f"  note: {found.sentence()}")
    if report.latest_checkpoint is not None and report.latest_checkpoint < report.size:
        typer.echo(
            f"  note: {report.size - report.latest_checkpoint} entries are newer than "
            "the latest checkpoint; sign one with 'custody log checkpoint'"
        )


@log_app.command("add-cosignature")
def log_add_cosignature(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A cosigned checkpoint.")],
    home: HomeOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Keep a witness's cosignature on one of this log's checkpoints (exports include it)."""
    from custody.app.witness import add_cosignature
    from custody.infra.vault import display_path

    note = read_small(file, "cosigned checkpoint")
    with open_home(home, db) as c:
        size, who, path = add_cosignature(c, note)
    if json_:
        emit_json(
            {
                "size": size,
                # `timestamp` is the cosignature's own (Unix seconds); `time` the same in
                # RFC 3339, as every time in custody's JSON.
                "cosignatures": [
                    {"name": n, "party": n, "role": r, "timestamp": t, "time": _unix(t)}
                    for n, r, t in who
                ],
                "file": str(path),
            }
        )
        return
    names = ", ".join(f"{n} ({r})" for n, r, _ in who)
    typer.echo(f"stored the checkpoint of size {size} cosigned by {names}: {display_path(path)}")


def _unix(seconds: int) -> str:
    from datetime import UTC, datetime

    from custody.cli.jsonout import rfc3339

    return rfc3339(datetime.fromtimestamp(seconds, UTC))


@log_app.command("import")
def log_import(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE...", help="Entry files, e.g. from 'custody log entry N > FILE'."
        ),
    ],
    home: HomeOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Append entries from another custody log (exact bytes, e.g. an owner's consent).

    Each is checked like a local entry: signatures by parties this log knows, and
    the custody rules.  Entries already here are skipped.
    """
    from custody.app import events

    datas = [read_input(p, "entry") for p in paths]
    with open_home(home, db) as c:
        results = events.import_entries(c, datas)
    if json_:
        emit_json(
            {
                "imported": [
                    {"file": path, "index": index, "already": index is None}
                    for path, index in zip(paths, results, strict=True)
                ]
            }
        )
        return
    for path, index in zip(paths, results, strict=True):
        typer.echo(f"{path}: " + ("already on this log" if index is None else f"entry {index}"))
