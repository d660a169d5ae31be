"""The custody command line: a thin layer over `custody.app.home` and friends.

This module parses arguments, reads the clock and passphrases, calls the
library and prints.  `main()` is the one place that turns a CustodyError into
a one-line message and an exit code (docs/errors.md): 0 ok, 1 verification
failed, 2 usage error, 3 input or storage problem.  No traceback reaches a user
(set CUSTODY_DEBUG=1 to see one for an internal error).
"""

from __future__ import annotations

import base64
import contextlib
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
from custody.app.home import Custody, Home, init
from custody.errors import (
    EXIT_INPUT,
    EXIT_USAGE,
    CustodyError,
    InputError,
    UsageError,
    VerificationError,
)

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
    help="Party keys: create, list, show, rotate, revoke, export, import (Ed25519, encrypted).",
    no_args_is_help=True,
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
ItemArg = Annotated[
    str, typer.Argument(help="Exhibit number (CASE/NNNN) or BLAKE3 digest (prefix).")
]
CaseOpt = Annotated[
    str | None, typer.Option("--case", help="The case, where a digest prefix is ambiguous.")
]


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


# -- cases ----------------------------------------------------------------------------

case_app = typer.Typer(
    help="Cases: every ingested item belongs to one, with an exhibit number.", no_args_is_help=True
)
app.add_typer(case_app, name="case")


@case_app.command("new")
def case_new(
    case_id: Annotated[str, typer.Argument(metavar="ID", help="Case id, e.g. 2026-0142.")],
    title: Annotated[str, typer.Option("--title", help="A short description.")] = "",
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Open a new case."""
    from custody.app import evidence

    with _open(home, db) as c:
        evidence.new_case(c, case_id, title, _now())
    typer.echo(f"opened case {case_id}" + (f": {title}" if title else ""))


@case_app.command("list")
def case_list(home: HomeOpt = None, db: DbOpt = None, json_: JsonOpt = False) -> None:
    """List cases with their number of items."""
    with _open(home, db) as c:
        rows = [(r, len(c.store.items_in_case(r.case_id))) for r in c.store.cases()]
    if json_:
        _emit_json(
            [
                {"case": r.case_id, "title": r.title, "created": r.created, "items": n}
                for r, n in rows
            ]
        )
        return
    if not rows:
        typer.echo("no cases yet: open one with 'custody case new ID --title TEXT'")
        return
    for r, n in rows:
        typer.echo(f"{r.case_id}  {n} item(s)  {r.title}")


@case_app.command("show")
def case_show(
    case_id: Annotated[str, typer.Argument(metavar="ID")],
    home: HomeOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Show a case and its exhibits."""
    from custody.app import evidence

    with _open(home, db) as c:
        case = evidence.get_case(c, case_id)
        items = c.store.items_in_case(case_id)
    if json_:
        _emit_json(
            {
                "case": case.case_id,
                "title": case.title,
                "created": case.created,
                "items": [_item_json(i) for i in items],
            }
        )
        return
    typer.echo(f"case {case.case_id}" + (f": {case.title}" if case.title else ""))
    typer.echo(f"opened {case.created}; {len(items)} item(s)")
    for i in items:
        typer.echo(
            f"  {i.exhibit}  {i.kind:<10} {i.size:>12,} B  {i.blake3[:16]}…  {i.name}"
            f"  (entry {i.ingest_idx}, held by {i.holder})"
        )


def _item_json(i: Any) -> dict[str, Any]:
    return {
        "exhibit": i.exhibit,
        "case": i.case_id,
        "name": i.name,
        "kind": i.kind,
        "size": i.size,
        "blake3": i.blake3,
        "sha256": i.sha256,
        "metadata_digest": i.metadata_digest,
        "content_digest": i.content_digest,
        "log_index": i.ingest_idx,
        "ingested_by": i.ingested_by,
        "ingested_at": i.ingested_at,
        "holder": i.holder,
    }


# -- ingest ---------------------------------------------------------------------------


@app.command("ingest")
def ingest_cmd(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders (recursive).", show_default=False)
    ] = None,
    case: Annotated[str, typer.Option("--case", help="Case id the items belong to.")] = "",
    by: Annotated[
        str,
        typer.Option("--by", help="Key name of the person ingesting; signs the ingest entries."),
    ] = "",
    source: Annotated[
        str | None,
        typer.Option("--source", help="Where the footage came from (device, export method)."),
    ] = None,
    legal_basis: Annotated[
        str | None,
        typer.Option("--legal-basis", help="consent, warrant, subpoena, exigent or voluntary."),
    ] = None,
    ref: Annotated[
        str | None, typer.Option("--ref", help="Warrant, subpoena or consent reference.")
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            help="CSV or JSON list: path, source, legal_basis, reference, notes per row.",
        ),
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", help="Files hashed and probed at once.", min=1)
    ] = max(1, os.cpu_count() or 1),
    sha256: Annotated[
        bool, typer.Option("--sha256", help="Also record SHA-256 (same read pass).")
    ] = False,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Ingest exported clips into the write-once evidence store and sign an ingest entry each.

    Re-running the same command appends nothing new: each file is reported as already
    ingested with its log index.  A bad file is reported and the rest proceed; the exit
    code is 3 if any file failed.
    """
    from custody.app import evidence

    if not case:
        raise UsageError("--case is required", hint="open one with 'custody case new ID'")
    if not by:
        raise UsageError("--by is required: the key name of the person ingesting")
    if legal_basis is not None and legal_basis not in evidence.LEGAL_BASES:
        raise UsageError(
            f"--legal-basis {legal_basis!r} is not one of {', '.join(evidence.LEGAL_BASES)}"
        )
    sources = [evidence.Source(p, source, legal_basis, ref) for p in evidence.expand(paths or [])]
    if manifest is not None:
        for row in evidence.read_manifest(manifest):
            sources.append(
                evidence.Source(
                    row.path,
                    row.source or source,
                    row.legal_basis or legal_basis,
                    row.ref or ref,
                    row.notes,
                )
            )
    if not sources:
        raise UsageError("nothing to ingest: give files, folders or --manifest")
    with _open(home, db) as c:
        evidence.get_case(c, case)
        signer = c.signer(by, passphrases(passphrase_file))
        failed = _run_ingest(c, sources, case, signer, sha256, jobs, json_)
    if failed:
        raise InputError(
            f"{failed} of {len(sources)} file(s) could not be ingested (see above)",
            hint="fix or remove them and run the same command again",
        )


def _run_ingest(
    c: Custody, sources: list[Any], case: str, signer: Any, sha256: bool, jobs: int, json_: bool
) -> int:
    from custody.app import evidence

    total_bytes = 0
    for s in sources:
        with contextlib.suppress(OSError):
            total_bytes += s.path.stat().st_size
    show_bar = not json_ and sys.stderr.isatty()
    failed = 0
    counts = {"ingested": 0, "already": 0, "failed": 0}
    progress = None
    if show_bar:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        # One bar in bytes (throughput and time left follow the bytes); the file count
        # is in its description.
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        progress.start()
        bytes_task = progress.add_task(f"0/{len(sources)} files", total=total_bytes)

    def on_bytes(n: int) -> None:
        if progress is not None:
            progress.advance(bytes_task, n)

    try:
        for outcome in evidence.ingest(
            c,
            sources,
            case_id=case,
            by=signer,
            now=_now,
            sha256=sha256,
            jobs=jobs,
            on_bytes=on_bytes,
        ):
            counts[outcome.status] += 1
            if progress is not None:
                done = sum(counts.values())
                progress.update(bytes_task, description=f"{done}/{len(sources)} files")
            if json_:
                sys.stdout.write(json.dumps(outcome.as_json(), sort_keys=True) + "\n")
                sys.stdout.flush()
                continue
            line = _outcome_line(outcome)
            if progress is not None:
                progress.console.print(line, markup=False, highlight=False)
            elif outcome.status == "failed":
                sys.stderr.write(line + "\n")
            else:
                typer.echo(line)
    finally:
        if progress is not None:
            progress.stop()
    failed = counts["failed"]
    if not json_:
        typer.echo(
            f"{counts['ingested']} ingested, {counts['already']} already ingested, {failed} failed",
            err=True,
        )
    return failed


def _outcome_line(o: Any) -> str:
    if o.status == "failed":
        return f"FAILED    {o.path}: {o.error}"
    word = "ingested" if o.status == "ingested" else "already  "
    return (
        f"{word}  {o.exhibit}  entry {o.index}  {o.kind:<10} {o.size:>12,} B  "
        f"b3:{o.blake3[:16]}…  {o.path}"
    )


# -- verify, show, history -------------------------------------------------------------------

_VERDICT_WORDS = {
    "exact": "EXACT MATCH",
    "same-content": "SAME CONTENT, OTHER CONTAINER",
    "metadata-changed": "METADATA CHANGED",
    "content-modified": "CONTENT MODIFIED",
    "unknown": "UNKNOWN",
}


@app.command("verify")
def verify_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files to check against the log.")],
    case: Annotated[
        str | None, typer.Option("--case", help="Only compare with this case's items.")
    ] = None,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Tell, per file, whether it is exactly what was ingested, and if not, what changed.

    Exit 0 only when every file matches an ingested item exactly; 1 otherwise.
    """
    from custody.app import derive, evidence

    results = []
    lineages: list[Any] = []
    with _open(home, db) as c:
        if case is not None:
            evidence.get_case(c, case)
        for path in paths:
            r = evidence.verify_file(c, path, case)
            results.append(r)
            # A derived clip: show where it comes from, re-proven from the store.
            lineage: Any = None
            if r.item is not None:
                try:
                    lineage = derive.lineage(c, r.item)
                except derive.ParentMissingError as exc:
                    lineage = exc
            lineages.append(lineage)
    for r, lineage in zip(results, lineages, strict=True):
        if json_:
            out = r.as_json()
            if isinstance(lineage, derive.ParentMissingError):
                out["lineage"] = {"proven": False, "note": lineage.message}
            elif lineage is not None:
                out["lineage"] = lineage.to_json()
            sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
            continue
        _print_verdict(r)
        if isinstance(lineage, derive.ParentMissingError):
            typer.echo(f"  lineage: not proven here: {lineage.message}")
        elif lineage is not None:
            for line in lineage.lines():
                typer.echo(f"  {line}")
    bad = [r for r in results if not r.exact]
    if bad:
        raise VerificationError(
            f"{len(bad)} of {len(results)} file(s) are not exactly what was ingested"
        )


def _print_verdict(r: Any) -> None:
    v = r.verdict
    word = _VERDICT_WORDS.get(v.kind, v.kind.upper())
    typer.echo(f"{word}: {r.path}")
    if r.item is not None:
        i = r.item
        typer.echo(
            f"  exhibit {i.exhibit} ({i.name}), log entry {i.ingest_idx}, ingested "
            f"{i.ingested_at} by {i.ingested_by}; current holder {i.holder}"
        )
    typer.echo(f"  {v.summary}")
    for line in _verdict_details(v):
        typer.echo(f"    {line}")


def _verdict_details(v: Any) -> list[str]:
    """Detail lines under a verdict's summary (all of it is in --json)."""
    fields = getattr(v, "fields", ()) or ()
    notable = getattr(v, "notable", None)
    lines = [c.describe() for c in (notable if notable is not None else fields)]
    if notable is not None and len(fields) > len(notable):
        lines.append(
            f"(+{len(fields) - len(notable)} container bookkeeping fields; --json lists them all)"
        )
    lines += [c.describe() for c in getattr(v, "streams", ()) or ()]
    return lines if len(lines) > 1 else []


@app.command("show")
def show_cmd(
    item: ItemArg,
    case: CaseOpt = None,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Show an item: its hashes, metadata and timeline."""
    from custody.app import evidence

    with _open(home, db) as c:
        row = evidence.resolve_item(c, item, case)
        events = evidence.history(c, row)
        record = evidence.item_record(c, row)
    meta = record.metadata if record is not None else None
    if json_:
        _emit_json(
            {
                **_item_json(row),
                "metadata": meta,
                "streams": [s.__dict__ for s in record.streams] if record else [],
                "timeline": [e.as_json() for e in events],
            }
        )
        return
    typer.echo(f"exhibit {row.exhibit}: {row.name}")
    typer.echo(f"  kind        {row.kind}, {row.size:,} bytes")
    typer.echo(f"  BLAKE3      {row.blake3}")
    if row.sha256:
        typer.echo(f"  SHA-256     {row.sha256}")
    if row.metadata_digest:
        typer.echo(f"  metadata    {row.metadata_digest} (canonical ffprobe snapshot)")
    if row.content_digest:
        typer.echo(f"  content     {row.content_digest} (packet hashes of every stream)")
    if record is not None:
        fmt = record.metadata.get("format", {})
        typer.echo(f"  container   {record.format_name}, {fmt.get('duration', '?')} s")
        for key, value in sorted((fmt.get("tags") or {}).items()):
            typer.echo(f"  tag         {key} = {value}")
        for s in record.streams:
            typer.echo(
                f"  stream {s.index}    {s.codec_type} {s.codec_name}, {s.packets} "
                f"packets, sha256 {s.digest[:16]}…"
            )
    typer.echo(f"  holder      {row.holder}")
    _print_timeline(events)


@app.command("history")
def history_cmd(
    item: ItemArg,
    case: CaseOpt = None,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """The item's timeline from the log: every signed event, in order, with signers."""
    from custody.app import evidence

    with _open(home, db) as c:
        row = evidence.resolve_item(c, item, case)
        events = evidence.history(c, row)
    if json_:
        _emit_json(
            {"exhibit": row.exhibit, "item": row.blake3, "timeline": [e.as_json() for e in events]}
        )
        return
    typer.echo(f"exhibit {row.exhibit}: {row.name}")
    _print_timeline(events)


def _describe_event(e: Any) -> str:
    """One plain sentence for a timeline event."""
    f: dict[str, str] = {}
    for k, v in e.fields:
        f.setdefault(k, v)
    if e.type == "ingest":
        text = f"ingested by {f.get('by')} from {f.get('source', 'an unstated source')}"
        if "legal-basis" in f:
            text += f", legal basis {f['legal-basis']}"
        return text + (f" ({f['ref']})" if "ref" in f else "")
    if e.type == "consent" and f.get("action") == "grant":
        text = f"{f.get('owner')} consents: {f.get('purpose')}; onward sharing {f.get('onward')}"
        return text + (f"; until {f['until']}" if "until" in f else "")
    if e.type == "consent":
        return f"{f.get('owner')} revokes consent {f.get('consent', '')[:12]}"
    if e.type == "handoff":
        text = f"handed from {f.get('from')} to {f.get('to')}: {f.get('purpose')}"
        return text + (f" (authority: {f['authority']})" if "authority" in f else "")
    if e.type == "reject":
        return f"{f.get('by')} refused the offer from {f.get('from')}: {f.get('reason')}"
    if e.type == "access":
        verb = "exported a copy" if f.get("action") == "export" else "viewed it"
        return f"{f.get('by')} {verb}: {f.get('purpose')}"
    if e.type == "derive":
        from custody.app.derive import describe_entry

        return f"{f.get('by')}: {describe_entry(e.fields)}"
    return " ".join(f"{k}={v}" for k, v in e.fields if k not in ("item", "case"))


def _print_timeline(events: list[Any]) -> None:
    typer.echo("  timeline (from the log; every entry's signatures re-checked):")
    for e in events:
        typer.echo(
            f"    entry {e.index:<6} {e.time}  {e.type:<8} {_describe_event(e)}  "
            f"[signed: {', '.join(e.signers)}]"
        )


# -- commands defined in their own modules -------------------------------------------------
# Each registers its commands on `app`; they import the shared options above.


def _register_extensions() -> None:
    from custody.cli import bundle as cli_bundle
    from custody.cli import custody as cli_custody
    from custody.cli import derive as cli_derive
    from custody.cli import report as cli_report

    for module in (cli_custody, cli_derive, cli_bundle, cli_report):
        module.register(app)


_register_extensions()


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
