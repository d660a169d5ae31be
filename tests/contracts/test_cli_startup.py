"""Start-up contract: what `import custody.cli.main`, `custody --help` and `custody log key`
load, in a fresh interpreter (issue #15: both commands answer in a blink).

Structural, not timed (`make bench` measures `cli_help_s`): the command modules import
the database layer, the crypto, PyAV, fpdf2, rich, BLAKE3 and the use cases inside the
commands that use them, and typer's pydantic coercion is kept off the paths that need
none (custody.cli.main: `_Group`, `_Command`, `_PlainRuntimeParam`).  `custody log key`
reads the key from the home's SQLite file without SQLAlchemy
(custody.cli.log._recorded_log_key) and falls back to opening the home as every command
does when anything is unusual; both ways print the same key.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import invoke

# Runs `custody ARGS` through custody.cli.main and, at exit, writes the names of every
# module it imported to the file named by the first argument (no ARGS: only the import).
RUNNER = """
import atexit, json, sys
out, args = sys.argv[1], sys.argv[2:]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
import custody.cli.main
if args:
    custody.cli.main.main(args)
"""

# Never loaded by the import or by `--help`.
HEAVY = (
    "sqlalchemy",
    "sqlmodel",
    "psycopg",
    "pydantic",
    "cryptography",
    "nacl",
    "av",
    "fpdf",
    "rich",
    "blake3",
    "custody.app.home",
    "custody.infra",
    "custody.report",
    "custody.bundle",
    "custody.media",
)
# `custody log key` checks the key it prints (custody.tlog.note, which loads the crypto
# libraries), and nothing else on this list.
HEAVY_FOR_LOG_KEY = tuple(m for m in HEAVY if m not in ("cryptography", "nacl"))
# What it does load of custody.infra: the standard library's sqlite3 reader of meta rows.
QUICK_READER = ["custody.infra", "custody.infra.quickmeta"]


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[str, set[str]]:
    """`custody ARGS` in a new interpreter: its stdout, and the modules it imported.
    Fails the test unless it exits 0."""
    listing = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(listing), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, set(json.loads(listing.read_text()))


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """The modules of `modules` that are one of `packages` or inside one."""
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


def test_importing_the_cli_loads_nothing_heavy(tmp_path: Path) -> None:
    _, modules = run(tmp_path)
    assert "custody.cli.main" in modules and "custody.cli.evidence" in modules
    assert loaded(modules, HEAVY) == []


@pytest.mark.parametrize("args", [("--help",), ("log", "key", "--help"), ("ingest", "--help")])
def test_help_loads_nothing_heavy(tmp_path: Path, args: tuple[str, ...]) -> None:
    out, modules = run(tmp_path, *args)
    assert out.startswith("Usage: custody")
    assert loaded(modules, HEAVY) == []


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A custody home made by `custody init`, and the log key its init printed."""
    root = tmp_path_factory.mktemp("startup-home") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CUSTODY_PASSPHRASE", "startup passphrase")
        mp.setenv("CUSTODY_KDF_PROFILE", "fast")
        mp.delenv("CUSTODY_DB", raising=False)
        mp.delenv("CUSTODY_HOME", raising=False)
        r = invoke("init", "--origin", "startup.example/log", "--home", str(root))
        assert r.code == 0, r
    line = next(x for x in r.stdout.splitlines() if x.startswith("log verifier key:"))
    return root, line.split(":", 1)[1].strip()


def _full_path_key(root: Path, db: str | None = None) -> str:
    """The log key as every other command sees it: through `Custody`, the database layer."""
    from custody.app.home import Custody

    with Custody.open(root, db) as c:
        return c.log_key.encode()


def test_log_key_reads_the_home_without_the_database_layer(
    tmp_path: Path, home: tuple[Path, str]
) -> None:
    root, vkey = home
    out, modules = run(tmp_path, "log", "key", "--home", str(root))
    assert out == vkey + "\n" == _full_path_key(root) + "\n"
    # Only the standard library's sqlite3 reader of the meta rows (custody.infra.quickmeta).
    assert loaded(modules, HEAVY_FOR_LOG_KEY) == QUICK_READER
    assert "custody.cli.log" in modules
    doc, modules = run(tmp_path, "log", "key", "--json", env={"CUSTODY_HOME": str(root)})
    assert json.loads(doc) == {"origin": "startup.example/log", "vkey": vkey}
    assert loaded(modules, HEAVY_FOR_LOG_KEY) == QUICK_READER


def test_log_key_follows_db_as_the_home_does(tmp_path: Path, home: tuple[Path, str]) -> None:
    """--db / CUSTODY_DB / custody.toml name the database, as `Home.locate` resolves them."""
    root, vkey = home
    other = tmp_path / "elsewhere"
    other.mkdir()
    url = f"sqlite:///{root / 'custody.db'}"
    for args, env in (
        (("--home", str(other), "--db", url), {}),
        (("--home", str(other)), {"CUSTODY_DB": url}),
    ):
        out, modules = run(tmp_path, "log", "key", *args, env=env)
        assert out == vkey + "\n"
        assert loaded(modules, HEAVY_FOR_LOG_KEY) == QUICK_READER
    (other / "custody.toml").write_text(f'db = "{url}"\n')
    out, modules = run(tmp_path, "log", "key", "--home", str(other))
    assert out == vkey + "\n" == _full_path_key(other) + "\n"
    assert loaded(modules, HEAVY_FOR_LOG_KEY) == QUICK_READER


def _copy_db(root: Path, to: Path) -> Path:
    """A copy of the home's database at `to`/custody.db (sqlite's backup: WAL included)."""
    to.mkdir()
    src, dst = sqlite3.connect(root / "custody.db"), sqlite3.connect(to / "custody.db")
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return to


@pytest.mark.parametrize(
    "change, why",
    [
        ("UPDATE meta SET value = '99' WHERE key = 'schema'", "a schema it does not know"),
        ("UPDATE meta SET value = 'not a key' WHERE key = 'log_vkey'", "a broken key"),
        ("DELETE FROM meta WHERE key = 'log_vkey'", "no key"),
    ],
    ids=["schema", "broken-key", "no-key"],
)
def test_log_key_leaves_anything_unusual_to_the_full_path(
    tmp_path: Path, home: tuple[Path, str], change: str, why: str
) -> None:
    """Where the quick read meets what it does not expect, `custody log key` opens the home
    as every command does: it loads the database layer, and says what every command says."""
    copy = _copy_db(home[0], tmp_path / "copy")
    conn = sqlite3.connect(copy / "custody.db")
    try:
        conn.execute(change)
        conn.commit()
    finally:
        conn.close()
    listing = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(listing), "log", "key", "--home", str(copy)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "sqlalchemy" in json.loads(listing.read_text()), why
    r = invoke("log", "key", "--home", str(copy))
    assert (done.returncode, done.stdout, done.stderr) == (r.code, r.stdout, r.stderr)
    assert done.returncode == 3 and done.stderr.startswith("custody: error: ")
    assert done.stdout == ""


def test_log_key_without_a_home_says_so(tmp_path: Path) -> None:
    r = invoke("log", "key", "--home", str(tmp_path / "nowhere"))
    assert r.code == 3
    assert r.stderr.startswith("custody: error: no custody database at ")


def test_the_quick_read_names_what_the_store_names(tmp_path: Path) -> None:
    """custody.infra.quickmeta keeps its own copy of the schema version, and custody.app.settings
    its own form of the SQLite URL, to import no module of the database layer."""
    from custody.app import early, home, settings
    from custody.infra import quickmeta, store

    assert quickmeta.SCHEMA_VERSION == store.SCHEMA_VERSION
    assert early._META_VAULT == home.META_VAULT
    at = settings.locate(tmp_path, None)
    assert at.db_url == store.sqlite_url(tmp_path / "custody.db")
    assert quickmeta.sqlite_path(at.db_url) == tmp_path / "custody.db"


def test_plain_values_are_read_as_typer_reads_them() -> None:
    """Every text or path parameter read without pydantic (`_PlainRuntimeParam`) gives what
    typer's own coercion gives, for the values a command line can hold."""
    import typer
    from typer._click.core import Context
    from typer._coercion import build_runtime_param
    from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

    from custody.cli.main import _PlainRuntimeParam, app

    def commands(cmd: object) -> list[TyperCommand]:
        if isinstance(cmd, TyperGroup):
            return [c for sub in cmd.commands.values() for c in commands(sub)]
        return [cmd] if isinstance(cmd, TyperCommand) else []

    root = typer.main.get_command(app)
    checked = 0
    for command in commands(root):
        ctx = Context(command)
        for p in command.params:
            if not isinstance(p, (TyperArgument, TyperOption)):
                continue
            if not isinstance(p._runtime_param, _PlainRuntimeParam):
                continue
            theirs = build_runtime_param(p.type_descriptor)
            multi = p.multiple or p.nargs == -1
            for value in ("x", "-", "dir/file.mp4", "", "é ü", " spaced "):
                given = (value, "b") if multi else value
                mine = p._runtime_param.coerce(given, param=p, ctx=ctx)
                assert mine == theirs.coerce(given, param=p, ctx=ctx), (command.name, p.name)
                assert type(mine) is type(theirs.coerce(given, param=p, ctx=ctx))
            assert p._runtime_param.coerce(None, param=p, ctx=ctx) == theirs.coerce(
                None, param=p, ctx=ctx
            )
            checked += 1
    assert checked > 100  # --home, --db, --by, paths... on every command
