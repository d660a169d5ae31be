"""CLI: `custody init`, which creates a custody home.

Thin: parse, call `custody.app.home.init`, print.
"""

from __future__ import annotations

from typing import Annotated

import typer

from custody.cli.common import DbOpt, HomeOpt, PassFileOpt, passphrases


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
    passphrase_file: PassFileOpt = None,
) -> None:
    """Create a custody home: the database, the evidence store and the log's signing key."""
    from custody.app.home import Home, init

    h = Home.locate(home, db)
    vkey = init(h, origin, passphrases(passphrase_file))
    typer.echo(f"initialised custody home {h.root}")
    typer.echo(f"log origin:       {origin}")
    typer.echo(f"log verifier key: {vkey.encode()}")
    typer.echo("Give the verifier key to anyone who will verify this log (e.g. defence counsel).")
