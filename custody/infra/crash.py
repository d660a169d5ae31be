"""Named crash points: every durable step can be made to fail hard, for tests.

A durable step (a commit, a rename into place, a receipt written) calls
`crash_point("<command>.<step>")` right after it.  With the environment variable
`CUSTODY_CRASH_AT` set to that name, the process exits at once with status 137
and no clean-up (`os._exit`: no finally blocks, no atexit, no flush), as a
SIGKILL would leave it.  Unset, a crash point costs one dictionary look-up.

The names are a contract of the test suite, not of users: tests/faults finds
every `crash_point(...)` call in the source and crashes at each one in turn,
then re-runs the command and checks that nothing was lost, duplicated or left
half-written (docs/faults.md).
"""

from __future__ import annotations

import os
import sys

ENV_CRASH_AT = "CUSTODY_CRASH_AT"
CRASH_STATUS = 137  # what a shell reports for a process killed by SIGKILL


def crash_point(name: str) -> None:
    """Exit hard here if `CUSTODY_CRASH_AT` names this point (see the module doc)."""
    if os.environ.get(ENV_CRASH_AT) == name:
        sys.stderr.write(f"custody: crash point {name} reached (CUSTODY_CRASH_AT)\n")
        sys.stderr.flush()
        os._exit(CRASH_STATUS)
