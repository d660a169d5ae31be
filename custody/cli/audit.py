"""CLI: answers for oversight from the log: `custody audit` and `custody transparency`.

Thin: parse, call `custody.app.audit` and `custody.app.transparency`, print.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import (
    DbOpt,
    HomeOpt,
    JsonOpt,
    PassFileOpt,
    now,
    open_home,
    passphrases,
    read_input,
)
from custody.cli.jsonout import emit_json
from custody.errors import UsageError


def audit_cmd(
    case: Annotated[str | None, typer.Option("--case", help="Only this case.")] = None,
    party: Annotated[
        str | None, typer.Option("--party", help="Only entries naming this party.")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Only entries claimed at or after this date (YYYY-MM-DD) or time "
            "(YYYY-MM-DDTHH:MM:SSZ).",
            show_default=False,
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Only entries claimed at or before this date (its whole day) or time.",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Who accessed what and why, uses outside a consent, emergency disclosures and their
    reviews, items past retention, analyses, handoffs out of the agency (docs/transparency.md).
    """
    from custody.app.audit import parse_bound, run_audit

    lo = None if start is None else parse_bound(start, "--from")
    hi = None if end is None else parse_bound(end, "--to", end=True)
    with open_home(home, db) as c:
        result = run_audit(c, now=now(), case=case, party=party, start=lo, end=hi)
    if json_out:
        emit_json(result.as_json())
    else:
        sys.stdout.write(result.text())


def _date(text: str | None, option: str) -> date:
    if text is None:
        raise UsageError(f"{option} is required: the period the report covers (YYYY-MM-DD)")
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise UsageError(f"{option} {text[:40]!r} is not a date like 2026-11-30")


def transparency_cmd(
    start: Annotated[
        str | None,
        typer.Option("--from", help="First day of the period (YYYY-MM-DD).", show_default=False),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", help="Last day of the period (YYYY-MM-DD).", show_default=False),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the report here: FILE.json or FILE.html."),
    ] = None,
    check: Annotated[
        Path | None,
        typer.Option(
            "--check",
            help="Check a report file (JSON or HTML) against this log instead of making one.",
            show_default=False,
        ),
    ] = None,
    log_key: Annotated[
        str | None,
        typer.Option(
            "--log-key",
            help="With --check: the log's verifier key (default: this home's log key).",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Make the signed transparency report of a period (counts of requests, answers, items
    by legal basis, emergency reviews, accesses, handoffs, analyses, disposals, retention),
    or check one with --check (exit 1 if any count differs from the log).
    """
    if check is not None:
        if start is not None or end is not None or out is not None:
            raise UsageError("--check FILE takes no --from, --to or --out")
        _check(check, log_key, json_out, home, db)
        return
    if log_key is not None:
        raise UsageError("--log-key goes with --check")
    first, last = _date(start, "--from"), _date(end, "--to")
    if out is None:
        raise UsageError("--out is required: FILE.json or FILE.html")
    from custody.app.transparency import make_report, output_kind, report_json, write_report

    kind = output_kind(out)
    with open_home(home, db) as c:
        note, report = make_report(c, first, last, passphrases(passphrase_file), now())
    if kind == "html":
        from custody.report.transparency_html import render

        data = render(note, report)
    else:
        data = report_json(note, report)
    write_report(out, data)
    total = sum(len(v) for v in report.counts.values())
    if json_out:
        emit_json({"out": str(out), "size": report.size, "counted": total})
        return
    typer.echo(
        f"wrote {out}: the transparency report of {report.origin}, {report.start} to "
        f"{report.end}, at checkpoint size {report.size} ({total} entries counted), "
        "signed with the log key"
    )


def _check(
    path: Path, log_key: str | None, json_out: bool, home: Path | None, db: str | None
) -> None:
    from custody.app.transparency import MAX_REPORT_FILE, check_report
    from custody.infra.vault import display_path
    from custody.tlog.note import VerifierKey

    key = None if log_key is None else VerifierKey.parse(log_key)
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    if size > MAX_REPORT_FILE:
        raise UsageError(f"{display_path(path)} is larger than {MAX_REPORT_FILE >> 20} MiB")
    data = read_input(path, "report")
    with open_home(home, db) as c:
        checked = check_report(c, data, display_path(path), key)
    r = checked.report
    if json_out:
        emit_json(
            {
                "ok": True,
                "verified": True,
                "log": r.origin,
                "size": r.size,
                "period": {"from": r.start.isoformat(), "to": r.end.isoformat()},
                "kind": checked.kind,
            }
        )
        return
    typer.echo(
        f"OK: {display_path(path)} is signed by the log key of {r.origin}; its checkpoint "
        f"(size {r.size}) is this log's tree, and every count of {r.start} to {r.end} "
        "matches the entries"
    )
