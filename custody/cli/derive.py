"""CLI: `custody derive trim|redact|transcode|lineage` (docs/derive.md).

Thin: parse, call `custody.app.derive`, print.  `custody.app.derive` imports the
database layer, so it is imported inside each command, never at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from custody.cli.common import (
    CaseOpt,
    DbOpt,
    HomeOpt,
    ItemArg,
    JsonOpt,
    PassFileOpt,
    Progress,
    now,
    open_home,
    party_or_default,
    passphrases,
)
from custody.cli.jsonout import emit_json
from custody.errors import UsageError

if TYPE_CHECKING:
    from custody.app.derive import Derived

#: The encoders `--codec` takes, for its help text: the keys of
#: `custody.app.derive.TRANSCODE_CODECS`, which cannot be imported at start-up
#: (tests/cli/test_startup.py checks that the two agree).
TRANSCODE_CODEC_NAMES = ("libx264", "libx265", "libvpx-vp9")

derive_app = typer.Typer(
    help="Derived clips: trim, redact or transcode an item into a new exhibit, signed on "
    "the log; and prove a derived item's lineage.",
    no_args_is_help=True,
)

ParentArg = Annotated[
    str,
    typer.Argument(help="The parent: exhibit number (CASE/NNNN) or BLAKE3 digest (prefix)."),
]
ByOpt = Annotated[
    str,
    typer.Option(
        "--by",
        help="Key name of the party making the copy: must hold the parent; signs. "
        "Default: CUSTODY_PARTY or party in the home's custody.toml.",
    ),
]
ReasonOpt = Annotated[
    str, typer.Option("--reason", help="Why the copy is made (signed into the log entry).")
]
Sha256Opt = Annotated[
    bool,
    typer.Option(
        "--sha256", help="Also record the copy's SHA-256 (always, if the parent has one)."
    ),
]
StartOpt = Annotated[
    str | None,
    typer.Option("--start", help="Seconds from the start of the clip (1.5) or [HH:]MM:SS.mmm."),
]
EndOpt = Annotated[
    str | None,
    typer.Option("--end", help="Seconds from the start of the clip (3.0) or [HH:]MM:SS.mmm."),
]


def _required(value: str | None, option: str, hint: str) -> str:
    if value is None or not value.strip():
        raise UsageError(f"{option} is required", hint=hint)
    return value


def _report(result: Derived, json_: bool) -> None:
    if json_:
        emit_json(result.as_json())
        return
    child, parent = result.child, result.parent
    if result.status == "already":
        typer.echo(
            f"already   {child.exhibit} ({child.name}) has exactly these bytes "
            f"(log entry {result.index}); nothing was appended"
        )
        return
    typer.echo(
        f"derived   {child.exhibit}  entry {result.index}  {result.op} of {parent.exhibit}  "
        f"{child.size:,} B  b3:{child.blake3[:16]}…  {child.name}"
    )
    shown = ", ".join(f"{k} {v}" for k, v in result.params if k != "ffmpeg")
    typer.echo(f"  parameters: {shown}")
    if result.proof is not None:
        for line in result.proof.lines():
            typer.echo(f"  {line}")
    typer.echo(f"  held by {child.holder}")


@derive_app.command("trim")
def trim_cmd(
    item: ParentArg,
    start: StartOpt = None,
    end: EndOpt = None,
    by: ByOpt = "",
    reason: ReasonOpt = "",
    case: CaseOpt = None,
    sha256: Sha256Opt = False,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Cut the excerpt [--start, --end] losslessly (stream copy) into a new exhibit.

    No packet is re-encoded, so the excerpt starts at the keyframe at or before
    --start (up to one GOP more than asked, never less); its lineage proves it is a
    contiguous run of the parent's packets that covers the range.
    """
    from custody.app import derive

    hint = "give the excerpt's range, e.g. --start 1.5 --end 3.0"
    first, last = _required(start, "--start", hint), _required(end, "--end", hint)
    with open_home(home, db) as c:
        who = party_or_default(by.strip() or None, c)
        signer = c.signer(who, passphrases(passphrase_file))
        with Progress(f"derive trim {item}") as progress:
            progress.phase("cutting the excerpt, hashing it, proving its lineage (ffmpeg)")
            result = derive.trim(
                c,
                item,
                start=first,
                end=last,
                by=signer,
                reason=reason,
                now=now,
                case=case,
                sha256=sha256,
            )
    _report(result, json_)


@derive_app.command("redact")
def redact_cmd(
    item: ParentArg,
    box: Annotated[
        str | None,
        typer.Option(
            "--box", help="X,Y,W,H in pixels: left, top, width, height (e.g. 10,10,40,30)."
        ),
    ] = None,
    start: StartOpt = None,
    end: EndOpt = None,
    style: Annotated[
        str, typer.Option("--style", help="box (filled black, the default) or blur.")
    ] = "box",
    by: ByOpt = "",
    reason: ReasonOpt = "",
    case: CaseOpt = None,
    sha256: Sha256Opt = False,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Cover a region (a face, a plate) during [--start, --end] into a new exhibit.

    Without --start/--end, the whole clip.  The video is re-encoded losslessly and the
    sound copied, so the lineage proves every frame outside the range is unchanged,
    and inside it nothing outside the box changed.
    """
    from custody.app import derive

    region = derive.parse_box(_required(box, "--box", "e.g. --box 10,10,40,30"))
    with open_home(home, db) as c:
        who = party_or_default(by.strip() or None, c)
        signer = c.signer(who, passphrases(passphrase_file))
        with Progress(f"derive redact {item}") as progress:
            progress.phase("rendering the redaction, hashing it, proving its lineage (ffmpeg)")
            result = derive.redact(
                c,
                item,
                box=region,
                start=start,
                end=end,
                style=style,
                by=signer,
                reason=reason,
                now=now,
                case=case,
                sha256=sha256,
            )
    _report(result, json_)


@derive_app.command("transcode")
def transcode_cmd(
    item: ParentArg,
    codec: Annotated[
        str | None,
        typer.Option("--codec", help=f"Video encoder: {', '.join(TRANSCODE_CODEC_NAMES)}."),
    ] = None,
    crf: Annotated[
        int | None,
        typer.Option("--crf", help="Quality (lower is better); default per codec.", min=0),
    ] = None,
    by: ByOpt = "",
    reason: ReasonOpt = "",
    case: CaseOpt = None,
    sha256: Sha256Opt = False,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Re-encode an item for playback (lossy) into a new exhibit.

    The log records the exact parameters and ffmpeg command; a lossy copy cannot be
    proven frame by frame, and its lineage says so.
    """
    from custody.app import derive

    chosen = _required(codec, "--codec", f"one of {', '.join(derive.TRANSCODE_CODECS)}")
    with open_home(home, db) as c:
        who = party_or_default(by.strip() or None, c)
        signer = c.signer(who, passphrases(passphrase_file))
        with Progress(f"derive transcode {item}") as progress:
            progress.phase("transcoding, hashing the copy (ffmpeg)")
            result = derive.transcode(
                c,
                item,
                codec=chosen,
                crf=crf,
                by=signer,
                reason=reason,
                now=now,
                case=case,
                sha256=sha256,
            )
    _report(result, json_)


@derive_app.command("lineage")
def lineage_cmd(
    item: ItemArg,
    case: CaseOpt = None,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Prove a derived item's lineage from the evidence store.

    Exit 0 when proven (or, for a lossy transcode, stated); exit 1 naming the stream,
    packet or frame where the copy is not what its derive entry declares.
    """
    from custody.app import derive, evidence

    with open_home(home, db) as c:
        row = evidence.resolve_item(c, item, case)
        found = derive.lineage(c, row)
    if json_:
        out: dict[str, Any] = {"exhibit": row.exhibit, "item": row.blake3, "derived": False}
        if found is not None:
            out = {"derived": True, **found.to_json()}
        emit_json(out)
        return
    if found is None:
        typer.echo(f"exhibit {row.exhibit} ({row.name}) was ingested, not derived: no lineage")
        return
    typer.echo(f"exhibit {row.exhibit}: {row.name}")
    for line in found.lines():
        typer.echo(f"  {line}")
