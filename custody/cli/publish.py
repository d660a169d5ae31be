"""CLI: `custody log publish` (the log as C2SP tlog-tiles) and `custody monitor`.

Thin: parse, call `custody.app.publish` / `custody.app.monitor`, print.  custody.cli.main
registers `log_publish_cmd` on the `log` group and `monitor_cmd` at the top level.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from custody.cli.common import DbOpt, HomeOpt, JsonOpt, open_home
from custody.cli.jsonout import emit_json
from custody.errors import UsageError

if TYPE_CHECKING:
    from custody.tlog.note import VerifierKey


def log_publish_cmd(
    to: Annotated[
        Path,
        typer.Option(
            "--to",
            metavar="DIR",
            help="The folder to publish into (served as is by any static web server).",
        ),
    ],
    with_entries: Annotated[
        bool,
        typer.Option(
            "--with-entries",
            help="Also publish the entries themselves (tile/entries): everything in them "
            "becomes public.",
        ),
    ] = False,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Publish the latest checkpoint and its tiles (C2SP tlog-tiles) into DIR.

    Incremental: writes only new tiles, never changes a full tile, and replaces
    DIR/checkpoint last.  Hashes only unless --with-entries.  Signs nothing: run
    'custody log checkpoint' first to publish entries appended since.
    """
    from custody.app.publish import publish

    with open_home(home, db) as c:
        report = publish(c, to, with_entries=with_entries)
    if json_:
        emit_json(report.to_json())
        return
    since = "" if report.previous is None else f" (was {report.previous})"
    typer.echo(
        f"published {report.origin} at size {report.size}{since} to {to}: "
        f"{report.tiles_written} tile{'' if report.tiles_written == 1 else 's'} written"
        + (f", {report.entry_bundles_written} entry bundles" if with_entries else "")
        + ("" if report.checkpoint_written else ", checkpoint unchanged")
    )
    if report.waiting:
        typer.echo(
            f"{report.waiting} entr{'y' if report.waiting == 1 else 'ies'} appended after "
            "this checkpoint: run 'custody log checkpoint', then publish again",
            err=True,
        )


def _log_key(value: str) -> VerifierKey:
    from custody.bundle.reader import parse_trust
    from custody.tlog.note import ALG_ED25519

    keys = parse_trust([value], option="--log-key")
    logs = [k for k in keys if k.alg == ALG_ED25519]
    if len(logs) != 1:
        raise UsageError(
            f"--log-key {value[:60]!r} must be exactly one Ed25519 verifier key (the log's)",
            hint="get it with 'custody log key' from the agency, out of band",
        )
    return logs[0]


def _witness_keys(values: list[str]) -> tuple[VerifierKey, ...]:
    from custody.bundle.reader import parse_trust
    from custody.tlog.checkpoint import cosignature_verifier_key
    from custody.tlog.note import ALG_ED25519

    return tuple(
        cosignature_verifier_key(k) if k.alg == ALG_ED25519 else k
        for k in parse_trust(values, option="--witness")
    )


def monitor_cmd(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE", help="The published log: a folder or an http(s) URL of one."
        ),
    ],
    log_key: Annotated[
        str,
        typer.Option(
            "--log-key",
            metavar="VKEY",
            help="The log's verifier key (or a file holding it), obtained out of band.",
        ),
    ],
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            metavar="VKEY",
            help="A witness's verifier key (or a file of them): its cosignature, if "
            "present, must verify. Repeatable.",
            show_default=False,
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            metavar="DIR",
            help="Where the last tree seen per log is kept (default: $CUSTODY_MONITOR, else "
            "$XDG_STATE_HOME/custody/monitor, else ~/.local/state/custody/monitor).",
            show_default=False,
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Watch a published log: signature, consistency with the last tree seen, every new tile.

    Exit 0: consistent (the first run trusts what it sees, and says so).  Exit 1: a
    shrunk log, a fork, a rewritten history or a tile that does not hash to its parent.
    """
    from custody.app.monitor import monitor

    report = monitor(
        source, _log_key(log_key), witnesses=_witness_keys(witness or []), state_dir=state
    )
    if json_:
        doc = report.to_json()
        emit_json({**doc, "verified": doc.get("ok") is True})
        return
    typer.echo(report.verdict())
