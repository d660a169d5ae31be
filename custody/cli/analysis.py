"""CLI: automated analysis on record, and the log's policy for it: `custody analysis
record`, `custody policy set|show`.

Thin: parse, call `custody.app.analysis`, print (docs/lifecycle.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from custody.cli.common import (
    CaseOpt,
    DbOpt,
    HomeOpt,
    ItemArg,
    JsonOpt,
    PassFileOpt,
    now,
    open_home,
    passphrases,
)
from custody.cli.jsonout import emit_json

if TYPE_CHECKING:
    from custody.app.analysis import PolicyShown

analysis_app = typer.Typer(
    help="Automated analysis (face recognition, licence plates, transcription...) on record.",
    no_args_is_help=True,
)
policy_app = typer.Typer(
    help="The log's policy, signed with the log key: forbidden analyses, warrants, reviews.",
    no_args_is_help=True,
)

KINDS_HELP = "face-recognition, licence-plate, object-detection, transcription or other"


@analysis_app.command("record")
def analysis_record(
    item: ItemArg,
    by: Annotated[str, typer.Option("--by", help="The holder who ran it; signs.")],
    kind: Annotated[str, typer.Option("--kind", help=f"What kind: {KINDS_HELP}.")],
    tool: Annotated[str, typer.Option("--tool", help="The software's name.")],
    tool_version: Annotated[str, typer.Option("--tool-version", help="Its version.")],
    purpose: Annotated[str, typer.Option("--purpose", help="What the analysis is for.")],
    result: Annotated[
        Path | None,
        typer.Option(
            "--result",
            help="The result file: its BLAKE3 and name go on record.",
            show_default=False,
        ),
    ] = None,
    warrant: Annotated[
        str | None,
        typer.Option(
            "--warrant",
            help="The warrant it is done under (where the policy requires one).",
            show_default=False,
        ),
    ] = None,
    case: CaseOpt = None,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Record that software analysed an item (a signed analysis entry by its holder).

    Refused, and nothing recorded, when the log's policy forbids the kind, or requires
    a warrant for it and there is none (--warrant, or an item taken in under legal basis
    warrant); refused on an item whose emergency disclosure was rejected or that was
    disposed of.  The result file is not stored: ingest or derive it to keep it.
    """
    from custody.app import analysis

    with open_home(home, db) as c:
        done = analysis.record_analysis(
            c,
            item,
            by=by,
            kind=kind,
            tool=tool,
            tool_version=tool_version,
            purpose=purpose,
            result=result,
            warrant=warrant,
            case=case,
            passphrase=passphrases(passphrase_file),
            now=now(),
        )
    if json_:
        emit_json(done.as_json())
        return
    kept = f"; result {done.result_name} (BLAKE3 {done.result})" if done.result else ""
    typer.echo(
        f"analysis recorded as log entry {done.index}: {kind} of {done.exhibit} by {by} "
        f"with {tool} {tool_version}{kept}"
    )


@policy_app.command("set")
def policy_set(
    forbid: Annotated[
        list[str] | None,
        typer.Option("--forbid", help=f"A kind of analysis the log forbids ({KINDS_HELP})."),
    ] = None,
    warrant_required: Annotated[
        list[str] | None,
        typer.Option("--warrant-required", help="A kind of analysis that needs a warrant."),
    ] = None,
    review_within: Annotated[
        int | None,
        typer.Option(
            "--review-within",
            help="Hours within which an emergency disclosure must be reviewed. Default: 72.",
            show_default=False,
        ),
    ] = None,
    note: Annotated[
        str | None, typer.Option("--note", help="Why (the law, the board's decision).")
    ] = None,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Set the log's policy, signed with the log key (the log operator's home only).

    The new policy replaces the one in force whole: a kind not given again is allowed
    again.  The rules refuse an analysis the policy forbids, or one it requires a
    warrant for without one; verify-bundle checks every entry against the policy in
    force when it was made.
    """
    from custody.app import analysis

    with open_home(home, db) as c:
        index = analysis.set_policy(
            c,
            forbid=forbid or [],
            warrant_required=warrant_required or [],
            review_within=review_within,
            note=note,
            passphrase=passphrases(passphrase_file),
            now=now(),
        )
        shown = analysis.current_policy(c)
    if json_:
        emit_json(shown.as_json())
        return
    typer.echo(f"policy recorded as log entry {index}")
    _print_policy(shown)


@policy_app.command("show")
def policy_show(
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Show the log's policy in force (the newest policy entry, or the defaults)."""
    from custody.app import analysis

    with open_home(home, db) as c:
        shown = analysis.current_policy(c)
    if json_:
        emit_json(shown.as_json())
        return
    _print_policy(shown)


def _print_policy(p: PolicyShown) -> None:
    if p.index is None:
        typer.echo("no policy entry on this log: the defaults apply")
    else:
        replaced = f", replacing {p.replaced} earlier one(s)" if p.replaced else ""
        typer.echo(f"policy of entry {p.index} ({p.time}){replaced}")
    typer.echo(f"forbidden analyses:       {', '.join(p.forbid) or 'none'}")
    typer.echo(f"warrant required for:     {', '.join(p.warrant_required) or 'none'}")
    typer.echo(f"emergency review within:  {p.review_hours} hours")
    if p.note:
        typer.echo(f"note:                     {p.note}")
