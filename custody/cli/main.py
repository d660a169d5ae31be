"""The custody command line: the typer app, built from one module per command group.

The command modules (`home`, `keys`, `log`, `evidence`, `custody`, `derive`, `bundle`,
`report`) parse arguments, read the clock and passphrases, call the library and print;
what they share is in `custody.cli.common`, which imports no sibling.  This module
only assembles them, in the order `custody --help` lists them, and holds `main()`:
the one place that turns a CustodyError into a one-line message and an exit code
(docs/errors.md): 0 ok, 1 verification failed, 2 usage error, 3 input or storage
problem, 4 refused by the custody rules.  No traceback reaches a user (set
CUSTODY_DEBUG=1 to see one for an internal error).

Nothing heavy is imported here or by the command modules at import time (the
database layer, fpdf2, rich, PyAV, the crypto libraries): `custody --help` needs only
typer, and neither it nor a command whose values are flags, text and paths imports
pydantic, which typer would use to coerce them (`_Group`, `_PlainRuntimeParam`);
tests/contracts/test_cli_startup.py checks it.  `main()` has typer build only the
command the command line names, the rest in outline (`_pruned`):
tests/cli/test_lazy_app.py checks that every help and error reads as the whole app's.

The groups (`_Group`) also give every command the same habits: a real metavar for
every option (`--to PARTY`, not `<str>`), `[required]` on every option the command
needs, and `--quiet`/`-q` after the command as before it.  typer's shell completion
(`--install-completion`, `--show-completion`) is on.
"""

from __future__ import annotations

import copy
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer._click.core import Context
from typer._coercion import PassThroughRuntimeParam, RuntimeParam
from typer._param_types import coerce_cli_path
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.models import CommandInfo, TyperInfo

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
    verifier,
)
from custody.cli import custody as parties
from custody.cli import publish as publishing
from custody.cli import witnessd as _witnessd  # noqa: F401  (adds witness serve, log witness)
from custody.cli.common import MAX_INDEX, is_quiet, quieted, set_quiet
from custody.errors import EXIT_INPUT, EXIT_OK, EXIT_USAGE, EXIT_VERIFY, CustodyError

# -- help that says what to type (`_honest`) ----------------------------------------------

# Arguments shown other than by their name in capitals.
_ARGUMENT_NAMES = {"paths": "PATH", "items": "ITEM", "case_id": "ID", "offer_path": "OFFER"}
# The metavar of an option that takes a value, by the option's name, where its module
# gives none...
_METAVARS = {
    "--answer-by": "DATE",
    "--area": "LAT,LON,RADIUS_M",
    "--as": "ROLE",
    "--as-of": "DATE",
    "--authority": "TEXT",
    "--basis": "TEXT",
    "--box": "X,Y,W,H",
    "--by": "PARTY",
    "--case": "ID",
    "--check": "FILE",
    "--checkpoint": "SIZE",
    "--codec": "CODEC",
    "--consistency": "FILE",
    "--crf": "N",
    "--db": "URL",
    "--end": "TIME",
    "--every": "SECONDS",
    "--forbid": "KIND",
    "--format": "html|pdf",
    "--from": "TIME",
    "--held-by": "PARTY",
    "--hold": "ENTRY",
    "--home": "DIR",
    "--item": "ITEM",
    "--items": "ITEM",
    "--jobs": "N",
    "--justification": "TEXT",
    "--key": "KEY",
    "--kind": "KIND",
    "--legal-basis": "BASIS",
    "--listen": "HOST:PORT",
    "--log": "VKEY",
    "--log-key": "VKEY",
    "--manifest": "FILE",
    "--media": "DIR",
    "--note": "TEXT",
    "--onward": "none|court|any",
    "--org": "TEXT",
    "--origin": "ORIGIN",
    "--out": "FILE",
    "--outcome": "upheld|rejected",
    "--owner": "PARTY",
    "--party": "PARTY",
    "--passphrase-file": "FILE",
    "--password-file": "FILE",
    "--proof": "FILE",
    "--purpose": "TEXT",
    "--quorum": "N",
    "--reason": "TEXT",
    "--receipt": "FILE",
    "--ref": "REF",
    "--result": "FILE",
    "--review-within": "HOURS",
    "--role": "ROLE",
    "--seen": "DIR",
    "--size": "N",
    "--source": "TEXT",
    "--start": "TIME",
    "--style": "STYLE",
    "--timeout": "SECONDS",
    "--title": "TEXT",
    "--tool": "NAME",
    "--tool-version": "VERSION",
    "--trust": "VKEY",
    "--until": "DATE",
    "--url": "URL",
    "--vault": "DIR",
    "--wait": "SECONDS",
    "--warrant": "REF",
    "--warrant-required": "KIND",
}
# ... and where one name means different things in different commands.
_COMMAND_METAVARS = {
    ("export", "--to"): "DIR|FILE.zip",
    ("report", "--out"): "FILE.html|FILE.pdf",
    ("transparency", "--out"): "FILE.json|FILE.html",
    ("audit", "--from"): "DATE",
    ("audit", "--to"): "DATE",
    ("request new", "--to"): "TIME",
    ("handoff offer", "--to"): "PARTY",
    ("handoff offer", "--from"): "PARTY",
    ("transparency", "--from"): "DATE",
    ("transparency", "--to"): "DATE",
    ("log publish", "--to"): "DIR",
    ("handoff check-receipt", "--checkpoint"): "FILE",
    ("key export", "--out"): "FILE",
}

# Options the command itself requires (to say what to give, or only in one mode), which
# typer cannot mark: their help says so as typer says it of the others.
_REQUIRED_IN_CODE = {
    ("ingest", "--case"): "required",
    ("derive trim", "--start"): "required",
    ("derive trim", "--end"): "required",
    ("derive trim", "--reason"): "required",
    ("derive redact", "--box"): "required",
    ("derive redact", "--reason"): "required",
    ("derive transcode", "--codec"): "required",
    ("derive transcode", "--reason"): "required",
    ("request answer", "--consent"): "required: this or --decline",
    ("request answer", "--decline"): "required: this or --consent",
    ("transparency", "--from"): "required without --check",
    ("transparency", "--to"): "required without --check",
    ("transparency", "--out"): "required without --check",
}

QUIET_HELP = (
    "Print only errors and what was asked for (JSON, a file sent to stdout, a listing): "
    "no progress, notes or warnings on stderr, no 'wrote …' or 'created …' lines."
)
# The commands whose text on stdout says what they did (recorded, wrote), rather than
# being what was asked for: --quiet drops it (not their --json).  Listings, keys, proofs,
# notes and verdicts are what their commands are asked for, and stay.
_SAYS_WHAT_IT_DID = frozenset(
    {
        "init",
        "join",
        "ingest",
        "open",
        "export",
        "report",
        "review",
        "hold",
        "dispose",
        "key new",
        "key rotate",
        "key revoke",
        "key import",
        "log import",
        "log add-cosignature",
        "log witness",
        "log timestamp",
        "log publish",
        "case new",
        "consent grant",
        "consent revoke",
        "handoff offer",
        "handoff accept",
        "handoff reject",
        "handoff receipt",
        "derive trim",
        "derive redact",
        "derive transcode",
        "request new",
        "request answer",
        "retention set",
        "analysis record",
        "policy set",
        "db grant",
        "db migrate",
    }
)


class _Argument(TyperArgument):
    """An argument shown by its name in capitals: `ITEM`, `[PATH]...`, never `{item}` or
    `item <str>`.  Its error messages keep typer's wording (`Invalid value for 'index'`,
    docs/errors.md)."""

    def _label(self) -> str:
        label = self.metavar or _ARGUMENT_NAMES.get(self.name or "", (self.name or "").upper())
        if self.nargs != 1 and not label.endswith("..."):
            label += "..."
        return label

    def _usage_display_name(self) -> str:
        return self._label() if self.required else f"[{self._label()}]"

    def _rich_display_name(self) -> str:
        return self._label()

    def display_type_rich(self, ctx: Context) -> str | None:
        return None

    def _get_number_range_help_str(self) -> str | None:
        return _range(self.min, self.max)


class _Option(TyperOption):
    """An option whose range, when it is only the database's bound, reads `x>=0`."""

    def _get_number_range_help_str(self) -> str | None:
        return _range(self.min, self.max)


def _range(low: float | None, high: float | None) -> str | None:
    """typer's `[0<=x<=9223372036854775807]` as `[x>=0]`: a log index or size has no
    upper bound a user could meet (MAX_INDEX, SQL's BIGINT)."""
    from typer._display import describe_number_range

    return describe_number_range(low, None if high is not None and high >= MAX_INDEX else high)


def _flag_without_pydantic(option: TyperOption) -> TyperOption:
    """`option` (a flag) read without pydantic: typer's pass-through coercion, set before
    first use, returns its None or bool as it is (see `_Group`)."""
    if option._runtime_param is None:
        option._runtime_param = PassThroughRuntimeParam(
            parameter_info=option.type_descriptor.parameter_info, annotation=bool
        )
    return option


@dataclass(frozen=True)
class _PlainRuntimeParam(RuntimeParam):
    """typer's coercion of a text or path value (`str`, `Path`, or a list of either),
    done as its pydantic adapter does it but without importing pydantic (see `_Group`):
    bytes decoded as the file system does, a path through typer's own path checks
    (`coerce_cli_path`: exists, dir_okay, resolve_path...)."""

    def _coerce_value(self, value: Any, param: Any, ctx: Context) -> Any:
        if isinstance(value, (list, tuple)):
            return [self._one(v, param, ctx) for v in value]
        return self._one(value, param, ctx)

    def _one(self, value: Any, param: Any, ctx: Context) -> Any:
        text = os.fsdecode(value) if isinstance(value, bytes) else value
        if _leaf(self.annotation) is str:
            return str(text)
        path = text if isinstance(text, Path) else Path(text)
        return coerce_cli_path(path, self.parameter_info, path_type=Path, param=param, ctx=ctx)


def _leaf(annotation: Any) -> Any:
    """`str` or `Path` from `str`, `Path`, `list[str]` or `list[Path]`; None otherwise."""
    from typing import get_args, get_origin

    if get_origin(annotation) is list:
        (annotation,) = get_args(annotation) or (None,)
    return annotation if annotation in (str, Path) else None


def _plain_without_pydantic(param: TyperOption | TyperArgument) -> None:
    """Read `param` without pydantic where it is plain text or a path with no parser of
    its own (`_PlainRuntimeParam`); numbers, choices and the rest keep typer's way."""
    descriptor = param.type_descriptor
    info = descriptor.parameter_info
    if (
        param._runtime_param is None
        and _leaf(descriptor.annotation) is not None
        and descriptor.file_annotation is None
        and info.parser is None
        and not descriptor.is_choice
    ):
        param._runtime_param = _PlainRuntimeParam(
            parameter_info=info, annotation=descriptor.annotation
        )


_QUIET: list[TyperOption] = []  # the option `_quiet_option` copies, made once


def _quiet_option() -> TyperOption:
    """`--quiet`/`-q` after a subcommand (`custody export C-1 --to X -q`), as before it."""
    if _QUIET:
        return copy.copy(_QUIET[0])
    from typer.main import _get_param
    from typer.models import ParamMeta

    param = _get_param(
        ParamMeta(
            name="quiet",
            default=typer.Option(
                False, "--quiet", "-q", callback=set_quiet, expose_value=False, help=QUIET_HELP
            ),
            annotation=bool,
        )
    )
    assert isinstance(param, TyperOption)
    _QUIET.append(_flag_without_pydantic(param))
    return copy.copy(param)


def _read_signatures_once() -> None:
    """Have typer read each command function's signature once per process, not two or
    three times (it asks again for the callback, the parameter names and the params).

    typer's `get_params_from_function` evaluates every annotation of the function (they
    are strings: `from __future__ import annotations`), a third of what building the app
    for `custody --help` costs.  The answer depends on the function alone; each caller
    still gets its own copy of each parameter's `ParameterInfo`, as typer makes one.
    """
    import typer.main
    from typer.models import ParamMeta

    names = vars(typer.main)  # the module's globals, where its functions look it up
    read = names["get_params_from_function"]
    if getattr(read, "custody_cached", False):
        return
    seen: dict[Any, dict[str, ParamMeta]] = {}

    def params(func: Any) -> dict[str, ParamMeta]:
        got = seen.get(func)
        if got is None:
            got = seen[func] = read(func)
        return {
            name: ParamMeta(name=m.name, default=copy.copy(m.default), annotation=m.annotation)
            for name, m in got.items()
        }

    params.custody_cached = True  # type: ignore[attr-defined]
    names["get_params_from_function"] = params


_read_signatures_once()


class _Command(TyperCommand):
    """A typer command whose `--help` flag is read without pydantic (see `_Group`)."""

    def get_help_option(self, ctx: Context) -> TyperOption | None:
        option = super().get_help_option(ctx)
        return _flag_without_pydantic(option) if option is not None else None


def _json_given(command: TyperCommand, kwargs: dict[str, Any]) -> bool:
    """Whether the command was asked for JSON (`--json`, `--jsonl`)."""
    return any(
        kwargs.get(p.name or "")
        for p in command.params
        if isinstance(p, TyperOption) and {"--json", "--jsonl"} & set(p.opts)
    )


def _honest(command: TyperCommand, path: str) -> None:
    """Give `command` (`path`: e.g. "handoff offer") real metavars, `-q`, and --quiet's effect.

    Every option that takes a value shows a metavar (`--to PARTY`, `--case ID`) instead of
    typer's `<str>` or `<list[str]>`: the module's own, else `_COMMAND_METAVARS`, else
    `_METAVARS`, else the option's name in capitals.  Arguments show as `ITEM` (`_Argument`).
    Options the command requires itself say so (`_REQUIRED_IN_CODE`).
    """
    if type(command) is TyperCommand:
        command.__class__ = _Command
    for p in command.params:
        if isinstance(p, (TyperArgument, TyperOption)):
            _plain_without_pydantic(p)
        if isinstance(p, TyperArgument) and type(p) is TyperArgument:
            p.__class__ = _Argument
        elif isinstance(p, TyperOption):
            if type(p) is TyperOption:
                p.__class__ = _Option
            opt = max(p.opts, key=len)
            if not p.is_flag and p.metavar is None:
                p.metavar = _COMMAND_METAVARS.get((path, opt)) or _METAVARS.get(
                    opt, opt.lstrip("-").upper().replace("-", "_")
                )
            required = _REQUIRED_IN_CODE.get((path, opt))
            if required and not p.required:
                p.help = f"{p.help}  [{required}]" if p.help else f"[{required}]"
    if any("--quiet" in p.opts for p in command.params if isinstance(p, TyperOption)):
        return  # built once already (typer builds the app anew on every call)
    command.params.append(_quiet_option())
    callback = command.callback
    if callback is None:
        return
    says_what_it_did = path in _SAYS_WHAT_IT_DID

    def run(**kwargs: Any) -> Any:
        if not is_quiet():
            return callback(**kwargs)
        with quieted(stdout=says_what_it_did and not _json_given(command, kwargs)):
            return callback(**kwargs)

    command.callback = run


class _Outlined(Exception):
    """An outline (`_OutlineCommand`, `_OutlineGroup`) was about to run: `main()` runs the
    whole app instead."""


class _OutlineCommand(_Command):
    """A command in outline: its name and help, for a group's listing; no parameters.
    It never runs (`_Group.resolve_command`)."""


def _outline_callback() -> None:  # pragma: no cover - an outline never runs
    raise _Outlined


class _Group(TyperGroup):
    """A typer group whose own `--help` flag is read without pydantic, and whose
    commands have honest help (`_honest`).

    typer 0.29 coerces each parameter's value through a pydantic TypeAdapter built on
    first use.  A group's `--help` is processed, as "not given", every time one of
    its subcommands runs, so `custody log --help` would import pydantic (0.15 s, half
    the start-up) only to learn that the root's flag is absent.  A flag's value is
    None or a bool and needs no coercion: typer's pass-through coercion, set before
    first use, returns it as it is.  tests/cli/test_startup.py fails if typer stops
    honouring this.  Each command's own `--help` (`_Command`) is read the same way, and
    its text and path values by `_PlainRuntimeParam`, so that `custody log key` needs
    no pydantic either (tests/contracts/test_cli_startup.py).
    """

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        prefix = "" if self.name in (None, "custody") else f"{self.name} "
        for name, command in self.commands.items():
            if isinstance(command, TyperCommand):
                _honest(command, prefix + name)

    def resolve_command(self, ctx: Context, args: list[str]) -> tuple[Any, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, (_OutlineCommand, _OutlineGroup)):
            raise _Outlined  # before this group's callback or the command's parsing
        return name, command, rest

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        # The group's own flags (--quiet, --version, the completion ones typer adds after
        # building the group) are read without pydantic too.
        for p in self.params:
            if isinstance(p, TyperOption) and p.is_flag:
                _flag_without_pydantic(p)
        return super().parse_args(ctx, args)

    def get_help_option(self, ctx: Context) -> TyperOption | None:
        option = super().get_help_option(ctx)
        return _flag_without_pydantic(option) if option is not None else None


class _OutlineGroup(_Group):
    """A group in outline: its name and help, for its parent's listing; no commands.
    It never runs (`_Group.resolve_command`)."""


app = typer.Typer(
    cls=_Group,
    name="custody",
    help="Forensic chain of custody for camera footage: a write-once evidence store and an "
    "append-only, signed Merkle log that anyone can verify offline.",
    no_args_is_help=True,
    add_completion=True,
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
) -> None:
    """custody: record, sign and verify the chain of custody of camera footage."""
    set_quiet(quiet)


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
app.command("verifier-page")(verifier.verifier_page_cmd)
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


# -- building only what the command line names -------------------------------------------

# The variable click's shell completion sets (`_{PROG}_COMPLETE`): completion needs all.
_COMPLETION_VARIABLE = "_CUSTODY_COMPLETE"


def _outline_of_command(info: CommandInfo) -> CommandInfo:
    """`info` with its name and help but no parameters (`_OutlineCommand`)."""
    from typer.main import get_command_name

    assert info.callback is not None
    outline = copy.copy(info)
    outline.name = info.name or get_command_name(info.callback.__name__)
    outline.help = info.help if info.help is not None else inspect.getdoc(info.callback)
    outline.callback = _outline_callback
    outline.cls = _OutlineCommand
    return outline


def _outline_of_group(info: TyperInfo) -> TyperInfo:
    """`info` with its name and help but no commands (`_OutlineGroup`)."""
    assert info.typer_instance is not None
    outline = copy.copy(info)
    outline.typer_instance = copy.copy(info.typer_instance)
    outline.typer_instance.registered_commands = []
    outline.typer_instance.registered_groups = []
    outline.cls = _OutlineGroup
    return outline


def _pruned(whole: typer.Typer, words: list[str]) -> typer.Typer:
    """`whole` with only the command or group named by `words[0]` built in full (and, in
    that group, only the one `words[1]` names...); the others in outline.

    typer builds every command's parameters (reading 69 signatures) before it parses a
    word, two thirds of the start-up of `custody --help` or `custody log key`.  A listing
    needs only names and help; the command that runs needs its own parameters alone.
    Should a guess be wrong (a word that was an option's value), the outline refuses to
    run and `main()` runs the whole app (`_Outlined`).
    """
    from typer.main import get_command_name

    keep = words[0] if words else None
    pruned = copy.copy(whole)
    commands: list[CommandInfo] = []
    for info in whole.registered_commands:
        if info.cls not in (None, TyperCommand) or info.callback is None:
            commands.append(info)  # a command of its own kind is left as it is
        elif (info.name or get_command_name(info.callback.__name__)) == keep:
            commands.append(info)
        else:
            commands.append(_outline_of_command(info))
    groups: list[TyperInfo] = []
    for group in whole.registered_groups:
        if not isinstance(group.name, str) or group.typer_instance is None:
            groups.append(group)  # a group named by its Typer: left as it is
        elif group.name == keep:
            whole_group = copy.copy(group)
            whole_group.typer_instance = _pruned(group.typer_instance, words[1:])
            groups.append(whole_group)
        else:
            groups.append(_outline_of_group(group))
    pruned.registered_commands = commands
    pruned.registered_groups = groups
    return pruned


def _app_for(args: list[str]) -> typer.Typer:
    """The app to run `custody ARGS` with: the one `_pruned` to the words of `args` (the
    tokens that are not options), or the whole app for shell completion."""
    if os.environ.get(_COMPLETION_VARIABLE):
        return app
    words = []
    for arg in args:
        if arg == "--":
            break
        if not arg.startswith("-"):
            words.append(arg)
    return _pruned(app, words)


def _run(args: list[str]) -> Any:
    """Run `custody ARGS`, building only what they name (`_pruned`)."""
    try:
        return _app_for(args)(args=args, prog_name="custody", standalone_mode=False)
    except _Outlined:
        return app(args=args, prog_name="custody", standalone_mode=False)


# -- the one exit boundary ---------------------------------------------------------------


# Ctrl-C: 128 + SIGINT, as shells report it.
_INTERRUPTED = 130


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"custody: error: {message}\n")
    sys.exit(code)


def _closed_pipe() -> NoReturn:
    """Standard output's reader went away (`custody log verify | head -1`): not an error.

    What is still buffered for stdout goes to the null device, so that the flush at
    exit cannot fail again and print a traceback.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file behind stdout
        pass
    sys.exit(EXIT_OK)


def _stdout_is_null() -> bool:
    """Whether standard output is the null device (a real file descriptor only)."""
    try:
        out, null = os.fstat(sys.stdout.fileno()), os.stat(os.devnull)
    except (OSError, ValueError, AttributeError):
        return False
    return (out.st_dev, out.st_ino) == (null.st_dev, null.st_ino)


def _pipe_closed(null_before: bool) -> bool:
    """Whether an exit 1 was typer's or rich's answer to a closed stdout pipe, not ours.

    typer wraps stdout in its flush-pacifying wrapper first, which nothing else does;
    rich points stdout at the null device first, which it was not when we started.
    """
    from typer._click.utils import PacifyFlushWrapper

    if isinstance(sys.stdout, PacifyFlushWrapper):
        return True
    return not null_before and _stdout_is_null()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `custody` console script.

    Never returns normally with an error: it exits with the documented code
    (docs/errors.md): 0, 1 (verification), 2 (usage), 3 (input, storage),
    4 (refused by the custody rules), 75 (pending), 130 (interrupted).
    """
    null_before = _stdout_is_null()
    try:
        rc = _run(sys.argv[1:] if argv is None else list(argv))
        if rc == _INTERRUPTED:  # typer's answer to Ctrl-C in a command: say so, as below
            raise KeyboardInterrupt
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
        _fail("interrupted; nothing half-written was kept (re-run to finish)", _INTERRUPTED)
    except BrokenPipeError:
        _closed_pipe()
    except SystemExit as exc:
        if exc.code == EXIT_VERIFY and _pipe_closed(null_before):
            _closed_pipe()
        raise
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
