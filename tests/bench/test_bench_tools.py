"""The bench's own instruments (no speed is asserted here: `make bench` measures).

The launcher must report the peak RSS of the command it runs, not that of the process
that started it (a child spawned from a big process inherits that process's peak at
exec), and results.json must keep the figures of earlier runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import bench_evidence  # tests/bench/ is on sys.path: pytest puts a test's folder there
import pytest
import run as bench_run


def test_peak_rss_is_the_commands_not_the_benchs() -> None:
    ballast = b"\x01" * (256 << 20)  # this process's peak RSS is now >= 256 MB
    small = bench_evidence._run([sys.executable, "-c", "pass"])
    big = bench_evidence._run([sys.executable, "-c", "b = b'\\x01' * (96 << 20)"])
    assert len(ballast) == 256 << 20
    assert small.rss_mb < 64
    assert big.rss_mb >= 96
    assert big.seconds > 0


def test_run_returns_stdout_and_runs_in_cwd(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    out = bench_evidence._run(["ls"], cwd=tmp_path)
    assert out.stdout == "f.txt\n"


def test_a_failing_command_stops_the_bench_naming_it() -> None:
    with pytest.raises(SystemExit, match=r"bench: .* failed \(exit 3\): boom"):
        bench_evidence._run(
            [sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"]
        )
    with pytest.raises(SystemExit, match=r"no-such-command-here.*\(exit 127\)"):
        bench_evidence._run(["no-such-command-here"])


def test_results_keep_earlier_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"old_s": {"value": 1.0, "unit": "s"}, "cli_help_s": {}}))
    monkeypatch.setattr(bench_run, "RESULTS", {})
    bench_run.record("cli_help_s", 0.123456, "s")
    assert bench_run.write_results(out, "quick") == (1, 1)
    doc = json.loads(out.read_text())
    assert doc["old_s"] == {"value": 1.0, "unit": "s"}
    assert doc["cli_help_s"]["value"] == 0.1235
    assert doc["cli_help_s"]["unit"] == "s"
    assert doc["cli_help_s"]["run"] == "quick"
    assert doc["cli_help_s"]["measured"].endswith("Z")
