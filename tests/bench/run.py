"""`make bench`: custody's throughput figures (not part of `make test`).

Prints, for the log: appends per second (one entry per transaction, and in
batches), inclusion-proof time and `log verify` time on a million-entry log;
for evidence: BLAKE3 hashing and full ingest of a large file as ratios to
`b3sum` and `cp` + `b3sum` run in the same process, peak RSS while ingesting,
and clips per second for a batch of short clips.

The million-entry log is built once and kept under `.bench/` (rebuilt if it is
missing); pass `--entries N` for a smaller run and `--only log|evidence`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / ".bench"
PASSPHRASE = "bench"


def say(label: str, value: str) -> None:
    print(f"  {label:<46} {value}", flush=True)


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _env() -> None:
    os.environ["CUSTODY_PASSPHRASE"] = PASSPHRASE
    os.environ["CUSTODY_KDF_PROFILE"] = "fast"


BENCH_CASE, BENCH_ITEM = "BENCH", "9f" * 32
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _new_home(path: Path) -> None:
    """A home with one party and one (notional) item it holds, for access entries."""
    from custody.app.home import Custody, Home, init
    from custody.model.entry import Entry, sign_entry

    if path.exists():
        shutil.rmtree(path)
    init(Home.locate(path), "bench.example/custody", lambda _p: PASSPHRASE)
    with Custody.open(path) as c:
        c.new_key("bench-agency", "agency", "Bench", lambda _p: PASSPHRASE, datetime.now(UTC))
        signer = c.signer("bench-agency", lambda _p: PASSPHRASE)
        fields = [
            ("case", BENCH_CASE),
            ("exhibit", f"{BENCH_CASE}/0001"),
            ("item", BENCH_ITEM),
            ("name", "bench.bin"),
            ("size", 1),
            ("kind", "attachment"),
            ("by", "bench-agency"),
            ("holder", "bench-agency"),
        ]
        c.log.append(sign_entry(Entry.build("ingest", NOW, fields), [signer]))


def _entries(signer: object, start: int, count: int) -> list[bytes]:
    """`count` access entries (the holder viewing the item), all distinct."""
    from custody.model.entry import Entry, sign_entry

    return [
        sign_entry(
            Entry.build(
                "access",
                NOW,
                [
                    ("case", BENCH_CASE),
                    ("item", BENCH_ITEM),
                    ("by", "bench-agency"),
                    ("action", "view"),
                    ("purpose", f"benchmark access {n}"),
                ],
            ),
            [signer],  # type: ignore[list-item]
        )
        for n in range(start, start + count)
    ]


def bench_log(entries: int) -> None:
    from custody.app.home import Custody

    print("log", flush=True)
    tmp = BENCH / "appends"
    _new_home(tmp)
    with Custody.open(tmp) as c:
        signer = c.signer("bench-agency", lambda _p: PASSPHRASE)
        single = _entries(signer, 0, 300)
        t = timed(lambda: [c.log.append(d) for d in single])
        say("appends/s, one entry per transaction", f"{len(single) / t:,.0f}  (fsync each)")
        batch = _entries(signer, 300, 20_000)

        def batched() -> None:
            for i in range(0, len(batch), 1000):
                with c.log.transaction() as w:
                    for d in batch[i : i + 1000]:
                        w.append(d)

        t = timed(batched)
        say("appends/s, batches of 1,000", f"{len(batch) / t:,.0f}  (aim >= 5,000)")

    home = BENCH / f"log-{entries}"
    from custody.app.home import Custody as C2

    if home.exists():
        with C2.open(home) as c:
            have = c.log.size()
    else:
        have = 0
    if have < entries:
        print(f"  building a {entries:,}-entry log in {home} (kept for later runs)…", flush=True)
        if have == 0:
            _new_home(home)
        with C2.open(home) as c:
            signer = c.signer("bench-agency", lambda _p: PASSPHRASE)
            have = c.log.size()
            t0 = time.perf_counter()
            while have < entries:
                n = min(5000, entries - have)
                datas = _entries(signer, have, n)
                with c.log.transaction() as w:
                    for d in datas:
                        w.append(d)
                have += n
            say(
                "built (sign + append) entries/s",
                f"{(entries - 3) / (time.perf_counter() - t0):,.0f}",
            )
            c.log.checkpoint(c.log_signer(lambda _p: PASSPHRASE))

    with C2.open(home) as c:
        size = c.log.size()
        rng = random.Random(7)
        picks = [rng.randrange(size) for _ in range(1000)]
        times = []
        for index in picks:
            t = time.perf_counter()
            c.log.inclusion_proof(index, size)
            times.append(time.perf_counter() - t)
        times.sort()
        say(
            f"inclusion proof at {size:,} entries, mean",
            f"{statistics.mean(times) * 1000:.2f} ms  (p99 {times[989] * 1000:.2f} ms; aim < 5 ms)",
        )
        t = time.perf_counter()
        c.log.consistency_proof(size // 3, size)
        say("consistency proof", f"{(time.perf_counter() - t) * 1000:.2f} ms")
        t = time.perf_counter()
        report = c.log.verify(c.log_key)
        took = time.perf_counter() - t
        say(
            f"log verify, {report.size:,} entries",
            f"{took:.1f} s  ({report.size / took:,.0f} entries/s; aim < 60 s for 1,000,000)",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["log", "evidence"])
    parser.add_argument("--file-gib", type=float, default=2.0)
    parser.add_argument("--clips", type=int, default=200)
    args = parser.parse_args()
    _env()
    BENCH.mkdir(exist_ok=True)
    print(f"custody bench on {os.cpu_count()} cores, python {sys.version.split()[0]}")
    if args.only in (None, "log"):
        bench_log(args.entries)
    if args.only in (None, "evidence"):
        from bench_evidence import bench_evidence  # type: ignore[import-not-found]

        bench_evidence(BENCH, args.file_gib, args.clips, say)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
