"""Keep the layers honest, quickly: read every module's import statements (docs/architecture.md).

These checks read one file at a time, so they see only direct imports; the import-linter
contracts in pyproject.toml follow the whole import graph (test_import_linter.py runs them).
What these checks add is what an import graph cannot show: that the pure layers call no clock.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "custody"
PURE_LAYERS = ("tlog", "model", "media")

# What the pure layers may never import: databases, subprocesses, process pools, sockets,
# the clock module, the terminal and PDF libraries, and every layer that does I/O.
PURE_FORBIDDEN = (
    "sqlmodel",
    "sqlalchemy",
    "psycopg",
    "sqlite3",
    "subprocess",
    "multiprocessing",
    "concurrent",
    "socket",
    "time",
    "typer",
    "click",
    "rich",
    "fpdf",
    "ffmpeg",
    "custody.infra",
    "custody.app",
    "custody.cli",
    "custody.bundle",
    "custody.report",
)
# Only these modules (a path, or a folder ending in "/") may import these packages.
OWNERS: dict[str, tuple[str, ...]] = {
    "sqlmodel": ("infra/store.py",),
    "sqlalchemy": ("infra/store.py",),
    "subprocess": ("infra/ffmpeg.py",),
    "ffmpeg": ("infra/ffmpeg.py",),
    "typer": ("cli/",),
    "click": ("cli/",),
    "rich": ("cli/",),
    "fpdf": ("report/",),
}
# Calls that read the clock.  The pure layers take time as an argument instead.
CLOCK_CALLS = (
    "datetime.now",
    "datetime.utcnow",
    "datetime.today",
    "date.today",
    "time.time",
    "time.time_ns",
    "time.monotonic",
    "time.perf_counter",
)


def module_name(path: Path, root: Path) -> str:
    """The dotted name of the module at `path` inside the package directory `root`."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = PACKAGE) -> set[str]:
    """Every module name that `path` imports, relative imports resolved against `root`.

    `from a.b import c` yields both `a.b` and `a.b.c`, since `c` may be a submodule; a
    forbidden name is always a module, so the extra attribute names never match one.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def clock_calls_of(path: Path) -> set[str]:
    """The clock-reading calls (CLOCK_CALLS) made in `path`, as written."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            called = ast.unparse(node.func)
            if any(called == c or called.endswith("." + c) for c in CLOCK_CALLS):
                found.add(called)
    return found


def _hits(names: set[str], forbidden: str) -> bool:
    return any(n == forbidden or n.startswith(forbidden + ".") for n in names)


def pure_violations(path: Path, root: Path = PACKAGE) -> list[str]:
    """What a pure-layer module at `path` imports or calls that it must not."""
    names = imports_of(path, root)
    bad = [f"imports {f}" for f in PURE_FORBIDDEN if _hits(names, f)]
    bad += [f"calls {c}()" for c in sorted(clock_calls_of(path))]
    return bad


def owner_violations(path: Path, root: Path = PACKAGE) -> list[str]:
    """The packages of OWNERS that `path` imports although it is none of their owners."""
    rel = path.relative_to(root).as_posix()
    names = imports_of(path, root)
    return [
        f"{rel} imports {package}"
        for package, owners in OWNERS.items()
        if _hits(names, package) and not any(rel == o or rel.startswith(o) for o in owners)
    ]


PURE = sorted(p for layer in PURE_LAYERS for p in (PACKAGE / layer).glob("*.py"))


@pytest.mark.parametrize("path", PURE, ids=[f"{p.parent.name}/{p.name}" for p in PURE])
def test_pure_layers_import_no_io_and_read_no_clock(path: Path) -> None:
    bad = pure_violations(path)
    assert not bad, f"{path.relative_to(PACKAGE)}: {bad}: the pure layers stay pure"


def test_only_owners_import_their_packages() -> None:
    bad = [v for path in sorted(PACKAGE.rglob("*.py")) for v in owner_violations(path)]
    assert not bad, bad


def test_layer_packages_exist() -> None:
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages == {"tlog", "model", "media", "bundle", "infra", "app", "report", "cli"}
    want = {"merkle.py", "note.py", "checkpoint.py", "entry.py", "types.py", "digest.py"}
    assert {p.name for p in PURE} >= want


def test_checks_catch_a_crossing_in_a_synthetic_module(tmp_path: Path) -> None:
    root = tmp_path / "custody"
    (root / "tlog").mkdir(parents=True)
    bad = root / "tlog" / "bad.py"
    bad.write_text(
        "import sqlalchemy\n"
        "from custody.infra import store\n"
        "from ..cli import main\n"
        "from . import merkle\n"
        "from datetime import UTC, datetime\n"
        "import subprocess as sp\n"
        "def stamp() -> str:\n"
        "    import rich.console\n"
        "    return datetime.now(UTC).isoformat()\n",
        encoding="utf-8",
    )
    assert imports_of(bad, root) >= {"custody.infra.store", "custody.cli.main", "custody.tlog"}
    assert pure_violations(bad, root) == [
        "imports sqlalchemy",
        "imports subprocess",
        "imports rich",
        "imports custody.infra",
        "imports custody.cli",
        "calls datetime.now()",
    ]
    assert owner_violations(bad, root) == [
        "tlog/bad.py imports sqlalchemy",
        "tlog/bad.py imports subprocess",
        "tlog/bad.py imports rich",
    ]


def test_checks_pass_a_clean_synthetic_module(tmp_path: Path) -> None:
    root = tmp_path / "custody"
    (root / "model").mkdir(parents=True)
    clean = root / "model" / "clean.py"
    clean.write_text(
        "from datetime import UTC, datetime\n"
        "from custody.errors import FormatError\n"
        "from custody.tlog import merkle\n"
        "from .entry import Entry\n"
        "def parse(text: str, now: datetime) -> datetime:\n"
        "    return datetime.fromisoformat(text).astimezone(UTC)\n",
        encoding="utf-8",
    )
    assert imports_of(clean, root) >= {"custody.model.entry", "custody.tlog.merkle"}
    assert pure_violations(clean, root) == []
    assert owner_violations(clean, root) == []
