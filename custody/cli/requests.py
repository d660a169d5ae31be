"""CLI: requests for footage and the owner's answer: `custody request new|answer|list`.

Thin: parse, call `custody.app.requests`, print (docs/spec/request.md).
"""

from __future__ import annotations

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
    party_or_default,
    passphrases,
    read_small,
)
from custody.cli.jsonout import emit_json
from custody.errors import UsageError

request_app = typer.Typer(
    help="Requests for footage, and the owner's answer (consent or refusal).",
    no_args_is_help=True,
)

_TIME_HELP = (
    "YYYY-MM-DDTHH:MM:SSZ in UTC; an offset such as +01:00 instead of Z is converted to "
    "UTC; a date YYYY-MM-DD means the whole day (UTC)"
)
OutOpt = Annotated[
    Path,
    typer.Option("--out", help="The file to write (never overwritten).", show_default=False),
]


@request_app.command("new")
def request_new(
    case: Annotated[str, typer.Option("--case", help="The case the footage is for.")],
    purpose: Annotated[
        str, typer.Option("--purpose", help="Why the footage is asked for (the owner sees it).")
    ],
    start: Annotated[
        str, typer.Option("--from", help=f"Start of the time window: {_TIME_HELP}, from 00:00:00.")
    ],
    end: Annotated[
        str, typer.Option("--to", help=f"End of the time window: {_TIME_HELP}, to 23:59:59.")
    ],
    out: OutOpt,
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="The asking party (an agency, a lab, a court: not an owner); signs. "
            "Default: CUSTODY_PARTY or party in custody.toml.",
        ),
    ] = "",
    area: Annotated[
        str | None,
        typer.Option(
            "--area",
            help='The area: "LAT,LON,RADIUS_M" (decimal degrees, metres), e.g. '
            '"51.5074,-0.1278,250".',
        ),
    ] = None,
    answer_by: Annotated[
        str | None,
        typer.Option(
            "--answer-by",
            help="Date YYYY-MM-DD to answer by: with no answer after it, the request "
            "counts as unanswered (a later answer is still accepted, marked late).",
        ),
    ] = None,
    ref: Annotated[
        str | None, typer.Option("--ref", help="The agency's own reference (incident number).")
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option("--owner", help="The owner asked (key name), if addressed to one owner."),
    ] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Record a signed request for footage of a time window (and area), and write the
    request file to send to the owner."""
    from custody.app import requests

    window = (
        requests.window_time(start, "--from", end=False),
        requests.window_time(end, "--to", end=True),
    )
    if window[0] > window[1]:
        raise UsageError(f"--from {window[0]} is after --to {window[1]}")
    with open_home(home, db) as c:
        made = requests.new_request(
            c,
            case=case,
            by=party_or_default(by, c),
            purpose=purpose,
            start=window[0],
            end=window[1],
            area=area,
            answer_by=answer_by,
            ref=ref,
            owner=owner,
            out=out,
            passphrase=passphrases(passphrase_file),
            now=now(),
        )
    r = made.request
    if json_:
        emit_json(
            {
                "index": made.index,
                "hash": made.hash,
                "already": made.again,
                "case": r.case,
                "party": r.by,
                "owner": r.owner,
                "from": r.start,
                "to": r.end,
                "area": r.area,
                "answer_by": r.answer_by,
                "out": out,
            }
        )
        return
    if made.again:
        typer.echo(
            f"an identical request by {r.by} is on the log already as entry {made.index}: "
            "nothing was appended"
        )
    else:
        typer.echo(f"request recorded as log entry {made.index}")
    typer.echo(f"  hash    {made.hash}")
    typer.echo(f"  case    {r.case}, asked by {r.by}" + (f" of {r.owner}" if r.owner else ""))
    typer.echo(f"  window  {r.start} to {r.end}" + (f", area {r.area}" if r.area else ""))
    if r.answer_by:
        typer.echo(f"  answer by {r.answer_by}")
    typer.echo(f"wrote the request file {out}")
    typer.echo(
        "send it to the owner; they answer in their own custody home with\n"
        f"  custody request answer {out.name} --by OWNER --consent --out ANSWER  "
        "(or --decline)\n"
        "and send the ANSWER file back; append it here with: custody log import ANSWER\n"
        "(this log must know the owner's key first: custody key import FILE, from the "
        "owner's 'custody key export OWNER')"
    )


@request_app.command("answer")
def request_answer(
    request: Annotated[
        Path, typer.Argument(metavar="REQUEST", help="The request file the agency sent.")
    ],
    out: OutOpt,
    by: Annotated[
        str,
        typer.Option("--by", help="The owner answering (key name); signs. Default: CUSTODY_PARTY."),
    ] = "",
    consent: Annotated[
        bool, typer.Option("--consent", help="Consent to what the request asks.")
    ] = False,
    decline: Annotated[bool, typer.Option("--decline", help="Refuse the request.")] = False,
    until: Annotated[
        str | None,
        typer.Option("--until", help="With --consent: last valid day, YYYY-MM-DD."),
    ] = None,
    onward: Annotated[
        str,
        typer.Option("--onward", help="With --consent: onward sharing, none, court or any."),
    ] = "none",
    reason: Annotated[
        str | None, typer.Option("--reason", help="With --decline: why (optional).")
    ] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Answer a request in the owner's home: sign a consent or a refusal and write the
    answer file for the agency (nothing is appended to this home's log)."""
    from custody.app import requests

    if consent == decline:
        raise UsageError("give exactly one of --consent and --decline")
    shown = str(request)
    rf = requests.read_request(read_small(request, "request file"), shown)
    with open_home(home, db) as c:
        answer = requests.answer_request(
            c,
            rf,
            by=party_or_default(by, c),
            consent=consent,
            until=until,
            onward=onward,
            reason=reason,
            out=out,
            passphrase=passphrases(passphrase_file),
            now=now(),
        )
    r = rf.request
    if json_:
        emit_json(
            {
                "request": rf.hash,
                "case": r.case,
                "party": r.by,
                "answer": "consent" if consent else "decline",
                "signature_checked": answer.checked,
                "late": answer.late,
                "out": out,
            }
        )
        return
    typer.echo(
        f"request {rf.hash[:12]} from {r.by}: case {r.case}, {r.start} to {r.end}"
        + (f", area {r.area}" if r.area else "")
        + f", for: {r.purpose}"
    )
    if answer.checked:
        typer.echo(f"  its signature by {r.by} verifies with the key this log has for them")
    else:
        typer.echo(
            f"  its signature was not checked: '{r.by}' is not a party of this home's log "
            f"(import their key with 'custody key import FILE' to check it)"
        )
    what = "consent (limited to that window and area)" if consent else "refusal"
    typer.echo(f"wrote your {what} to {out}")
    if answer.late:
        typer.echo(f"  note: the request asked for an answer by {r.answer_by}; this one is late")
    typer.echo(
        "nothing was added to this home's log; send the file to the agency, which appends "
        "it with: custody log import " + out.name
    )


@request_app.command("list")
def request_list(
    case: Annotated[str | None, typer.Option("--case", help="Only this case's requests.")] = None,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Every request on the log: its window and area, its answers, and its status
    (consented, declined, unanswered: answer-by passed with no answer, or awaiting)."""
    from custody.app import requests

    with open_home(home, db) as c:
        rows = requests.list_requests(c, case=case, today=now().date())
    if json_:
        emit_json([r.as_json() for r in rows])
        return
    if not rows:
        typer.echo("no requests" + (f" in case {case}" if case else "") + " on this log")
        return
    for row in rows:
        r = row.request
        typer.echo(
            f"entry {row.index}  {row.status:<10}  case {r.case}  by {r.by}"
            + (f" of {r.owner}" if r.owner else "")
            + f"  {row.hash[:12]}"
        )
        typer.echo(f"    window  {r.start} to {r.end}" + (f", area {r.area}" if r.area else ""))
        typer.echo(f"    purpose {r.purpose}" + (f" (ref {r.ref})" if r.ref else ""))
        if r.answer_by:
            typer.echo(f"    answer by {r.answer_by}")
        for a in row.answers:
            detail = ""
            if a.kind == "consent":
                detail = f", until {a.until or 'no limit'}, onward {a.onward}"
            elif a.reason:
                detail = f": {a.reason}"
            typer.echo(
                f"    {a.kind:<8} by {a.owner} at {a.time} (entry {a.index})"
                + (" LATE" if a.late else "")
                + detail
            )
