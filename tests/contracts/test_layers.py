"""Keep the layers honest: walk every module's imports (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "custody"

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
    "custody.infra.store",
    "custody.cli.main",
    "custody.app.home",
    "custody.infra.log",
    "custody.infra.ffmpeg",
    "custody.infra.vault",
    "custody.infra.keystore",
)
# Only these edge modules may import these packages.
OWNERS = {
    "sqlmodel": {"infra/store.py"},
    "sqlalchemy": {"infra/store.py"},
    "subprocess": {"infra/ffmpeg.py"},
    "ffmpeg": {"infra/ffmpeg.py"},
    "typer": {f"cli/{p.name}" for p in (PACKAGE / "cli").glob("*.py")},
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


CORE = sorted(p for layer in ("tlog", "model", "media") for p in (PACKAGE / layer).glob("*.py"))


@pytest.mark.parametrize("path", CORE, ids=[f"{p.parent.name}/{p.name}" for p in CORE])
def test_core_imports_no_io_layer(path: Path) -> None:
    names = imports_of(path)
    bad = [f for f in CORE_FORBIDDEN if _hits(names, f)]
    assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}: the pure layers stay pure"


def test_only_owners_import_their_packages() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        names = imports_of(path)
        for package, owners in OWNERS.items():
            if _hits(names, package):
                rel = path.relative_to(PACKAGE).as_posix()
                assert rel in owners, f"{rel} imports {package}"


def test_core_modules_exist() -> None:
    want = {"merkle.py", "note.py", "checkpoint.py", "entry.py", "types.py"}
    assert {p.name for p in CORE} >= want
