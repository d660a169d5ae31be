"""CLI: `custody log timestamp`, RFC 3161 trusted time over the latest checkpoint.

Thin: parse, call `custody.app.timestamp.timestamp_checkpoint`, print.  Registered on
the `log` group by `custody.cli.main`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import DbOpt, HomeOpt, JsonOpt, open_home, read_small
from custody.cli.jsonout import emit_json


def timestamp_cmd(
    tsa: Annotated[
        str,
        typer.Option(
            "--tsa",
            metavar="URL",
            help="The time-stamping authority's RFC 3161 endpoint (http:// or https://).",
        ),
    ],
    tsa_cert: Annotated[
        Path | None,
        typer.Option(
            "--tsa-cert",
            metavar="FILE",
            help="Check the token before storing it: the root of the TSA's chain, or the "
            "TSA's certificate and that root in one PEM file (PEM or DER).",
        ),
    ] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Obtain an RFC 3161 timestamp token over the latest checkpoint and keep it.

    Run it after each 'custody log checkpoint': exports put the tokens into bundles, and
    'verify-bundle --tsa-cert' bounds when each entry was appended.  A checkpoint that
    has a token already is not stamped again.
    """
    from custody.app.timestamp import timestamp_checkpoint
    from custody.infra.vault import display_path

    cert = None if tsa_cert is None else read_small(tsa_cert, "TSA certificate")
    with open_home(home, db) as c:
        stamped = timestamp_checkpoint(c, tsa, tsa_cert=cert)
    if stamped.log_size > stamped.size:
        typer.echo(
            f"custody: warning: the log has {stamped.log_size - stamped.size} entries beyond "
            f"checkpoint {stamped.size}; run 'custody log checkpoint' before 'log timestamp' "
            "so that the timestamp bounds them",
            err=True,
        )
    if json_:
        emit_json(stamped.to_json())
        return
    checked = " (verified with --tsa-cert)" if stamped.verified else ""
    if stamped.already:
        typer.echo(
            f"checkpoint {stamped.size} was already timestamped at {stamped.gen_time} by "
            f"{stamped.tsa}{checked}: {display_path(stamped.path)}"
        )
        return
    typer.echo(
        f"timestamped checkpoint {stamped.size} at {stamped.gen_time} by {stamped.tsa}"
        f"{checked}: {display_path(stamped.path)}"
    )
