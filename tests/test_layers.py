"""Keep the layers honest: walk every module's imports (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "custody"

# What the pure core may never import: databases, the CLI, subprocesses, the edges.
CORE_FORBIDDEN = (
    "sqlmodel",
    "sqlalchemy",
    "psycopg",
    "sqlite3",
    "subprocess",
    "typer",
    "rich",
    "ffmpeg",
    "multiprocessing",
    "concurrent",
    "socket",
    "custody.store",
    "custody.cli",
    "custody.home",
    "custody.log",
    "custody.media",
    "custody.vault",
    "custody.keystore",
)
# Only these edge modules may import these packages.
OWNERS = {
    "sqlmodel": {"store.py"},
    "sqlalchemy": {"store.py"},
    "subprocess": {"media.py"},
    "ffmpeg": {"media.py"},
    "typer": {"cli.py", "cli_custody.py", "cli_derive.py", "cli_bundle.py", "cli_report.py"},
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _hits(names: set[str], forbidden: str) -> bool:
    return any(n == forbidden or n.startswith(forbidden + ".") for n in names)


CORE = sorted((PACKAGE / "core").glob("*.py"))


@pytest.mark.parametrize("path", CORE, ids=[p.name for p in CORE])
def test_core_imports_no_io_layer(path: Path) -> None:
    names = imports_of(path)
    bad = [f for f in CORE_FORBIDDEN if _hits(names, f)]
    assert not bad, f"custody/core/{path.name} imports {bad}: the core must stay pure"


def test_only_owners_import_their_packages() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        names = imports_of(path)
        for package, owners in OWNERS.items():
            if _hits(names, package):
                assert path.name in owners, f"{path.relative_to(PACKAGE)} imports {package}"


def test_core_modules_exist() -> None:
    assert {p.name for p in CORE} >= {"merkle.py", "note.py", "checkpoint.py", "entry.py"}
