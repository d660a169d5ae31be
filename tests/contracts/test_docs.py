"""The docs cite only code that exists, and docs/architecture.md names every module.

Every dotted name `custody.a.b` in README.md and docs/ must import (the longest prefix
that is a module) and resolve (the rest, attribute by attribute); every `path/file.py`
and `custody/folder/` must exist under the repository root.  docs/architecture.md must
name every module of the package and every layer contract of pyproject.toml.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# The look-behinds keep a match from starting inside a longer name or path.
DOTTED = re.compile(r"(?<![\w./-])custody(?:\.[A-Za-z_]\w*)+")
FILE_PATH = re.compile(r"(?<![\w./-])(?:[\w-]+/)+[\w-]+\.py\b")
BARE_FILE = re.compile(r"(?<![\w./-])[\w-]+\.py\b")
FOLDER = re.compile(r"(?<![\w./-])custody/(?:[\w-]+/)+(?![\w.-])")
# In a code block of an API section: `def f`, `class C` (decorated or not) and `NAME =` or
# `NAME:` at the start of a line, or `NAME =` after a `;`.  Indented lines are members.
DEFINED = re.compile(
    r"^(?:@dataclass\([^)]*\)\s+)?(?:def|class)\s+(\w+)"
    r"|^([A-Z][A-Za-z0-9_]*)\s*[:=]"
    r"|;\s*([A-Z][A-Za-z0-9_]*)\s*=",
    re.M,
)


def resolve(dotted: str) -> None:
    """Import the longest module prefix of `dotted`, then look up the rest as attributes.

    Raises LookupError naming what is missing.
    """
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for i, attr in enumerate(parts[cut:], start=cut):
            if not hasattr(obj, attr):
                raise LookupError(f"{'.'.join(parts[:i])} has no {attr}")
            obj = getattr(obj, attr)
        return
    raise LookupError(f"no module {parts[0]}")


def stale_references(doc: Path) -> list[str]:
    """What `doc` cites that does not exist, one line per name."""
    text = doc.read_text(encoding="utf-8")
    stale = []
    for name in sorted(set(DOTTED.findall(text))):
        try:
            resolve(name)
        except LookupError as exc:
            stale.append(f"{name}: {exc}")
    for path in sorted(set(FILE_PATH.findall(text)) | set(FOLDER.findall(text))):
        if not (ROOT / path).exists():
            stale.append(f"{path}: no such file or folder")
    return stale


@pytest.mark.parametrize("doc", DOCS, ids=[d.relative_to(ROOT).as_posix() for d in DOCS])
def test_docs_cite_only_what_exists(doc: Path) -> None:
    stale = stale_references(doc)
    assert not stale, f"{doc.relative_to(ROOT)} cites what does not exist:\n" + "\n".join(stale)


def test_architecture_names_files_by_their_whole_path() -> None:
    # A bare `merkle.py` could be any of several files; the layout names each one exactly.
    text = ARCHITECTURE.read_text(encoding="utf-8")
    bare = [m.group(0) for m in BARE_FILE.finditer(text)]
    assert not bare, f"docs/architecture.md: give the whole path of {sorted(set(bare))}"


def test_architecture_names_every_module() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    cited = set(FILE_PATH.findall(text))
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "custody").rglob("*.py")}
    missing = sorted(m for m in modules if m not in cited and not m.endswith("/__init__.py"))
    assert not missing, f"docs/architecture.md does not describe {missing}"


def test_architecture_lists_every_layer_contract() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    ids = [c["id"] for c in config["tool"]["importlinter"]["contracts"]]
    missing = [i for i in ids if f"`{i}`" not in text]
    assert not missing, f"docs/architecture.md does not list the contracts {missing}"


def api_sections(text: str) -> list[tuple[list[str], list[str]]]:
    """Each `### ` section that names modules: (the modules, the names its code blocks define)."""
    sections: list[tuple[list[str], list[str]]] = []
    modules: list[str] = []
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            modules = DOTTED.findall(line) if line.startswith("### ") else []
            if modules:
                sections.append((modules, []))
        elif in_code and modules:
            sections[-1][1].extend(n for m in DEFINED.finditer(line) for n in m.groups() if n)
    return sections


def test_architecture_api_sections_define_only_what_exists() -> None:
    sections = api_sections(ARCHITECTURE.read_text(encoding="utf-8"))
    assert sections, "docs/architecture.md has no API section"
    missing = [
        f"{name} (in none of {modules})"
        for modules, names in sections
        for name in names
        if not any(hasattr(importlib.import_module(m), name) for m in modules)
    ]
    assert not missing, "docs/architecture.md's API sections name what does not exist:\n" + (
        "\n".join(missing)
    )


def test_the_checker_finds_stale_references(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "`custody.tlog.merkle.leaf_hash` and `custody/tlog/merkle.py` exist;\n"
        "`custody.core.merkle`, `custody.tlog.merkle.no_such_function`,\n"
        "`custody/store.py` and `custody/core/` do not.\n",
        encoding="utf-8",
    )
    assert stale_references(doc) == [
        "custody.core.merkle: custody has no core",
        "custody.tlog.merkle.no_such_function: custody.tlog.merkle has no no_such_function",
        "custody/core/: no such file or folder",
        "custody/store.py: no such file or folder",
    ]


def test_the_api_checker_reads_definitions() -> None:
    text = (
        "### `custody.tlog.merkle`\n\n```python\nHASH_SIZE = 32\nA = 1; B_C = 2\n"
        "def leaf_hash(data: bytes) -> bytes\n@dataclass(frozen=True) class Gone: x\n"
        "    def member(self) -> None\n```\n\n## Other\n\n```python\ndef ignored()\n```\n"
    )
    assert api_sections(text) == [
        (["custody.tlog.merkle"], ["HASH_SIZE", "A", "B_C", "leaf_hash", "Gone"])
    ]
