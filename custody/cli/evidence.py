"""CLI: cases, ingest, and what the log says about an item: `custody case new|list|show`,
`custody ingest`, `custody verify`, `custody show`, `custody history`.

Thin: parse, call `custody.app.evidence` (and `custody.app.derive` for lineage), print.
Each timeline line is `custody.model.describe.describe()` of its entry, the sentence
the report and verify-bundle show too.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from custody.cli.common import (
    ENV_PASSPHRASE,
    MAX_JOBS,
    CaseOpt,
    DbOpt,
    HomeOpt,
    ItemArg,
    JsonOpt,
    PassFileOpt,
    Progress,
    feedback_on_terminal,
    now,
    open_home,
    party_or_default,
    passphrases,
)
from custody.cli.jsonout import JsonlOpt, emit_json, emit_json_line
from custody.errors import InputError, PolicyError, UsageError, VerificationError

if TYPE_CHECKING:
    from custody.app.home import Custody
    from custody.infra.store import ItemRow

# -- cases ----------------------------------------------------------------------------

case_app = typer.Typer(
    help="Cases: every ingested item belongs to one, with an exhibit number.", no_args_is_help=True
)


@case_app.command("new")
def case_new(
    case_id: Annotated[str, typer.Argument(metavar="ID", help="Case id, e.g. 2026-0142.")],
    title: Annotated[str, typer.Option("--title", help="A short description.")] = "",
    home: HomeOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Open a new case."""
    from custody.app import evidence

    with open_home(home, db) as c:
        evidence.new_case(c, case_id, title, now())
    if json_:
        emit_json({"case": case_id, "title": title})
        return
    typer.echo(f"opened case {case_id}" + (f": {title}" if title else ""))


@case_app.command("list")
def case_list(home: HomeOpt = None, db: DbOpt = None, json_: JsonOpt = False) -> None:
    """List cases with their number of items."""
    with open_home(home, db) as c:
        rows = [(r, len(c.store.items_in_case(r.case_id))) for r in c.store.cases()]
    if json_:
        emit_json(
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

    with open_home(home, db) as c:
        case = evidence.get_case(c, case_id)
        items = c.store.items_in_case(case_id)
    if json_:
        emit_json(
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
        "item": i.blake3,
        "blake3": i.blake3,  # deprecated: "item"
        "sha256": i.sha256,
        "metadata_digest": i.metadata_digest,
        "content_digest": i.content_digest,
        "index": i.ingest_idx,
        "log_index": i.ingest_idx,  # deprecated: "index"
        "ingested_by": i.ingested_by,
        "ingested_at": i.ingested_at,
        "holder": i.holder,
    }


# -- ingest ---------------------------------------------------------------------------


def ingest_cmd(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders (recursive).", show_default=False)
    ] = None,
    case: Annotated[str, typer.Option("--case", help="Case id the items belong to.")] = "",
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="Key name of the person ingesting; signs the ingest entries. "
            "Default: CUSTODY_PARTY or party in the home's custody.toml.",
        ),
    ] = "",
    source: Annotated[
        str | None,
        typer.Option("--source", help="Where the footage came from (device, export method)."),
    ] = None,
    legal_basis: Annotated[
        str | None,
        typer.Option(
            "--legal-basis",
            help="Required (or a manifest row's legal_basis): consent, warrant, subpoena, "
            "exigent, voluntary or emergency (with --justification).",
        ),
    ] = None,
    ref: Annotated[
        str | None, typer.Option("--ref", help="Warrant, subpoena or consent reference.")
    ] = None,
    consent: Annotated[
        str | None,
        typer.Option(
            "--consent",
            metavar="INDEX",
            help="With --legal-basis consent: the log index of the consent grant the footage "
            "comes under (e.g. an owner's answer to a request, after 'custody log import'). "
            "Clips recorded outside that request's window or area are refused.",
        ),
    ] = None,
    justification: Annotated[
        str | None,
        typer.Option(
            "--justification",
            help="Required with --legal-basis emergency: why it could not wait for consent or "
            "a warrant (another party must review it: custody review).",
        ),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            help="CSV or JSON list: path, source, legal_basis, reference, notes, consent, "
            "justification per row.",
        ),
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", help="Files hashed and probed at once.", min=1, max=MAX_JOBS)
    ] = max(1, os.cpu_count() or 1),
    sha256: Annotated[
        bool, typer.Option("--sha256", help="Also record SHA-256 (same pass).")
    ] = False,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Ingest exported clips into the write-once evidence store and sign an ingest entry each.

    Re-running the same command appends nothing new: each file is reported as already
    ingested with its log index.  A bad file is reported and the rest proceed; the exit
    code is 4 if every file that failed was refused by the custody rules, else 3 if any
    file failed.
    """
    if not case:
        raise UsageError("--case is required", hint="open one with 'custody case new ID'")
    # One source for both unlocks below (`--passphrase-file -` reads stdin once).
    passphrase = passphrases(passphrase_file)
    unlocked = None
    if passphrase_file is not None or os.environ.get(ENV_PASSPHRASE):
        # No prompt: the key is unlocked first, before the first file's copy maps its
        # windows and the database layer and the media library are loaded, so that
        # Argon2id's 64 MiB are freed before any of them is there (custody.app.early).
        from custody.app.early import unlock_ahead

        unlocked = unlock_ahead(home, db, by, passphrase)
    ahead = None
    if paths and manifest is None and legal_basis is not None:
        # A large first file starts into the store now, while the database layer is
        # imported and the home opened (custody.app.early); the ingest takes that copy,
        # and leaving this block drops it if nothing took it (a run refused before).
        from custody.app.early import stage_ahead

        ahead = stage_ahead(home, db, paths[0], sha256=sha256)
    with ahead if ahead is not None else contextlib.nullcontext():
        from custody.app import evidence

        if legal_basis is not None and legal_basis not in evidence.LEGAL_BASES:
            raise UsageError(
                f"--legal-basis {legal_basis!r} is not one of {', '.join(evidence.LEGAL_BASES)}"
            )
        sources = [
            evidence.Source(p, source, legal_basis, ref, None, consent, justification)
            for p in evidence.expand(paths or [])
        ]
        if manifest is not None:
            for row in evidence.read_manifest(manifest):
                basis = row.legal_basis or legal_basis
                # --consent and --justification apply to the rows of their legal basis.
                sources.append(
                    evidence.Source(
                        row.path,
                        row.source or source,
                        basis,
                        row.ref or ref,
                        row.notes,
                        row.consent or (consent if basis == "consent" else None),
                        row.justification or (justification if basis == "emergency" else None),
                    )
                )
        if not sources:
            raise UsageError("nothing to ingest: give files, folders or --manifest")
        if legal_basis == "emergency" and not (justification or "").strip():
            raise UsageError(
                "--legal-basis emergency needs --justification TEXT: why it could not wait for "
                "consent or a warrant",
                hint="another party reviews the disclosure later (custody review)",
            )
        # Every ingest entry states its legal basis: without one, the consent rules have
        # nothing to hold the evidence to (docs/ingest.md).
        unstated = [s for s in sources if s.legal_basis is None]
        if unstated:
            raise UsageError(
                "--legal-basis is required"
                + (
                    f" ({len(unstated)} manifest row(s) give none)"
                    if manifest is not None and len(unstated) < len(sources)
                    else ""
                ),
                hint=f"give --legal-basis ({', '.join(evidence.LEGAL_BASES)}), or a "
                "legal_basis for every manifest row",
            )
        for s in sources:
            evidence.check_source(s)
        with open_home(home, db) as c:
            evidence.get_case(c, case)
            party = party_or_default(by, c)
            if unlocked is not None:
                signer: Any = c.checked_signer(party, unlocked)
            elif passphrase_file is not None or os.environ.get(ENV_PASSPHRASE):
                # Not unlocked ahead (no key file, a wrong passphrase...): unlocked while
                # the first files are copied and hashed, its error told before any entry.
                signer = c.signer_meanwhile(party, passphrase)
            else:
                signer = c.signer(party, passphrase)
            failed, refused = _run_ingest(
                c, sources, case, signer, sha256, jobs, json_ or jsonl, jsonl=jsonl, ahead=ahead
            )
        if failed:
            # Every failure a refusal by the custody rules: exit 4, as for one refused clip.
            raise (PolicyError if refused == failed else InputError)(
                f"{failed} of {len(sources)} file(s) could not be ingested (see above)",
                hint="the custody rules refused them, each for the reason above"
                if refused == failed
                else "fix or remove them and run the same command again",
            )


def _run_ingest(
    c: Custody,
    sources: list[Any],
    case: str,
    signer: Any,
    sha256: bool,
    jobs: int,
    json_: bool,
    *,
    jsonl: bool = False,
    ahead: Any = None,
) -> tuple[int, int]:
    """Ingest and report each file; (how many failed, how many of those the custody
    rules refused)."""
    from custody.app import evidence

    failed = refused = 0
    counts = {"ingested": 0, "already": 0, "failed": 0}
    # One line: files done of the total and files/s, a bar in bytes with bytes/s and
    # the time left (the bytes follow the hashing, the files their entries).
    progress = Progress("ingest", enabled=not json_ and feedback_on_terminal())
    if progress.enabled:
        total_bytes = 0
        for s in sources:
            with contextlib.suppress(OSError):
                total_bytes += s.path.stat().st_size
        progress.phase("hashing, storing, signing", total_bytes or None, files=len(sources))

    stopped: evidence.BatchStopped | None = None
    with progress:
        for outcome in _outcomes(
            evidence.ingest(
                c,
                sources,
                case_id=case,
                by=signer,
                now=now,
                sha256=sha256,
                jobs=jobs,
                on_bytes=progress.advance,
                ahead=ahead,
            )
        ):
            if isinstance(outcome, evidence.BatchStopped):
                stopped = outcome
                break
            counts[outcome.status] += 1
            refused += isinstance(outcome.cause, PolicyError)
            progress.file_done()
            if json_:
                emit_json_line(_outcome_json(outcome))
                continue
            progress.echo(_outcome_line(outcome), error=outcome.status == "failed")
    failed = counts["failed"]
    if jsonl:
        emit_json_line(
            {
                "final": True,
                **counts,
                "not_attempted": len(sources) - sum(counts.values()),
                "stopped": None if stopped is None else stopped.message,
            }
        )
    if not json_:
        left = f", {len(sources) - sum(counts.values())} not attempted" if stopped else ""
        typer.echo(
            f"{counts['ingested']} ingested, {counts['already']} already ingested, {failed} failed"
            + left,
            err=True,
        )
    if stopped is not None:
        raise stopped
    return failed, refused


# Entry fields that are counts (an entry's text has them as decimal digits): numbers in JSON.
_NUMERIC_FIELDS = frozenset({"size"})


def _numbers(event: dict[str, Any]) -> dict[str, Any]:
    """A timeline event's JSON with its count fields (`size`) as numbers, not text."""
    fields = dict(event.get("fields", {}))
    for key in _NUMERIC_FIELDS & fields.keys():
        value = fields[key]
        if isinstance(value, str) and value.isdigit() and value.isascii():
            fields[key] = int(value)
    return {**event, "fields": fields}


def _outcome_json(o: Any) -> dict[str, Any]:
    """One file's outcome in the output contract: `item` for its BLAKE3 (and the old
    `blake3` beside it, deprecated)."""
    out: dict[str, Any] = o.as_json()
    if "blake3" in out:
        out["item"] = out["blake3"]
    return out


def _outcomes(run: Iterator[Any]) -> Iterator[Any]:
    """The outcomes of an ingest run, then the BatchStopped that ended it early, if any."""
    from custody.app import evidence

    try:
        yield from run
    except evidence.BatchStopped as exc:
        yield exc


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


def verify_cmd(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH...",
            help="Files to check against the log; '-' reads one from standard input; or one "
            "folder (an export's too) to audit: matched, moved, modified, new, and with "
            "--case missing exhibits.",
        ),
    ],
    case: Annotated[
        str | None, typer.Option("--case", help="Only compare with this case's items.")
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", help="With a folder: files hashed and compared at once.", min=1, max=MAX_JOBS
        ),
    ] = max(1, os.cpu_count() or 1),
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Tell, per file, whether it is exactly what was ingested, and if not, what changed.

    Exit 0 only when every file matches an ingested item exactly; 1 otherwise.
    A folder: exit 0 only when every file in it is matched and no exhibit is missing.
    """
    from custody.app import derive, evidence

    folders = [p for p in paths if str(p) != "-" and p.is_dir() and not p.is_symlink()]
    if folders:
        if len(paths) > 1:
            raise UsageError(
                "give one folder to audit, or files to verify, not both or several folders",
                hint="run 'custody verify DIR' once per folder",
            )
        _verify_dir(folders[0], case, json_, jsonl, home, db, jobs)
        return
    if sum(1 for p in paths if str(p) == "-") > 1:
        raise UsageError("'-' (standard input) can be given once")
    results = []
    lineages: list[Any] = []
    with open_home(home, db) as c:
        if case is not None:
            evidence.get_case(c, case)
        for path in paths:
            if str(path) == "-":
                with _stdin_file() as spooled:
                    r = evidence.verify_file(c, spooled, case, shown="-")
            else:
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
        if json_ or jsonl:
            out = r.as_json()
            out["verified"] = r.exact
            if isinstance(lineage, derive.ParentMissingError):
                out["lineage"] = {"proven": False, "note": lineage.message}
            elif lineage is not None:
                out["lineage"] = lineage.to_json()
            emit_json_line(out)
            continue
        _print_verdict(r)
        if isinstance(lineage, derive.ParentMissingError):
            typer.echo(f"  lineage: not proven here: {lineage.message}")
        elif lineage is not None:
            for line in lineage.lines():
                typer.echo(f"  {line}")
    bad = [r for r in results if not r.exact]
    if jsonl:
        kinds = [r.verdict.kind for r in results]
        emit_json_line(
            {
                "final": True,
                "files": len(results),
                "exact": len(results) - len(bad),
                "not_exact": len(bad),
                "verified": not bad,
                "verdicts": {k: kinds.count(k) for k in sorted(set(kinds))},
            }
        )
    if bad:
        raise VerificationError(
            f"{len(bad)} of {len(results)} file(s) are not exactly what was ingested"
        )


@contextlib.contextmanager
def _stdin_file() -> Iterator[Path]:
    """Standard input, copied to a temporary file (it is hashed, then probed: read twice),
    removed afterwards.  UsageError when standard input is a terminal."""
    import shutil
    import tempfile

    if sys.stdin.isatty():
        raise UsageError(
            "'-' reads the file from standard input, which is a terminal",
            hint="pipe the file in: custody verify - < FILE",
        )
    try:
        fd, name = tempfile.mkstemp(prefix="custody-stdin-")
    except OSError as exc:
        raise InputError(
            f"cannot copy standard input to a temporary file in {tempfile.gettempdir()}: "
            f"{exc.strerror}",
            hint="set TMPDIR to a folder with room for the file",
        ) from exc
    path = Path(name)
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
        except OSError as exc:
            raise InputError(
                f"cannot copy standard input to {path}: {exc.strerror}",
                hint="set TMPDIR to a folder with room for the file",
            ) from exc
        yield path
    finally:
        path.unlink(missing_ok=True)


_STATUS_WIDTH = 10


def _verify_dir(
    folder: Path,
    case: str | None,
    json_: bool,
    jsonl: bool,
    home: Path | None,
    db: str | None,
    jobs: int,
) -> None:
    """`custody verify DIR`: the folder audit (custody.app.verifydir), one line per file
    as it is done, the missing exhibits, then the summary line."""
    from custody.app import verifydir

    progress = Progress(f"verify {folder}", enabled=not (json_ or jsonl) and feedback_on_terminal())

    def shown(r: verifydir.FileResult) -> None:
        progress.file_done()
        progress.advance(r.size or 0)
        if jsonl:
            emit_json_line(r.as_json())
        elif not json_:
            progress.echo(_dir_line(r))

    with open_home(home, db) as c, progress:
        if progress.enabled:
            files, size = _folder_totals(folder)
            progress.phase("hashing and matching files", size or None, files=files)
        audit = verifydir.audit_dir(c, folder, case, on_file=shown, jobs=jobs)
    if json_:
        emit_json(audit.as_json())
    elif jsonl:
        for row in audit.missing:
            emit_json_line({"status": "missing", "exhibits": [verifydir.item_json(row)]})
        summary = audit.as_json()
        emit_json_line(
            {
                "final": True,
                **{k: summary[k] for k in ("folder", "case", "verified", "counts", "bundles")},
            }
        )
    else:
        for row in audit.missing:
            typer.echo(
                f"{'missing':<{_STATUS_WIDTH}} {row.exhibit}  {row.name}: no file in the folder "
                "has its bytes or its name"
            )
        for b in audit.bundles:
            typer.echo(
                f"note: {folder / b if b != '.' else folder} is a custody bundle: only its "
                "media/ was audited; check the rest with 'custody verify-bundle'",
                err=True,
            )
        typer.echo(audit.summary())
    problems = audit.problems - audit.count("unreadable")
    if problems:
        raise VerificationError(
            f"{folder}: the audit did not pass: {problems} not matched or missing",
            hint="see the lines above; 'custody verify FILE' tells more of one file",
        )
    if audit.count("unreadable"):
        raise InputError(
            f"{folder}: {audit.count('unreadable')} file(s) could not be read (see above)"
        )


def _folder_totals(folder: Path) -> tuple[int, int]:
    """How many files `custody verify DIR` goes through, and the bytes of those it reads
    (what its progress counts to: `custody.app.verifydir.walk` lists them)."""
    from custody.app import verifydir

    files = size = 0
    try:
        for _, path, skipped in verifydir.walk(folder):
            files += 1
            if skipped is None:
                with contextlib.suppress(OSError):
                    size += path.lstat().st_size
    except OSError:
        pass  # the audit says what cannot be read
    return files, size


def _dir_line(r: Any) -> str:
    """One line of the folder audit: status, exhibit(s), path, and what is known."""
    exhibits = ", ".join(i.exhibit for i in r.items) or "-"
    line = f"{r.status:<{_STATUS_WIDTH}} {exhibits}  {r.path}"
    if r.verdict is not None:
        line += f": {r.verdict.summary}"
    elif r.reason is not None:
        line += f" ({r.reason})" if r.status == "moved" else f": {r.reason}"
    return line


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


def show_cmd(
    item: ItemArg,
    case: CaseOpt = None,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Show an item: its hashes, metadata and timeline."""
    from custody.app import evidence

    with open_home(home, db) as c:
        row = evidence.resolve_item(c, item, case)
        events = evidence.history(c, row)
        record = evidence.item_record(c, row)
        exhibits = {} if json_ else _exhibits(c, row)
        indexes = {} if json_ else _indexes(c, events)
    meta = record.metadata if record is not None else None
    fate = _fate(events, row.blake3)
    if json_:
        emit_json(
            {
                **_item_json(row),
                "metadata": meta,
                "streams": [s.__dict__ for s in record.streams] if record else [],
                "timeline": [_numbers(e.as_json()) for e in events],
                **{key: value for key, (value, _) in fate.items()},
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
    for _, text in fate.values():
        typer.echo(text)
    _print_timeline(events, row.blake3, exhibits, indexes=indexes)


def _fate(events: list[Any], item: str) -> dict[str, tuple[dict[str, Any], str]]:
    """What `custody show` says of an item's disposal and of a rejected review of its
    emergency disclosure, from its timeline: JSON key -> (JSON value, text line)."""
    from custody.model.types import Disposal, Review

    out: dict[str, tuple[dict[str, Any], str]] = {}
    for e in events:
        t = e.typed
        if isinstance(t, Disposal) and t.item == item and "disposed" not in out:
            value = {"by": t.by, "time": e.time, "entry": e.index, "reason": t.reason}
            text = f"  disposed    by {t.by} at {e.time} (entry {e.index}): {t.reason}"
            out["disposed"] = (value, text)
        elif isinstance(t, Review) and t.item == item and t.outcome == "rejected":
            value = {"by": t.by, "time": e.time, "entry": e.index, "note": t.note}
            text = (
                f"  restricted  its emergency disclosure was rejected on review by {t.by} at "
                f"{e.time} (entry {e.index}): no access or derivation, handoff only to a court"
            )
            out.setdefault("restricted", (value, text))
    return out


def history_cmd(
    item: ItemArg,
    case: CaseOpt = None,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """The item's timeline from the log: every signed event, in order, with signers."""
    from custody.app import events as key_events
    from custody.app import evidence

    with open_home(home, db) as c:
        row = evidence.resolve_item(c, item, case)
        # In log index order, the order of the record (docs/spec/entry.md rule 5).
        events = sorted(evidence.history(c, row), key=lambda e: e.index)
        exhibits = {} if json_ else _exhibits(c, row)
        indexes = {} if json_ else _indexes(c, events)
        keeping = key_events.keeping(c)
    if json_:
        timeline = [{**_numbers(e.as_json()), "caveats": keeping.caveats(e)} for e in events]
        order = [
            {**d.to_json(), "message": _disorder_sentence(d)}
            for d in _out_of_order(events).values()
        ]
        emit_json(
            {"exhibit": row.exhibit, "item": row.blake3, "timeline": timeline, "time_order": order}
        )
        return
    typer.echo(f"exhibit {row.exhibit}: {row.name}")
    _print_timeline(events, row.blake3, exhibits, keeping.caveats, indexes=indexes)


def _exhibits(c: Custody, row: ItemRow) -> dict[str, str]:
    """BLAKE3 -> exhibit number for the item's case, so that sentences name exhibits."""
    return {i.blake3: i.exhibit for i in c.store.items_in_case(row.case_id)}


#: The fields by which an entry names another entry by its entry hash.
_REFERENCES = ("consent", "request", "ingest", "hold")


def _indexes(c: Custody, events: list[Any]) -> dict[str, int]:
    """Entry hash -> log index of the entries the timeline's entries name (a consent's
    request, an ingest's consent, a review's ingest, a release's hold, a revocation's
    grant), so that sentences say ``request (entry 12)``."""
    from custody.infra.store import Store

    wanted = {v for e in events for k, v in e.fields if k in _REFERENCES and len(v) == 64}
    found: dict[str, int] = {}
    with c.store.session() as s:
        for ehash in sorted(wanted):
            index = Store.index_of(s, ehash)
            if index is not None:
                found[ehash] = index
    return found


def _print_timeline(
    events: list[Any],
    about: str,
    exhibits: dict[str, str],
    caveats: Callable[[Any], list[str]] | None = None,
    *,
    indexes: dict[str, int] | None = None,
) -> None:
    from custody.model.describe import describe
    from custody.model.entry import Entry

    typer.echo("  timeline (from the log; every entry's signatures re-checked):")
    events = sorted(events, key=lambda e: e.index)
    disorder = _out_of_order(events)
    for e in events:
        what = describe(
            Entry(e.type, e.time, e.fields), about=about, exhibits=exhibits, indexes=indexes
        )
        typer.echo(
            f"    entry {e.index:<6} {e.time}  {e.type:<8} {what}  [signed: {', '.join(e.signers)}]"
        )
        found = disorder.get(e.index)
        if found is not None:
            typer.echo(f"      note: out of order: {_disorder_sentence(found)}")
        for caveat in caveats(e) if caveats is not None else ():
            typer.echo(f"      note: {caveat}")


def _out_of_order(events: list[Any]) -> dict[int, Any]:
    """Log index -> `custody.model.times.Disorder` of each timeline entry whose claimed
    time is earlier than that of the entry listed before it (any amount: the log's own
    rule allows 10 min between computers, a reader still sees the times go back)."""
    from datetime import timedelta

    from custody.errors import CustodyError
    from custody.model.entry import parse_time
    from custody.model.times import OrderWatch, Stamp

    watch = OrderWatch(timedelta(0))
    found = {}
    for e in events:
        try:
            stamp = Stamp(e.index, e.type, parse_time(e.time))
        except CustodyError:
            continue
        d = watch.see(stamp)
        if d is not None:
            found[e.index] = d
    return found


def _disorder_sentence(d: Any) -> str:
    """What `custody history` says of an entry out of order (a `Disorder`)."""
    from custody.model.times import span

    return (
        f"its claimed time is {span(d.gap)} earlier than that of entry {d.previous_index} "
        f"({d.previous_type}), listed before it; the log's order is the order of the "
        "record, a claimed time the signer's clock"
    )
