"""CLI: `custody key new|list|show|rotate|revoke|export|import`, the parties' keys.

Thin: parse, call `custody.app.home` / `custody.app.events`, print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    write_out,
)
from custody.cli.jsonout import emit_json

key_app = typer.Typer(
    help="Party keys: create, list, show, rotate, revoke, export, import (Ed25519, encrypted).",
    no_args_is_help=True,
)


# The roles a party may have: custody.model.types.ROLES, which the help cannot import
# without the crypto libraries (tests/cli/test_cli_habits.py checks they agree).
PARTY_ROLES = ("owner", "agency", "lab", "court", "defence", "witness")

HeldByOpt = Annotated[
    str | None,
    typer.Option(
        "--held-by",
        help="The party whose home keeps this private key (recorded in the key entry: "
        "the key is not held by its party alone).",
    ),
]


@key_app.command("new")
def key_new(
    name: Annotated[
        str,
        typer.Argument(
            help="Party name: lower-case ASCII letters, digits, '-', '.' and '_', "
            "starting with a letter or digit, at most 64 characters."
        ),
    ],
    role: Annotated[
        str,
        typer.Option(
            "--role", help=f"The party's role: {', '.join(PARTY_ROLES[:-1])} or {PARTY_ROLES[-1]}."
        ),
    ],
    org: Annotated[str, typer.Option("--org", help="Organisation, e.g. 'Metro Police'.")] = "",
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
    held_by: HeldByOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Create a party's Ed25519 key (encrypted with a passphrase) and register it on the log."""
    with open_home(home, db) as c:
        # A key file already here (from an interrupted 'key new') is registered as it is.
        existing = c.unregistered_key_file(name)
        keyfile, index = c.new_key(
            name, role, org, passphrases(passphrase_file), now(), held_by=held_by
        )
    if json_:
        emit_json(
            {
                "party": name,
                "name": name,
                "role": role,
                "org": org,
                "index": index,
                "vkey": keyfile.verifier_key.encode(),
                "held_by": held_by,
                "existing_key_file": bool(existing),
            }
        )
        return
    if existing:
        typer.echo(f"registered the existing key file of '{name}' ({role}) as log entry {index}")
    else:
        typer.echo(f"created key '{name}' ({role}) and registered it as log entry {index}")
    typer.echo(f"verifier key: {keyfile.verifier_key.encode()}")


@key_app.command("list")
def key_list(home: HomeOpt = None, db: DbOpt = None, json_: JsonOpt = False) -> None:
    """List the parties registered on the log."""
    with open_home(home, db) as c:
        rows = c.parties()
        local = set(c.keystore.names())
    items: list[dict[str, Any]] = [
        {
            "name": r.name,
            "role": r.role,
            "org": r.org,
            "status": r.status,
            "party": r.name,
            "index": r.entry_idx,
            "entry": r.entry_idx,
            "vkey": r.vkey,
            "private_key_here": r.name in local,
        }
        for r in rows
    ]
    if json_:
        emit_json(items)
        return
    if not items:
        typer.echo("no parties yet: create one with 'custody key new NAME --role ROLE'")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "role", "org", "status", "entry", "private key here")
    for i in items:
        table.add_row(
            i["name"],
            i["role"],
            i["org"],
            i["status"],
            str(i["entry"]),
            "yes" if i["private_key_here"] else "no",
        )
    Console().print(table)


@key_app.command("show")
def key_show(name: str, home: HomeOpt = None, db: DbOpt = None, json_: JsonOpt = False) -> None:
    """Print a party's verifier key (safe to share)."""
    with open_home(home, db) as c:
        row = c.party(name)
    if json_:
        emit_json(
            {
                "name": row.name,
                "role": row.role,
                "org": row.org,
                "status": row.status,
                "party": row.name,
                "index": row.entry_idx,
                "entry": row.entry_idx,
                "vkey": row.vkey,
            }
        )
    else:
        typer.echo(row.vkey)


@key_app.command("rotate")
def key_rotate(
    name: str,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
    held_by: HeldByOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Replace a party's key: the new key is introduced in an entry signed by the old one."""
    from custody.app import events

    with open_home(home, db) as c:
        vkey, index = events.rotate_key(
            c, name, passphrases(passphrase_file), now(), held_by=held_by
        )
    if json_:
        emit_json({"party": name, "index": index, "vkey": vkey.encode(), "held_by": held_by})
        return
    typer.echo(f"rotated the key of '{name}' (log entry {index}); new verifier key:")
    typer.echo(vkey.encode())


@key_app.command("revoke")
def key_revoke(
    name: str,
    reason: Annotated[str, typer.Option("--reason", help="Why (e.g. 'laptop stolen').")],
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Revoke a party's key: anything it signs after this is refused; earlier entries stand."""
    from custody.app import events

    with open_home(home, db) as c:
        index = events.revoke_key(c, name, reason, passphrases(passphrase_file), now())
    if json_:
        emit_json({"party": name, "index": index, "reason": reason})
        return
    typer.echo(f"revoked the key of '{name}' (log entry {index})")


@key_app.command("export")
def key_export(
    name: str,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: standard output).")
    ] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Write a party's key registration entry (self-signed) for another log to import."""
    from custody.app import events

    with open_home(home, db) as c:
        data = events.export_key(c, name)
    if json_:
        # The entry's exact bytes are the export; in JSON they travel as text (an entry
        # is UTF-8 text) and, when --out is given, are written there as well.
        if out is not None:
            write_out(data, out)
        emit_json({"party": name, "out": out, "entry_text": data.decode("utf-8")})
        return
    write_out(data, out)


@key_app.command("import")
def key_import(path: Path, home: HomeOpt = None, db: DbOpt = None, json_: JsonOpt = False) -> None:
    """Register another log's party (its self-signed key entry) on this log."""
    from custody.app import events

    with open_home(home, db) as c:
        index = events.import_key(c, read_input(path, "key entry"))
    if json_:
        emit_json({"file": path, "index": index})
        return
    typer.echo(f"imported as log entry {index}")
