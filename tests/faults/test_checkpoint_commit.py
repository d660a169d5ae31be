"""The crash point after a checkpoint commits (`checkpoint.committed`).

A `custody log checkpoint` killed right after its transaction commits has stored
the checkpoint but printed nothing; the re-run must print that same checkpoint
(not sign a second one) and the log must verify throughout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import CliRunnerNS


def _custody(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    custody = Path(sys.executable).with_name("custody")
    return subprocess.run(
        [str(custody), *args], env=dict(os.environ, **env), capture_output=True, text=True
    )


def test_a_checkpoint_killed_after_its_commit_is_kept_and_printed_by_the_rerun(
    home: Path, tmp_path: Path, cli: type[CliRunnerNS]
) -> None:
    crashed = _custody("log", "checkpoint", CUSTODY_CRASH_AT="checkpoint.committed")
    assert crashed.returncode == 137, crashed
    assert crashed.stdout == ""
    assert cli.run("log", "verify").stdout.startswith(
        "OK: the log verifies: 2 entries, 2 signatures, 1 checkpoints"
    )
    stored = cli.run("log", "prove", "1").stdout  # the proof names the stored checkpoint
    out = tmp_path / "checkpoint.note"
    rerun = _custody("log", "checkpoint", "--out", str(out))
    assert rerun.returncode == 0, rerun
    assert out.read_text() == rerun.stdout
    assert rerun.stdout in stored  # the same signed checkpoint, not a new one
    assert cli.run("log", "verify").stdout.startswith(
        "OK: the log verifies: 2 entries, 2 signatures, 1 checkpoints"
    )
