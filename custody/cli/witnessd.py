"""CLI: `custody witness serve` (a C2SP tlog-witness HTTP server) and `custody log
witness` (ask witnesses over HTTP to cosign the log); docs/spec/witness-http.md.

Thin: parse, read the clock and the passphrase, call `custody.app.witnessd` /
`custody.app.witnessing`, print.  Importing this module adds the two commands to
`custody.cli.bundle.witness_app` and `custody.cli.log.log_app`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from custody.cli.bundle import witness_app
from custody.cli.common import (
    DbOpt,
    HomeOpt,
    JsonOpt,
    PassFileOpt,
    now,
    open_home,
    passphrases,
)
from custody.cli.jsonout import emit_json, rfc3339
from custody.cli.log import log_app
from custody.errors import UsageError

# The longest a witness may take to answer before `log witness` gives up on it.
MAX_TIMEOUT = 600.0


@witness_app.command("serve")
def witness_serve(
    key: Annotated[
        str,
        typer.Option(
            "--key", help="Your witness key (role court, defence or witness) in this home."
        ),
    ],
    listen: Annotated[
        str,
        typer.Option(
            "--listen",
            help="HOST:PORT to listen on (port 0: any free port; the address is printed).",
        ),
    ],
    log: Annotated[
        list[str],
        typer.Option(
            "--log",
            help="The verifier key of a log to witness ('custody log key' in its home), or a "
            "file of them. Repeatable; other logs get 404.",
        ),
    ],
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Serve C2SP tlog-witness add-checkpoint: cosign a log's checkpoints if it only grew.

    The same rule as 'witness cosign', with the same state.  Runs until SIGTERM or
    SIGINT (exit 0); one line per request on stderr.
    """
    import signal
    import threading

    from custody.app.home import Home
    from custody.app.witness import WITNESS_ROLES, WitnessStore
    from custody.app.witnessd import WitnessServer, log_keys, parse_listen
    from custody.bundle.reader import parse_trust

    host, port = parse_listen(listen)
    logs = log_keys(parse_trust(log, "--log"))
    located = Home.locate(home, db)
    keyfile = located.keystore.load(key)
    if keyfile.role not in WITNESS_ROLES:
        raise UsageError(
            f"key '{key}' has role {keyfile.role}; a witness key has role "
            f"{', '.join(WITNESS_ROLES)}",
            hint="create one with 'custody key new NAME --role witness' (or court, defence)",
        )
    signer = located.keystore.unlock(key, passphrases(passphrase_file))  # asked once
    server = WitnessServer(
        WitnessStore(located.root),
        signer,
        logs,
        host=host,
        port=port,
        clock=lambda: int(now().timestamp()),
        log=sys.stderr,
        stamp=lambda: now().isoformat().replace("+00:00", "Z"),
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        typer.echo(f"witnessing {', '.join(sorted(logs))} as {key} ({keyfile.role})", err=True)
        typer.echo(f"listening on {server.url}")
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    typer.echo("stopped", err=True)


@log_app.command("witness")
def log_witness(
    url: Annotated[
        list[str],
        typer.Option(
            "--url",
            help="A witness's C2SP tlog-witness prefix, e.g. http://witness.example:8080. "
            "Repeatable.",
        ),
    ],
    quorum: Annotated[
        int | None,
        typer.Option(
            "--quorum",
            min=1,
            help="How many must cosign (default: all given).",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0.1, max=MAX_TIMEOUT, help="Seconds to wait for each witness."
        ),
    ] = 10.0,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Send the latest checkpoint to witnesses over HTTP and keep their cosignatures.

    Each gets a consistency proof from the size it last cosigned (a 409 is retried
    once from the size it reports).  Exit 0 when at least --quorum cosigned; 1
    when too few did, naming each refusal; 3 when the others were unreachable.
    """
    from custody.app.witnessing import witness_log

    with open_home(home, db) as c:
        report = witness_log(c, url, quorum=quorum, timeout=timeout)
    if json_:
        from datetime import UTC, datetime

        doc = report.to_json()
        doc["verified"] = report.ok
        for w in doc["witnesses"]:
            # `timestamp` is the cosignature's (Unix seconds); `time` the same in RFC 3339.
            t = w.get("timestamp")
            w["time"] = None if t is None else rfc3339(datetime.fromtimestamp(t, UTC))
        emit_json(doc)
    else:
        typer.echo(
            f"witnessing {report.origin} at size {report.size}: {report.cosigned} of "
            f"{len(report.outcomes)} cosigned (quorum {report.quorum})"
        )
        for outcome in report.outcomes:
            typer.echo(f"  {outcome.line()}")
    report.raise_for_quorum()
