"""CLI: emergency reviews, retention, legal holds and disposal: `custody review`,
`custody retention set|due`, `custody hold` / `custody hold release`, `custody dispose`.

Thin: parse, call `custody.app.lifecycle`, print (docs/lifecycle.md).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer

from custody.cli.common import (
    CaseOpt,
    DbOpt,
    HomeOpt,
    ItemArg,
    JsonOpt,
    PassFileOpt,
    VaultOpt,
    now,
    open_home,
    party_or_default,
    passphrases,
)
from custody.cli.jsonout import emit_json
from custody.errors import UsageError

if TYPE_CHECKING:
    from custody.app.lifecycle import DueItem, Target

retention_app = typer.Typer(
    help="How long evidence may be kept: set a retention date, list what is past it.",
    no_args_is_help=True,
)

TargetArg = Annotated[
    str,
    typer.Argument(
        metavar="CASE|ITEM",
        help="A case id (the whole case), or an exhibit CASE/NNNN or BLAKE3 digest prefix.",
    ),
]
ByOpt = Annotated[
    str | None,
    typer.Option(
        "--by",
        help="The party who signs (agency, lab or court). Default: CUSTODY_PARTY or custody.toml.",
        show_default=False,
    ),
]


# -- review ----------------------------------------------------------------------------------


def review_cmd(
    entry: Annotated[
        str,
        typer.Argument(
            metavar="ENTRY",
            help="The emergency ingest: its log index, its entry hash, or its exhibit CASE/NNNN.",
        ),
    ],
    by: Annotated[
        str, typer.Option("--by", help="The reviewer (not the party who disclosed); signs.")
    ],
    outcome: Annotated[str, typer.Option("--outcome", help="upheld or rejected.")],
    note: Annotated[str, typer.Option("--note", help="What the review found, and why.")],
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Review an emergency disclosure (an ingest with --legal-basis emergency).

    Another party than the one who disclosed reviews it, within the period the log's
    policy sets (72 hours unless 'custody policy set --review-within' says otherwise);
    a late review is recorded and said to be late.  A rejection restricts the item:
    no access, derive or analysis after it, a handoff only to a court, disposal
    allowed.
    """
    from custody.app import lifecycle

    with open_home(home, db) as c:
        done = lifecycle.review(
            c,
            entry,
            by=by,
            outcome=outcome,
            note=note,
            passphrase=passphrases(passphrase_file),
            now=now(),
        )
    if json_:
        emit_json(done.as_json())
        return
    late = f" (late: it was due by {done.due})" if done.late else ""
    typer.echo(
        f"review recorded as log entry {done.index}: the emergency disclosure of "
        f"{done.exhibit} (entry {done.ingest_index}) {done.outcome} by {by}{late}"
    )
    if done.outcome == "rejected":
        typer.echo(
            f"{done.exhibit} is now restricted: no access, derive or analysis; a handoff "
            "only to a court; it may be disposed of"
        )


# -- retention -------------------------------------------------------------------------------


def _date_opt(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise UsageError(f"{option} {text!r} is not a date like 2026-12-31")


@retention_app.command("set")
def retention_set(
    target: TargetArg,
    until: Annotated[str, typer.Option("--until", help="The last day it may be kept, YYYY-MM-DD.")],
    basis: Annotated[
        str, typer.Option("--basis", help="Why: the law, policy or order that sets it.")
    ],
    by: ByOpt = None,
    case: CaseOpt = None,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Set how long a case or an item may be kept (a signed retention entry).

    An item's own newest retention applies to it, else its case's newest: a later
    entry extends or shortens either.  'custody retention due' lists what is past it.
    """
    from custody.app import lifecycle

    with open_home(home, db) as c:
        party = party_or_default(by, c)
        index, where = lifecycle.set_retention(
            c,
            target,
            until=until,
            basis=basis,
            by=party,
            case=case,
            passphrase=passphrases(passphrase_file),
            now=now(),
        )
    if json_:
        emit_json({"index": index, **_target_json(where), "until": until, "basis": basis})
        return
    typer.echo(f"retention recorded as log entry {index}: {where.label} may be kept until {until}")


def _target_json(t: Target) -> dict[str, str | None]:
    return {
        "case": t.case,
        "exhibit": None if t.item is None else t.item.exhibit,
        "item": t.blake3,
    }


@retention_app.command("due")
def retention_due(
    case: Annotated[str | None, typer.Option("--case", help="Only this case.")] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="The day to judge by, YYYY-MM-DD. Default: today (UTC)."),
    ] = None,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """List the items past their retention date that are not disposed of.

    An item's own newest retention applies, else its case's.  An item under a legal
    hold is listed with the hold: it may not be disposed of until the hold is released.
    """
    from custody.app import lifecycle

    today = _date_opt(as_of, "--as-of") or now().date()
    with open_home(home, db) as c:
        due = lifecycle.retention_due(c, today=today, case=case)
    if json_:
        emit_json({"as_of": today.isoformat(), "due": [d.as_json() for d in due]})
        return
    for d in due:
        typer.echo(_due_line(d))
    held = sum(1 for d in due if d.holds)
    typer.echo(
        f"{len(due)} item(s) past their retention date on {today.isoformat()}"
        + (f", {held} of them under a legal hold" if held else "")
    )


def _due_line(d: DueItem) -> str:
    whose = "its own" if d.scope == "item" else f"case {d.case}'s"
    line = (
        f"{d.exhibit}  {d.name}: kept until {d.until} ({whose} retention, entry {d.index}, "
        f"basis: {d.basis}), {d.days_over} day(s) over"
    )
    for h in d.holds:
        line += f"; under hold (entry {h.index}) placed by {h.by}: {h.reason}"
    return line


# -- legal holds ------------------------------------------------------------------------------


def hold_cmd(
    words: Annotated[
        list[str],
        typer.Argument(
            metavar="[place|release] CASE|ITEM",
            help="'CASE|ITEM' or 'place CASE|ITEM' places a hold; 'release CASE|ITEM' "
            "releases the one in force.",
            show_default=False,
        ),
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why (the case, the court order).")],
    by: ByOpt = None,
    hold: Annotated[
        str | None,
        typer.Option(
            "--hold",
            help="release: which hold (its log index), where the target has several.",
            show_default=False,
        ),
    ] = None,
    case: CaseOpt = None,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Place a legal hold on a case or an item, or release it.

    'custody hold CASE|ITEM --reason TEXT' (or 'custody hold place CASE|ITEM ...')
    places a hold: nothing it covers may be disposed of (a hold on a case covers every
    item of it).  'custody hold release CASE|ITEM --reason TEXT' releases the hold in
    force on exactly that case or item; only the party who placed it, or a court, may.
    Signed by --by (agency, lab or court).
    """
    from custody.app import lifecycle

    action, target = _hold_words(words)
    with open_home(home, db) as c:
        party = party_or_default(by, c)
        pw = passphrases(passphrase_file)
        if action == "place":
            if hold is not None:
                raise UsageError("--hold names the hold to release: use it with 'hold release'")
            index, where = lifecycle.place_hold(
                c, target, reason=reason, by=party, case=case, passphrase=pw, now=now()
            )
            released = None
        else:
            index, where, released = lifecycle.release_hold(
                c, target, reason=reason, by=party, hold=hold, case=case, passphrase=pw, now=now()
            )
    if json_:
        emit_json(
            {
                "index": index,
                "action": action,
                **_target_json(where),
                "released": None if released is None else released.as_json(),
            }
        )
    elif released is None:
        typer.echo(
            f"legal hold placed on {where.label} (log entry {index}): nothing it covers may "
            "be disposed of until it is released"
        )
    else:
        typer.echo(
            f"legal hold on {where.label} (entry {released.index}, placed by {released.by}) "
            f"released (log entry {index})"
        )


def _hold_words(words: list[str]) -> tuple[str, str]:
    if len(words) == 2 and words[0] in ("place", "release"):
        return words[0], words[1]
    if len(words) == 1 and words[0] not in ("place", "release"):
        return "place", words[0]
    if len(words) == 1:
        raise UsageError(
            f"'hold {words[0]}' needs the case or item: custody hold {words[0]} CASE|ITEM "
            "--reason TEXT"
        )
    raise UsageError(
        f"'hold {' '.join(words)}' is not 'hold [place|release] CASE|ITEM'",
        hint="e.g. custody hold 2026-0142 --reason TEXT, or custody hold release 2026-0142/0003 "
        "--reason TEXT",
    )


# -- disposal ----------------------------------------------------------------------------------


def dispose_cmd(
    item: ItemArg,
    by: Annotated[str, typer.Option("--by", help="The holder of the item; signs.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (retention ended, order...).")],
    case: CaseOpt = None,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    vault: VaultOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Dispose of an item: a signed disposal entry, then its file leaves the evidence store.

    Refused under a legal hold on the item or its case.  The entries stay on the log
    (a bundle still verifies and says the item was disposed of); the object and its
    sidecars are deleted, unless an exhibit of another case, not disposed of, holds
    the same file: then they stay.  Run again after an interruption, it finishes the
    removal and appends nothing.
    """
    from custody.app import lifecycle

    with open_home(home, db, vault) as c:
        done = lifecycle.dispose(
            c,
            item,
            by=by,
            reason=reason,
            case=case,
            passphrase=passphrases(passphrase_file),
            now=now(),
        )
    if json_:
        emit_json(done.as_json())
        return
    if done.already:
        typer.echo(f"{done.exhibit} was already disposed of at entry {done.index}")
    else:
        typer.echo(f"{done.exhibit} disposed of (log entry {done.index})")
    if done.kept_for:
        typer.echo(
            f"its file stays in the evidence store: {', '.join(done.kept_for)} (another case, "
            "not disposed of) holds the same file"
        )
    elif done.removed is not None and done.removed.object:
        typer.echo(
            f"removed its file and {done.removed.sidecars} sidecar(s) from the evidence store"
        )
    elif done.removed is not None and done.removed.sidecars:
        typer.echo(
            f"its file was gone already; removed {done.removed.sidecars} sidecar(s) left behind"
        )
    else:
        typer.echo("its file was already removed from the evidence store")
