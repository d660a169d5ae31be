"""Crash-point scenarios of publishing and monitoring (tests/faults/test_crash_points.py).

`publish.tiles-written`: `log publish` in home A wrote every tile, then died before
the checkpoint: a reader still sees no checkpoint (or the old one), and the re-run
finds the tiles there (the same bytes), writes the checkpoint and says so.

`publish.checkpoint-written`: it died after replacing the checkpoint: the re-run has
nothing to write ("checkpoint unchanged").

`monitor.state-saved`: `monitor` saved the tree it verified, then died before
printing its verdict: the re-run finds the same tree in its state ("unchanged").
The monitor needs no home; its scenario runs without `--home` (Scenario.home_option).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from conftest import CliResult, invoke

PUBLISHED = (0, r"published a\.example/log at size \d+ to .*/pub: 0 tiles written")
REPUBLISHED = (0, r"published a\.example/log at size \d+ \(was \d+\) .* checkpoint unchanged")
MONITORED = (0, r"log a\.example/log: size \d+, unchanged")


class _World(Protocol):
    @property
    def root(self) -> Path: ...
    @property
    def a(self) -> Path: ...


def _ok(*args: str | Path) -> CliResult:
    result = invoke(*map(str, args))
    assert result.code == 0, result
    return result


def _log_key(w: _World) -> str:
    return _ok("log", "key", "--home", w.a).stdout.strip()


def publish_command(w: _World) -> tuple[Path, list[str | Path]]:
    _ok("log", "checkpoint", "--home", w.a)
    return w.a, ["log", "publish", "--to", w.root / "pub"]


def monitor_command(w: _World) -> tuple[Path, list[str | Path]]:
    pub = w.root / "pub"
    _ok("log", "checkpoint", "--home", w.a)
    _ok("log", "publish", "--to", pub, "--home", w.a)
    return w.a, ["monitor", pub, "--log-key", _log_key(w), "--state", w.root / "monitor"]


def published(w: _World) -> None:
    """The folder is complete: a monitor with no state verifies every tile of it."""
    pub = w.root / "pub"
    assert (pub / "checkpoint").is_file()
    r = _ok("monitor", pub, "--log-key", _log_key(w), "--state", w.root / "fresh-monitor")
    assert "trusted on first use" in r.stdout, r


def monitored(w: _World) -> None:
    states = list((w.root / "monitor").glob("*.json"))
    assert len(states) == 1, states
