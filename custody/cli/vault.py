"""CLI: the evidence store against the log: `custody vault check`.

Thin: parse, call `custody.app.lifecycle.check_store` (`custody.app.evidence.check_vault`
with disposals taken into account), print (docs/ingest.md, "Checking the store";
docs/lifecycle.md, "Disposal").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from custody.cli.common import DbOpt, HomeOpt, JsonOpt, VaultOpt, open_home
from custody.cli.jsonout import emit_json
from custody.errors import VerificationError

if TYPE_CHECKING:
    from custody.app.lifecycle import StoreCheck

vault_app = typer.Typer(
    help="The write-once evidence store: check it against the log.", no_args_is_help=True
)


@vault_app.command("check")
def check_cmd(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Also finish or remove what interrupted runs left in staging/, and move "
            "objects no entry names into vault/quarantine/.",
        ),
    ] = False,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Check only that each exhibit's object is there, without re-hashing it.",
        ),
    ] = False,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    vault: VaultOpt = None,
) -> None:
    """List objects without entries, entries without objects or with altered ones, and
    crash leftovers.

    Every object an exhibit names is re-hashed (reads the whole store; --quick checks
    only that it is there).  An exhibit disposed of ('custody dispose') is listed as
    disposed, by whom and when, not as missing.  Exit 0 when every object is named by
    an entry and every entry's object is there and intact (or disposed of); 1
    otherwise, a disposed object still in the store included.  Without --repair
    nothing is changed.
    """
    from custody.app import lifecycle

    with open_home(home, db, vault) as c:
        found = lifecycle.check_store(c, repair=repair, rehash=not quick)
    if json_:
        emit_json({**found.as_json(), "verified": found.ok})
    else:
        _print(found)
    if not found.ok:
        base = found.check
        problems = (
            len(base.orphans)
            + len(base.missing)
            + len(base.leftovers)
            + len(base.damaged)
            + len(found.still_stored)
        )
        if base.ok:  # only disposed-of objects that are still there
            raise VerificationError(
                f"the evidence store still holds {len(found.still_stored)} disposed-of "
                "object(s) (see above)",
                hint="an interrupted 'custody dispose' left them: run 'custody dispose ITEM' "
                "again to finish the removal",
            )
        raise VerificationError(
            f"the evidence store does not match the log: {problems} problem(s) (see above)",
            hint="run 'custody vault check --repair' to finish or remove crash leftovers "
            "and quarantine unnamed objects; a missing or altered object must be restored "
            "from a backup or re-ingested from the original medium",
        )


def _print(store: StoreCheck) -> None:
    found = store.check
    if found.repaired is not None:
        for h in found.repaired.placed:
            typer.echo(f"placed    {h}  (staged copy whose entry was committed)")
        for h in found.repaired.removed:
            typer.echo(f"removed   {h}  (staged copy that no entry names)")
        for h in found.quarantined:
            typer.echo(f"quarantined {h}  (object that no entry names)")
    for h in found.orphans:
        typer.echo(f"object without entry: {h}")
    for m in found.missing:
        note = (
            "  (a staged copy is waiting: the next ingest or --repair places it)"
            if m.staged
            else ""
        )
        typer.echo(f"entry without object: exhibit {m.exhibit}  {m.blake3}  {m.name}{note}")
    for d in found.damaged:
        typer.echo(f"altered object: exhibit {d.exhibit}  {d.blake3}  {d.name}: {d.problem}")
    for h in found.leftovers:
        typer.echo(f"staged leftover: {h}  (from an interrupted run)")
    for exhibit, gone in store.disposed:
        typer.echo(f"disposed: exhibit {exhibit}  {gone.item}  {gone.says()}")
    for exhibit, kept in store.still_stored:
        typer.echo(
            f"disposed but still stored: exhibit {exhibit}  {kept.item}  {kept.says()}: run "
            f"'custody dispose {exhibit}' again to remove it"
        )
    verdict = "OK" if store.ok else "PROBLEMS"
    checked = "every object re-hashed" if found.rehashed else "objects not re-hashed (--quick)"
    typer.echo(
        f"{verdict}: evidence store {found.as_json()['vault']}: {found.objects} object(s), "
        f"{found.items} exhibit(s) on the log"
        + (f" ({len(store.disposed)} disposed of)" if store.disposed else "")
        + f"; {checked}"
    )
