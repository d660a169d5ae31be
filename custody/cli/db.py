"""CLI: `custody db ...`, the database itself: `migrate` (its schema version) and, on
PostgreSQL, `grant` and `roles` (who may append, read, or own the schema).

Thin: parse, call `custody.app.db`, print (docs/database.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import DbOpt, HomeOpt, JsonOpt, read_small
from custody.cli.jsonout import emit_json
from custody.errors import UsageError

db_app = typer.Typer(
    help="The database: schema migration and PostgreSQL roles.", no_args_is_help=True
)


@db_app.command("grant")
def grant_cmd(
    user: Annotated[str, typer.Argument(help="The PostgreSQL role (created if missing).")],
    as_: Annotated[
        str,
        typer.Option(
            "--as",
            help="investigator (append and read), auditor (read only) or operator "
            "(owns the schema: migrations, checkpoints).",
        ),
    ],
    password_file: Annotated[
        Path | None,
        typer.Option("--password-file", help="Set the role's password (first line of F)."),
    ] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Give a PostgreSQL role one custody role (run by the log operator; idempotent).

    An earlier custody role of USER is replaced: an investigator made auditor can no
    longer append.
    """
    from custody.app import db as app_db

    password = None
    if password_file is not None:
        lines = read_small(password_file, "password file").decode("utf-8").splitlines()
        password = lines[0] if lines else ""
        if not password:
            raise UsageError(f"the password file {password_file} is empty")
    done = app_db.grant(user, as_, password=password, home=home, db=db)
    if json_:
        emit_json({"user": done.user, "role": done.role, "created": done.created})
        return
    verb = "created" if done.created else "updated"
    typer.echo(f"{verb} role '{done.user}': {done.role} (group custody_{done.role})")


@db_app.command("roles")
def roles_cmd(json_: JsonOpt = False, home: HomeOpt = None, db: DbOpt = None) -> None:
    """List the PostgreSQL roles that have a custody role."""
    from custody.app import db as app_db

    found = app_db.roles(home=home, db=db)
    if json_:
        emit_json([{"user": u, "role": r} for u, r in found])
        return
    if not found:
        typer.echo("no role has a custody role yet (custody db grant USER --as ROLE)")
    for user, role in found:
        typer.echo(f"{user}  {role}")


@db_app.command("migrate")
def migrate_cmd(home: HomeOpt = None, db: DbOpt = None, json_: JsonOpt = False) -> None:
    """Bring the database to this release's schema version (run by the log operator)."""
    from custody.app import db as app_db

    done = app_db.migrate(home=home, db=db)
    if json_:
        # Schema versions as numbers; an unknown one ("?") as null.
        def number(v: str) -> int | None:
            return int(v) if v.isdigit() else None

        emit_json(
            {
                "migrated": done.migrated,
                "found": number(done.found),
                "version": number(done.version),
            }
        )
        return
    if done.migrated:
        typer.echo(f"migrated the database from schema {done.found} to {done.version}")
    else:
        typer.echo(f"the database is at schema {done.version} already: nothing to do")
