"""Start-up: what `custody --help` and `custody verify-bundle` import.

`custody --help` must not pay for the database layer, fpdf2 or rich: each command
imports what it needs inside itself.  `custody verify-bundle` is what defence counsel
runs: it must never import the store or SQLAlchemy (docs/verify-bundle.md).  Both run
in a fresh interpreter (a subprocess), which reports every module it imported when
it exits.  No timing here: `make bench` measures `cli_help_s`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import clips
import pytest
from conftest import PASSPHRASE, invoke

# Runs `custody ARGS` through custody.cli.main and, at exit, writes the names of every
# module it imported to the file named by the first argument.
RUNNER = """
import atexit, json, sys
out, args = sys.argv[1], sys.argv[2:]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
from custody.cli import main
main(args)
"""

# Nothing a help text needs: the database layer, the report's PDF library, rich, the
# use cases on a home, the report, and what only hashing or signing needs; nor pydantic,
# which typer uses to coerce the values of the command that runs (custody.cli.main's
# _Group keeps a group's `--help` flag from needing it).
NOT_FOR_HELP = (
    "sqlalchemy",
    "sqlmodel",
    "pydantic",
    "fpdf",
    "rich",
    "blake3",
    "cryptography",
    "nacl",
    "custody.infra",
    "custody.app",
    "custody.report",
    "custody.bundle",
)
# Never in verify-bundle: a store, a home, the database layer.
NOT_FOR_VERIFY_BUNDLE = ("sqlalchemy", "sqlmodel", "custody.infra.store", "custody.app")


def run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """`custody ARGS` in a new interpreter: the finished process and the modules it imported."""
    listing = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(listing), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, set(json.loads(listing.read_text()))


def imported(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """The modules of `modules` that are one of `packages` or inside one."""
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("log", "--help"),
        ("log", "key", "--help"),
        ("key", "--help"),
        ("derive", "--help"),
        ("verify-bundle", "--help"),
        ("report", "--help"),
        ("--version",),
    ],
    ids=" ".join,
)
def test_help_imports_nothing_heavy(tmp_path: Path, args: tuple[str, ...]) -> None:
    done, modules = run(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: custody") or done.stdout.startswith("custody ")
    assert imported(modules, NOT_FOR_HELP) == []
    assert "custody.cli.main" in modules  # the runner really went through the CLI


def test_the_codec_names_in_the_help_are_the_ones_transcode_takes() -> None:
    from custody.app.derive import TRANSCODE_CODECS
    from custody.cli.derive import TRANSCODE_CODEC_NAMES

    assert tuple(TRANSCODE_CODECS) == TRANSCODE_CODEC_NAMES


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A genuine bundle exported by the CLI (a clip and an attachment, signed by the
    agency, checkpointed), and the log's verifier key."""
    root = tmp_path_factory.mktemp("startup-bundle")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CUSTODY_PASSPHRASE", PASSPHRASE)
        mp.setenv("CUSTODY_KDF_PROFILE", "fast")
        mp.delenv("CUSTODY_DB", raising=False)
        h = str(root / "agency")
        mp.setenv("CUSTODY_HOME", h)

        def ok(*args: str) -> str:
            r = invoke(*args, "--home", h)
            assert r.code == 0, r
            return r.stdout

        ok("init", "--origin", "test.example/custody")
        ok("key", "new", "bob", "--role", "agency")
        ok("case", "new", "2026-0142")
        clip = clips.make_clip(root / "footage" / "doorbell.mp4")
        notes = clips.write_sidecar_json(root / "footage" / "export-info.json")
        ok(
            "ingest",
            str(clip),
            str(notes),
            "--case",
            "2026-0142",
            "--by",
            "bob",
            "--legal-basis",
            "warrant",
        )
        ok("log", "checkpoint")
        out = root / "bundle"
        ok("export", "2026-0142", "--to", str(out), "--with-media")
        return out, ok("log", "key").strip()


def test_verify_bundle_never_imports_the_store(tmp_path: Path, bundle: tuple[Path, str]) -> None:
    path, vkey = bundle
    done, modules = run(tmp_path, "verify-bundle", str(path), "--trust", vkey, "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["verdict"] == "VERIFIED" and doc["failures"] == []
    assert sorted(i["exhibit"] for i in doc["items"]) == ["2026-0142/0001", "2026-0142/0002"]
    assert imported(modules, NOT_FOR_VERIFY_BUNDLE) == []
    assert "custody.bundle.reader" in modules  # it did verify, through the bundle package


def test_a_tampered_bundle_fails_without_the_store_too(
    tmp_path: Path, bundle: tuple[Path, str]
) -> None:
    path, vkey = bundle
    copy = tmp_path / "bundle"
    subprocess.run(["cp", "-a", str(path), str(copy)], check=True)
    media = next(p for p in (copy / "media").rglob("*") if p.is_file() and p.suffix == ".mp4")
    data = bytearray(media.read_bytes())
    data[len(data) // 2] ^= 0x01
    media.write_bytes(bytes(data))
    done, modules = run(tmp_path, "verify-bundle", str(copy), "--trust", vkey, "--json")
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["verdict"] == "NOT VERIFIED"
    assert imported(modules, NOT_FOR_VERIFY_BUNDLE) == []


def test_common_imports_no_sibling_and_only_the_package_imports_main() -> None:
    """The CLI's import graph has no cycle: common.py is a leaf, main.py the root."""
    import ast

    import custody.cli

    folder = Path(custody.cli.__file__).parent
    for module in sorted(folder.glob("*.py")):
        tree = ast.parse(module.read_text())
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        names |= {
            f"custody.cli.{a.name}"
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module == "custody.cli"
            for a in n.names
        }
        siblings = {n for n in names if n.startswith("custody.cli.")}
        if module.name == "common.py":
            assert siblings == set(), f"common.py imports {siblings}"
        if module.name not in ("__init__.py", "main.py"):
            assert "custody.cli.main" not in siblings, f"{module.name} imports custody.cli.main"
