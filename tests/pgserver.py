"""A throwaway PostgreSQL cluster for tests and `make bench`.

`pg_cluster()` uses CUSTODY_TEST_PG_URL if set; otherwise it starts a cluster with
the machine's initdb/pg_ctl (as the `postgres` user when run as root) on a free
local port and removes it afterwards.  `new_database(url)` makes a fresh, empty
database on that server and returns its URL.  Tests use the `pg_server` and
`pg_url` fixtures built on these (tests/interop/); they skip, saying why, where
neither a server nor its binaries exist.

`fsync` is on by default (a bench measures durable commits); tests that only
check behaviour pass `fsync=False`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


class NoPostgres(RuntimeError):
    """No server binaries and no CUSTODY_TEST_PG_URL: the reason to skip."""


def pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def pg_cluster(*, fsync: bool = True, max_connections: int = 100) -> Iterator[str]:
    """The URL (postgresql+psycopg://postgres@host:port/postgres) of a running server."""
    url = os.environ.get("CUSTODY_TEST_PG_URL")
    if url:
        yield url
        return
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise NoPostgres(
            "no PostgreSQL server binaries (initdb, pg_ctl) and no CUSTODY_TEST_PG_URL"
        )
    # Not under pytest's temp folder: its parents are private to this user, and the
    # server may run as another ('postgres').
    root = Path(tempfile.mkdtemp(prefix="custody-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            raise NoPostgres("running as root without runuser to start PostgreSQL as 'postgres'")
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    opts = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
        f"-c fsync={'on' if fsync else 'off'} -c max_connections={max_connections}"
    )
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def new_database(server_url: str, prefix: str = "custody_test") -> str:
    """Create a fresh database on the server at `server_url`; return its URL."""
    import psycopg

    name = f"{prefix}_{os.getpid()}_{time.monotonic_ns()}"
    admin = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name
