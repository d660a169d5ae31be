"""`custody report`: the human report of a case, as HTML or PDF (docs/report.md).

Thin: parse, call `custody.report.court` (imported inside the command: it loads fpdf2
and the database layer), write the file, print.  While it works it shows what it is doing
on stderr, on a terminal only (`custody.cli.common.Progress`).  The report is written
even when verification fails (it says FAILED and what failed); the command then
exits 1, so a script cannot mistake a damning report for a clean one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import MAX_INDEX, DbOpt, HomeOpt, JsonOpt, Progress, now, open_home
from custody.cli.jsonout import emit_json
from custody.errors import UsageError, VerificationError


def report_cmd(
    case: Annotated[str, typer.Argument(metavar="CASE", help="Case id.")],
    out: Annotated[Path, typer.Option("--out", help="File to write (replaced if it exists).")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="html or pdf. Default: from --out's extension (.html, .htm, .pdf).",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[
        int | None,
        typer.Option(
            "--checkpoint",
            min=0,
            max=MAX_INDEX,
            help="Rest the report on the stored checkpoint of this size. Default: the latest.",
            show_default=False,
        ),
    ] = None,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Write a case's report: integrity of each exhibit, timeline, handoffs, derived clips,
    frames, the verification result and an FRE 902(14)-style certification.

    Exit 0 if everything verified; exit 1 if the report records a failure (it is still
    written, saying what failed).
    """
    from custody.report import court as report

    fmt = fmt or {".html": "html", ".htm": "html", ".pdf": "pdf"}.get(out.suffix.lower())
    if fmt not in report.FORMATS:
        raise UsageError(
            f"report format {fmt!r} is not one of {', '.join(report.FORMATS)}"
            if fmt
            else f"cannot tell the report format from {out.name!r}",
            hint="pass --format html or --format pdf",
        )
    # Feedback while it works (the log, each exhibit, the rendering), on a terminal only.
    with Progress(f"report {case}") as progress:
        with open_home(home, db) as c:
            built = report.build_report(
                c, case, now=now(), checkpoint_size=checkpoint, progress=progress.phase
            )
        progress.phase(f"laying out the {fmt.upper()}")
        data = report.render(built, fmt)
    report.save(data, out)
    if json_:
        emit_json(
            {
                "out": str(out),
                "format": fmt,
                "case": built.case_id,
                "verdict": "passed" if built.passed else "failed",
                "verified": built.passed,
                "checkpoint": {"size": built.checkpoint_size, "root": built.checkpoint_root},
                "exhibits": [
                    {
                        "exhibit": i.exhibit,
                        "item": i.blake3,
                        "passed": i.passed,
                        "verified": i.passed,
                    }
                    for i in built.items
                ],
                "failures": [f.detail for f in built.failures],
                "notes": list(built.notes),
            }
        )
    else:
        typer.echo(
            f"wrote {out}: case {built.case_id}, {len(built.items)} exhibits, "
            f"verification {built.verdict}"
        )
    if not built.passed:
        first = built.failures[0].detail
        more = len(built.failures) - 1
        raise VerificationError(
            f"the report records a failed verification: {first}"
            + (f" (and {more} more)" if more else ""),
            hint=f"read the verification section of {out}",
        )
