"""Shared fixtures: an isolated custody home per test and an in-process CLI runner."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from custody.cli import main

PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test gets its own home, a fast KDF and a passphrase from the environment."""
    monkeypatch.setenv("CUSTODY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("CUSTODY_KDF_PROFILE", "fast")
    monkeypatch.setenv("CUSTODY_SEEN", str(tmp_path / "seen-checkpoints"))
    monkeypatch.delenv("CUSTODY_DB", raising=False)
    monkeypatch.delenv("CUSTODY_DEBUG", raising=False)
    monkeypatch.delenv("CUSTODY_VAULT", raising=False)
    monkeypatch.delenv("CUSTODY_PARTY", raising=False)
    yield


@dataclass
class CliResult:
    code: int
    stdout_bytes: bytes
    stderr: str

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8", "replace")

    def __repr__(self) -> str:  # shows up in assertion failures
        return f"CliResult(code={self.code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def invoke(*args: str) -> CliResult:
    """Run `custody ARGS` in this process, capturing stdout (bytes), stderr and the exit code."""
    out, err = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    stderr = io.TextIOWrapper(err, encoding="utf-8", write_through=True)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = stdout, stderr
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        stdout.flush()
        stderr.flush()
        sys.stdout, sys.stderr = saved
    return CliResult(code, out.getvalue(), err.getvalue().decode("utf-8", "replace"))


@pytest.fixture
def cli() -> type[CliRunnerNS]:
    return CliRunnerNS


class CliRunnerNS:
    """`cli.run(...)` asserts success; `cli.fail(code, ...)` asserts a one-line error."""

    @staticmethod
    def run(*args: str) -> CliResult:
        result = invoke(*args)
        assert result.code == 0, result
        return result

    @staticmethod
    def fail(code: int, *args: str) -> CliResult:
        result = invoke(*args)
        assert result.code == code, result
        assert result.stderr.startswith("custody: error: "), result
        assert "Traceback" not in result.stderr, result
        # One line of error, optionally followed by one indented hint line.
        lines = result.stderr.rstrip("\n").split("\n")
        assert len(lines) <= 2, result
        if len(lines) == 2:
            assert lines[1].startswith("  hint: "), result
        return result


@pytest.fixture
def home(cli: type[CliRunnerNS]) -> Path:
    """An initialised custody home with parties alice (owner) and bob (agency)."""
    cli.run("init", "--origin", "test.example/custody")
    cli.run("key", "new", "alice", "--role", "owner", "--org", "Alice's house")
    cli.run("key", "new", "bob", "--role", "agency", "--org", "Metro Police")
    import os

    return Path(os.environ["CUSTODY_HOME"])


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """Show in every CI log how many shared test vectors ran (recorded by the vector tests)."""
    for rep in terminalreporter.stats.get("passed", []):
        for name, value in rep.user_properties:
            if name.startswith(("merkle_", "vectors_")):
                terminalreporter.write_line(f"shared vectors: {name}: {value}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """One PostgreSQL server for the whole session (tests/pgserver.py); skips, saying
    why, where there is neither a server nor its binaries."""
    from pgserver import NoPostgres, pg_cluster

    try:
        cluster = pg_cluster(fsync=False)
        url = cluster.__enter__()
    except NoPostgres as exc:
        pytest.skip(str(exc))
    try:
        yield url
    finally:
        cluster.__exit__(None, None, None)


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    from pgserver import new_database

    return new_database(pg_server)
