"""The custody command line: the typer app, built from one module per command group.

The command modules (`home`, `keys`, `log`, `evidence`, `custody`, `derive`, `bundle`,
`report`) parse arguments, read the clock and passphrases, call the library and print;
what they share is in `custody.cli.common`, which imports no sibling.  This module
only assembles them, in the order `custody --help` lists them, and holds `main()`:
the one place that turns a CustodyError into a one-line message and an exit code
(docs/errors.md): 0 ok, 1 verification failed, 2 usage error, 3 input or storage
problem.  No traceback reaches a user (set CUSTODY_DEBUG=1 to see one for an
internal error).

Nothing heavy is imported here or by the command modules at import time (the
database layer, fpdf2, rich, ffmpeg): `custody --help` needs only typer.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, NoReturn

import typer
from typer._click.core import Context
from typer._coercion import PassThroughRuntimeParam
from typer.core import TyperGroup, TyperOption

from custody import __version__
from custody.cli import (
    analysis,
    audit,
    bundle,
    db,
    derive,
    evidence,
    home,
    keys,
    lifecycle,
    log,
    report,
    requests,
    timestamp,
    vault,
)
from custody.cli import custody as parties
from custody.cli import publish as publishing
from custody.cli import witnessd as _witnessd  # noqa: F401  (adds witness serve, log witness)
from custody.errors import EXIT_INPUT, EXIT_USAGE, CustodyError


class _Group(TyperGroup):
    """A typer group whose own `--help` flag is read without pydantic.

    typer 0.29 coerces each parameter's value through a pydantic TypeAdapter built on
    first use.  A group's `--help` is processed, as "not given", every time one of
    its subcommands runs, so `custody log --help` would import pydantic (0.15 s, half
    the start-up) only to learn that the root's flag is absent.  A flag's value is
    None or a bool and needs no coercion: typer's pass-through coercion, set before
    first use, returns it as it is.  tests/cli/test_startup.py fails if typer stops
    honouring this.
    """

    def get_help_option(self, ctx: Context) -> TyperOption | None:
        option = super().get_help_option(ctx)
        if option is not None and option._runtime_param is None:
            option._runtime_param = PassThroughRuntimeParam(
                parameter_info=option.type_descriptor.parameter_info, annotation=bool
            )
        return option


app = typer.Typer(
    cls=_Group,
    name="custody",
    help="Forensic chain of custody for camera footage: a write-once evidence store and an "
    "append-only, signed Merkle log that anyone can verify offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"custody {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """custody: record, sign and verify the chain of custody of camera footage."""


# Commands first, then groups: the order `custody --help` lists them in.
app.command("init")(home.init_cmd)
app.command("join")(home.join_cmd)
app.command("ingest")(evidence.ingest_cmd)
app.command("verify")(evidence.verify_cmd)
app.command("show")(evidence.show_cmd)
app.command("history")(evidence.history_cmd)
app.command("open")(parties.open_cmd)
app.command("export")(bundle.export_cmd)
app.command("verify-bundle")(bundle.verify_bundle_cmd)
app.command("report")(report.report_cmd)
app.command("monitor")(publishing.monitor_cmd)
app.add_typer(keys.key_app, name="key", cls=_Group)
log.log_app.command("timestamp")(timestamp.timestamp_cmd)
log.log_app.command("publish")(publishing.log_publish_cmd)
app.add_typer(log.log_app, name="log", cls=_Group)
app.add_typer(evidence.case_app, name="case", cls=_Group)
app.add_typer(parties.consent_app, name="consent", cls=_Group)
app.add_typer(parties.handoff_app, name="handoff", cls=_Group)
app.add_typer(derive.derive_app, name="derive", cls=_Group)
app.add_typer(requests.request_app, name="request", cls=_Group)
app.command("review")(lifecycle.review_cmd)
app.add_typer(lifecycle.retention_app, name="retention", cls=_Group)
app.command("hold")(lifecycle.hold_cmd)
app.command("dispose")(lifecycle.dispose_cmd)
app.add_typer(analysis.analysis_app, name="analysis", cls=_Group)
app.add_typer(analysis.policy_app, name="policy", cls=_Group)
app.command("audit")(audit.audit_cmd)
app.command("transparency")(audit.transparency_cmd)
app.add_typer(bundle.witness_app, name="witness", cls=_Group)
app.add_typer(vault.vault_app, name="vault", cls=_Group)
app.add_typer(db.db_app, name="db", cls=_Group)


# -- the one exit boundary ---------------------------------------------------------------


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"custody: error: {message}\n")
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `custody` console script.

    Never returns normally with an error: it exits with the documented code.
    """
    try:
        rc = app(args=argv, prog_name="custody", standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except CustodyError as exc:
        _fail(exc.diagnostics(), exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _fail("aborted", EXIT_USAGE)
    except typer.TyperException as exc:
        # Usage errors: name the option or argument, one line, exit 2.
        _fail(exc.format_message().replace("\n", " "), EXIT_USAGE)
    except KeyboardInterrupt:
        _fail("interrupted; nothing half-written was kept (re-run to finish)", 130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # the last line of defence: no traceback for users
        if os.environ.get("CUSTODY_DEBUG"):
            raise
        _fail(
            f"internal error: {type(exc).__name__}: {exc} (set CUSTODY_DEBUG=1 for details "
            "and please report it)",
            EXIT_INPUT,
        )


if __name__ == "__main__":
    main()
