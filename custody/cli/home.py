"""CLI: `custody init`, which creates a custody log and its operator's home, and
`custody join`, which attaches a personal home to an existing log.

Thin: parse, call `custody.app.home.init` / `custody.app.home.join`, print.
"""

from __future__ import annotations

from typing import Annotated

import typer

from custody.cli.common import DbOpt, HomeOpt, JsonOpt, PassFileOpt, VaultOpt, passphrases
from custody.cli.jsonout import emit_json


def init_cmd(
    origin: Annotated[
        str,
        typer.Option(
            "--origin",
            help="The log's name, e.g. 'metro-police.example/custody': lower-case ASCII "
            "letters, digits, '-', '.', '_' and '/', at most 128 characters.",
        ),
    ],
    home: HomeOpt = None,
    db: DbOpt = None,
    vault: Annotated[
        str | None,
        typer.Option(
            "--vault",
            help="A shared evidence store folder (made if missing, mode 2770), recorded in "
            "the database for every home of this log. Default: the home's vault/.",
            show_default=False,
        ),
    ] = None,
    passphrase_file: PassFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Create a custody log: the database, the evidence store and the log's signing key."""
    from custody.app.home import Home, init, url_password

    h = Home.locate(home, db, vault)
    vkey = init(h, origin, passphrases(passphrase_file))
    if json_:
        emit_json(
            {
                "home": h.root,
                "origin": origin,
                "log_key": vkey.encode(),
                "vault": h.vault,
            }
        )
    else:
        typer.echo(f"initialised custody home {h.root}")
        typer.echo(f"log origin:       {origin}")
        typer.echo(f"log verifier key: {vkey.encode()}")
        if h.vault is not None:
            typer.echo(f"evidence store:   {h.vault}")
    if db is not None and url_password(db) is not None:
        typer.echo(
            "custody: warning: the database URL holds a password: it was not written to "
            "custody.toml; put it in ~/.pgpass or PGPASSWORD",
            err=True,
        )
    if not json_:
        typer.echo(
            "Give the verifier key to anyone who will verify this log (e.g. defence counsel)."
        )


def join_cmd(
    db: Annotated[
        str,
        typer.Option(
            "--db",
            help="The log's database URL (no password in it: use ~/.pgpass or PGPASSWORD).",
        ),
    ],
    home: HomeOpt = None,
    vault: VaultOpt = None,
    party: Annotated[
        str | None,
        typer.Option("--party", help="Your party name: the default for --by.", show_default=False),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Create a personal home attached to an existing log (never creates a log).

    Writes the home's custody.toml (the database, and --vault, --party if given)
    and its keys/ folder, then prints the log's origin and verifier key: compare
    them with the log operator's out of band before you sign anything.
    """
    from custody.app.home import Home, join

    h = Home.locate(home, db)
    done = join(h, db, vault, party)
    if json_:
        emit_json(
            {
                "home": h.root,
                "origin": done.origin,
                "log_key": done.log_key.encode(),
                "vault": done.vault,
                "settings": done.settings,
                "party": party,
                "warning": done.vault_note,
            }
        )
        if done.vault_note is not None:
            typer.echo(f"custody: warning: {done.vault_note}", err=True)
        return
    typer.echo(f"joined the log '{done.origin}' in {h.root}")
    typer.echo(f"log verifier key: {done.log_key.encode()}")
    typer.echo(f"evidence store:   {done.vault}")
    typer.echo(f"settings:         {done.settings}")
    if done.vault_note is not None:
        typer.echo(f"custody: warning: {done.vault_note}", err=True)
    typer.echo(
        "Check the verifier key with the log operator out of band, then make your key: "
        "custody key new NAME --role ROLE"
    )
