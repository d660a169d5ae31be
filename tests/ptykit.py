"""Running custody with stderr (and optionally stdout) on a pseudo-terminal, as a user sees it."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from collections.abc import Mapping

# The CLI as a user runs it, in a fresh interpreter.
RUN = "import sys; from custody.cli import main; main(sys.argv[1:])"


def run_on_pty(
    env: Mapping[str, str], *args: str, stdout_too: bool = False
) -> tuple[int, str, str]:
    """`custody ARGS` with stderr (and with `stdout_too` stdout) on a pseudo-terminal:
    exit code, what went to the stdout pipe, the terminal's text."""
    master, slave = pty.openpty()
    env = {**env, "TERM": "xterm", "COLUMNS": "200", "LINES": "50"}
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN, *args],
        stdin=subprocess.DEVNULL,
        stdout=slave if stdout_too else subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    seen = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            proc.kill()
            raise AssertionError(f"custody {' '.join(args)} wrote nothing for 120 s")
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    out = proc.stdout.read().decode() if proc.stdout is not None else ""
    return proc.wait(timeout=60), out, seen.decode("utf-8", "replace")


def run_on_pipes(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`custody ARGS` with stdout and stderr on pipes (a script's view), TERM still set."""
    return subprocess.run(
        [sys.executable, "-c", RUN, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**env, "TERM": "xterm", "COLUMNS": "200"},
        timeout=300,
    )
