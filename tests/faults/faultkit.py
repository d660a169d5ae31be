"""Helpers for fault tests: run `custody` in a child process, look for leftovers.

A fault test kills, starves or blocks the custody process, so it must run the
command in a child process (the in-process `conftest.invoke` would take pytest
down with it).  `run_custody` runs the console script of the interpreter running
the tests, with only the environment a test gives it.

This is a plain module, not tests/faults/conftest.py: pytest imports every
conftest.py of a tree without __init__.py files under the one module name
`conftest`, so a second one would replace tests/conftest.py for every test module
collected after it, and their `from conftest import invoke` would fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from custody.infra.crash import CRASH_STATUS, ENV_CRASH_AT

# The variables a custody command reads; a child gets none of the test run's own.
_CUSTODY_VARS = re.compile(r"CUSTODY_[A-Z_]+")

# Names that only an unfinished write leaves behind (docs/faults.md, "Leftovers").
LEFTOVER = re.compile(r"\.tmp\b|\.partial-|^\.derive-|^custody-(report|export|verify)-")


def custody_command() -> Path:
    """The `custody` console script next to the interpreter running the tests."""
    return Path(sys.executable).parent / "custody"


@dataclass(frozen=True)
class Run:
    """What one child `custody` process did: its exit code and its output."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def __repr__(self) -> str:  # shows up in assertion failures
        shown = " ".join(self.args)
        return f"Run({shown!r}, code={self.code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def child_env(**values: str | os.PathLike[str]) -> dict[str, str]:
    """The test run's environment without any CUSTODY_* variable, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not _CUSTODY_VARS.fullmatch(k)}
    env.update({k: os.fspath(v) for k, v in values.items()})
    return env


def run_custody(*args: str | os.PathLike[str], env: Mapping[str, str], timeout: float = 120) -> Run:
    """Run `custody ARGS` in a child process with exactly `env`; never raises on failure."""
    argv = tuple(os.fspath(a) for a in args)
    result = subprocess.run(
        [str(custody_command()), *argv],
        env=dict(env),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return Run(
        argv,
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
    )


def crash_at(
    point: str, *args: str | os.PathLike[str], env: Mapping[str, str], timeout: float = 120
) -> Run:
    """Run `custody ARGS` with CUSTODY_CRASH_AT=`point`; assert that it died there.

    Raises AssertionError unless the process exited with the crash status (137)
    and said on stderr which point it reached.
    """
    run = run_custody(*args, env={**env, ENV_CRASH_AT: point}, timeout=timeout)
    assert run.code == CRASH_STATUS, f"expected a crash at {point}: {run!r}"
    assert f"crash point {point} reached" in run.stderr, run
    return run


def leftovers(*roots: Path) -> list[Path]:
    """Every file or folder under `roots` whose name only an unfinished write leaves."""
    found = []
    for root in roots:
        if not root.exists():
            continue
        for path in root.rglob("*"):
            if LEFTOVER.search(path.name):
                found.append(path)
    return sorted(found)
