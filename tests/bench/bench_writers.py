"""`make bench`: appends per second with 1, 4 and 16 concurrent writers (issue #10).

Each writer is a separate process with its own party key (an agency's investigators,
each in their own home, sharing one database), appending `access` entries to its own
exhibit, one entry per durable transaction, through `custody.infra.log.Log.append`
(the single-append path the app uses).  The figure is the total entries appended
divided by the wall time from the first writer's start to the last writer's end.

PostgreSQL is a throwaway server started here with fsync on
(tests/pgserver.py `pg_cluster`); without server binaries its figures are skipped,
saying why.  Each figure is the best of two runs on fresh logs.  After each run the
log is checked: its size is exactly what was appended (no gap, no fork, no duplicate)
and `Log.verify` (the full replay) passes.

Run alone: `python tests/bench/bench_writers.py [ENTRIES_PER_RUN]`.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Say = Callable[[str, str], None]
Record = Callable[[str, float, str], None]

PASSPHRASE = "bench"
ORIGIN = "bench.example/writers"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WRITERS = (1, 4, 16)


def _pw(_prompt: str) -> str:
    return PASSPHRASE


def _name(n: int) -> str:
    return f"writer-{n:02d}"


def _item(n: int) -> str:
    return f"{n + 1:08x}" * 8


def _setup(home: Path, db: str | None, writers: int) -> None:
    """A home (on `db`, or its own SQLite file) with `writers` agency parties, each
    holding one exhibit of its own case."""
    from custody.app.home import Custody, Home, init
    from custody.model.entry import Entry, sign_entry

    if home.exists():
        shutil.rmtree(home)
    init(Home.locate(home, db), ORIGIN, _pw)
    with Custody.open(home, db) as c:
        for n in range(writers):
            name = _name(n)
            c.new_key(name, "agency", "Bench", _pw, NOW)
            signer = c.signer(name, _pw)
            fields: list[tuple[str, str | int | None]] = [
                ("case", f"W-{n:02d}"),
                ("exhibit", f"W-{n:02d}/0001"),
                ("item", _item(n)),
                ("name", f"w{n}.bin"),
                ("size", 1),
                ("kind", "attachment"),
                ("by", name),
                ("holder", name),
            ]
            c.log.append(sign_entry(Entry.build("ingest", NOW, fields), [signer]))


def _writer(home: str, db: str | None, n: int, count: int, ready: Any, go: Any, out: Any) -> None:
    """One writer process: sign `count` access entries, wait for the start, append them
    one per transaction, report (start, end)."""
    from custody.app.home import Custody
    from custody.model.entry import Entry, sign_entry

    with Custody.open(home, db) as c:
        name = _name(n)
        signer = c.signer(name, _pw)
        datas = [
            sign_entry(
                Entry.build(
                    "access",
                    NOW,
                    [
                        ("case", f"W-{n:02d}"),
                        ("item", _item(n)),
                        ("by", name),
                        ("purpose", f"bench access {i}"),
                        ("action", "view"),
                    ],
                ),
                [signer],
            )
            for i in range(count)
        ]
        c.log.size()  # connect before the start
        ready.put(n)
        go.wait()
        start = time.perf_counter()
        for data in datas:
            c.log.append(data)
        out.put((n, start, time.perf_counter()))


def run_writers(home: Path, db: str | None, writers: int, per_writer: int) -> float:
    """Appends per second of `writers` processes appending `per_writer` entries each;
    checks the log afterwards (size, full verification)."""
    from custody.app.home import Custody

    _setup(home, db, writers)
    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(str(home), db, n, per_writer, ready, go, out))
        for n in range(writers)
    ]
    for p in procs:
        p.start()
    # Every writer has signed its entries and connected before the clock starts.
    for _ in procs:
        ready.get(timeout=300)
    go.set()
    spans = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
        if p.exitcode != 0:
            raise RuntimeError(f"a writer process failed (exit {p.exitcode})")
    took = max(e for _, _, e in spans) - min(s for _, s, _ in spans)
    with Custody.open(home, db) as c:
        expected = 2 * writers + writers * per_writer
        size = c.log.size()
        if size != expected:
            raise RuntimeError(f"the log has {size} entries, {expected} were appended")
        report = c.log.verify(c.log_key)
        if report.size != expected:
            raise RuntimeError(f"log verify saw {report.size} entries, not {expected}")
    return writers * per_writer / took


def _fresh_pg(server: str) -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pgserver import new_database  # type: ignore[import-not-found]

    return str(new_database(server, prefix="custody_bench"))


def _best(home: Path, db: Callable[[], str | None], writers: int, per_run: int) -> float:
    """The best of two runs, each on a fresh log (a busy machine makes one run noisy)."""
    return max(run_writers(home, db(), writers, per_run // writers) for _ in range(2))


def bench_writers(bench: Path, say: Say, record: Record, *, per_run: int = 480) -> None:
    """The six figures: PostgreSQL (fsync on) and SQLite, 1/4/16 writers, `per_run`
    entries in all per run."""
    os.environ.setdefault("CUSTODY_PASSPHRASE", PASSPHRASE)
    os.environ.setdefault("CUSTODY_KDF_PROFILE", "fast")
    home = bench / "writers"
    print("log: concurrent writers (separate processes, one entry per transaction)", flush=True)
    for n in WRITERS:
        rate = _best(home, lambda: None, n, per_run)
        say(f"sqlite appends/s, {n} writer{'s' if n > 1 else ''}", f"{rate:,.0f}  (log verified)")
        record(f"append_sqlite_per_s_{n}_writer{'s' if n > 1 else ''}", rate, "entries/s")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pgserver import NoPostgres, pg_cluster  # type: ignore[import-not-found]

    try:
        with pg_cluster(fsync=True) as server:
            for n in WRITERS:
                rate = _best(home, lambda: _fresh_pg(server), n, per_run)
                say(
                    f"postgresql appends/s, {n} writer{'s' if n > 1 else ''}",
                    f"{rate:,.0f}  (fsync on, log verified)",
                )
                record(f"append_pg_per_s_{n}_writer{'s' if n > 1 else ''}", rate, "entries/s")
    except NoPostgres as exc:
        say("postgresql appends/s", f"skipped: {exc}")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    results: dict[str, float] = {}
    root = Path(__file__).resolve().parents[2] / ".bench"
    root.mkdir(exist_ok=True)
    bench_writers(
        root,
        lambda label, value: print(f"  {label:<50} {value}", flush=True),
        lambda name, value, _unit: results.__setitem__(name, value),
        per_run=int(sys.argv[1]) if len(sys.argv) > 1 else 480,
    )
