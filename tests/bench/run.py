"""`make bench`: custody's throughput figures (not part of `make test`).

Prints each figure with its reference and target, and adds it to `.bench/results.json`
as `{"name": {"value": v, "unit": u, "measured": time, "run": "full"|"quick"}}` (figures
of earlier runs that this one did not measure are kept).  docs/bench.md describes every
figure: how it is measured, its reference and its target.

* cli: the wall time of `custody --help` and of `custody log key` (median of 7), beside
  the interpreter's own start-up (`python -c pass`);
* for the log: appends per second (one entry per transaction, and in batches) on
  a fresh log, in a fresh log whose case has 1,000 exhibits, and on large logs
  (200,000 and 1,000,000 entries, all in one case of 1,000 items); inclusion and
  consistency proof times and `log verify` time on those logs;
* for concurrent writers: appends per second with 1, 4 and 16 writer processes (each
  its own party key, one entry per durable transaction) on PostgreSQL (a throwaway
  server, fsync on; skipped, saying why, without server binaries) and on SQLite,
  each log checked afterwards (no gap or fork, `log verify`) (tests/bench/bench_writers.py);
* for evidence (issue #15), side by side with the plain tools on the same files:
  BLAKE3 hashing vs `b3sum`; ingest of a 2 GiB file vs `cp` + `b3sum` + `sync` and
  its peak RSS; ingest of 200 one-second clips vs `hashdeep`; `verify-bundle` of their
  bundle with media, and `custody verify` of their folder, vs `b3sum -c`
  (tests/bench/bench_evidence.py);
* for the browser verifier: MB/s of media verified (BLAKE3 and SHA-256) by the shipped
  page in headless Chromium, `browser_blake3_mb_per_s` (tests/browser/browser_bench.py;
  skipped, saying why, without chromium, chromedriver or selenium).

The large logs and the clips are made once and kept under `.bench/` (remade if
missing); the append figures are measured on a copy, so the kept log keeps its size.
`--quick` (`make bench BENCH_ARGS=--quick`) builds only the 200,000-entry log, and the
browser's bundle is 0.5 GiB: under ten minutes on 2 cores.  The evidence figures are
the same size in both (2 GiB, 200 clips; `--file-gib`, `--clips` change them, and so
the figures' names).  `--entries N` measures one log of N entries instead;
`--only cli|log|writers|evidence|browser` runs one part.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / ".bench"
PASSPHRASE = "bench"
RESULTS: dict[str, dict[str, Any]] = {}


def say(label: str, value: str) -> None:
    print(f"  {label:<50} {value}", flush=True)


def record(name: str, value: float, unit: str) -> None:
    """Keep one figure for results.json (names are stable: other tools read them)."""
    RESULTS[name] = {"value": round(value, 4), "unit": unit}


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _env() -> None:
    os.environ["CUSTODY_PASSPHRASE"] = PASSPHRASE
    os.environ["CUSTODY_KDF_PROFILE"] = "fast"


def _pw(_prompt: str) -> str:
    return PASSPHRASE


BENCH_CASE, BENCH_ITEM = "BENCH", "9f" * 32
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
AGENCY, OWNER = "bench-agency", "bench-owner"


def _item(n: int) -> str:
    """The (notional) BLAKE3 digest of exhibit n of the bench case."""
    return f"{n:08x}" * 8


def _ingest(signer: Any, number: int, item: str, legal_basis: str | None) -> bytes:
    from custody.model.entry import Entry, sign_entry

    fields: list[tuple[str, str | int | None]] = [
        ("case", BENCH_CASE),
        ("exhibit", f"{BENCH_CASE}/{number:04d}"),
        ("item", item),
        ("name", f"bench-{number}.bin"),
        ("size", 1),
        ("kind", "attachment"),
        ("legal-basis", legal_basis),
        ("by", AGENCY),
        ("holder", AGENCY),
    ]
    return sign_entry(Entry.build("ingest", NOW, fields), [signer])


def _new_home(path: Path, items: int = 1) -> None:
    """A home with an agency holding `items` (notional) exhibits of one case.

    With more than one item, an owner party consents to the whole case and every
    other exhibit is taken in on consent, so that access entries exercise the
    consent rule too.
    """
    from custody.app.home import Custody, Home, init
    from custody.model.entry import Entry, sign_entry

    if path.exists():
        shutil.rmtree(path)
    init(Home.locate(path), "bench.example/custody", _pw)
    with Custody.open(path) as c:
        c.new_key(AGENCY, "agency", "Bench", _pw, NOW)
        signer = c.signer(AGENCY, _pw)
        if items == 1:
            c.log.append(_ingest(signer, 1, BENCH_ITEM, None))
            return
        c.new_key(OWNER, "owner", "", _pw, NOW)
        owner = c.signer(OWNER, _pw)
        grant = Entry.build(
            "consent",
            NOW,
            [
                ("action", "grant"),
                ("owner", OWNER),
                ("case", BENCH_CASE),
                ("purpose", "investigation"),
                ("onward", "court"),
            ],
        )
        with c.log.transaction() as w:
            w.append(sign_entry(grant, [owner]))
            for n in range(1, items + 1):
                w.append(_ingest(signer, n, _item(n), "consent" if n % 2 else "warrant"))


def _entries(signer: Any, start: int, count: int, items: int = 1) -> list[bytes]:
    """`count` access entries (the holder viewing an item), all distinct."""
    from custody.model.entry import Entry, sign_entry

    rng = random.Random(start)
    out = []
    for n in range(start, start + count):
        item = BENCH_ITEM if items == 1 else _item(rng.randrange(1, items + 1))
        entry = Entry.build(
            "access",
            NOW,
            [
                ("case", BENCH_CASE),
                ("item", item),
                ("by", AGENCY),
                ("purpose", f"benchmark access {n}"),
                ("action", "view"),
            ],
        )
        out.append(sign_entry(entry, [signer]))
    return out


def _single(c: Any, datas: Sequence[bytes], rounds: int = 3) -> float:
    """Appends per second, one entry per (durable) transaction: the best of `rounds`
    runs over equal slices of `datas` (fsync times and other processes make single
    runs noisy; the best run is the closest to what the code costs)."""
    size = len(datas) // rounds
    rates = []
    for r in range(rounds):
        part = datas[r * size : (r + 1) * size]
        rates.append(len(part) / timed(lambda part=part: [c.log.append(d) for d in part]))
    return max(rates)


def _batched(c: Any, datas: Sequence[bytes], size: int = 1000) -> float:
    def run() -> None:
        for i in range(0, len(datas), size):
            with c.log.transaction() as w:
                for d in datas[i : i + size]:
                    w.append(d)

    return len(datas) / timed(run)


def _tag(entries: int) -> str:
    if entries % 1_000_000 == 0:
        return f"{entries // 1_000_000}m"
    if entries % 1000 == 0:
        return f"{entries // 1000}k"
    return str(entries)


def bench_fresh() -> None:
    from custody.app.home import Custody

    print("log: fresh", flush=True)
    tmp = BENCH / "appends"
    _new_home(tmp)
    with Custody.open(tmp) as c:
        signer = c.signer(AGENCY, _pw)
        rate = _single(c, _entries(signer, 0, 600))
        say("appends/s, one entry per transaction", f"{rate:,.0f}  (fsync each)")
        record("append_single_per_s_fresh", rate, "entries/s")
        rate = _batched(c, _entries(signer, 600, 20_000))
        say("appends/s, batches of 1,000", f"{rate:,.0f}  (aim >= 5,000)")
        record("append_batch_per_s_fresh", rate, "entries/s")
    shutil.rmtree(tmp)

    tmp = BENCH / "case-1000"
    _new_home(tmp, items=1000)
    with Custody.open(tmp) as c:
        signer = c.signer(AGENCY, _pw)
        rate = _single(c, _entries(signer, 0, 600, items=1000))
        fresh = RESULTS["append_single_per_s_fresh"]["value"]
        say(
            "access appends/s, case of 1,000 exhibits",
            f"{rate:,.0f}  ({rate / fresh:.2f} x fresh; aim >= 0.8)",
        )
        record("access_append_per_s_case_1000_items", rate, "entries/s")
    shutil.rmtree(tmp)


def _build(home: Path, entries: int) -> None:
    """A log of `entries` real signed entries, all in one case of 1,000 items (kept)."""
    from custody.app.home import Custody

    have = 0
    if home.exists():
        with Custody.open(home) as c:
            have = c.log.size()
    if have == entries:
        return
    print(f"  building a {entries:,}-entry log in {home} (kept for later runs)…", flush=True)
    _new_home(home, items=1000)
    t0 = time.perf_counter()
    with Custody.open(home) as c:
        signer = c.signer(AGENCY, _pw)
        have = start = c.log.size()
        while have < entries:
            n = min(5000, entries - have)
            datas = _entries(signer, have, n, items=1000)
            with c.log.transaction() as w:
                for d in datas:
                    w.append(d)
            have += n
        c.log.checkpoint(c.log_signer(_pw))
    say("built (sign + append) entries/s", f"{(entries - start) / (time.perf_counter() - t0):,.0f}")


def bench_big(entries: int) -> None:
    from custody.app.home import Custody

    tag = _tag(entries)
    print(f"log: {entries:,} entries in one case of 1,000 items", flush=True)
    home = BENCH / f"log-{tag}"
    _build(home, entries)

    with Custody.open(home) as c:
        size = c.log.size()
        rng = random.Random(7)
        times = []
        for index in [rng.randrange(size) for _ in range(1000)]:
            t = time.perf_counter()
            c.log.inclusion_proof(index, size)
            times.append(time.perf_counter() - t)
        times.sort()
        mean, p99 = statistics.mean(times) * 1000, times[989] * 1000
        say(
            f"inclusion proof at {size:,} entries, mean",
            f"{mean:.2f} ms  (p99 {p99:.2f} ms; aim < 5 ms)",
        )
        record(f"inclusion_proof_ms_{tag}", mean, "ms")
        record(f"inclusion_proof_p99_ms_{tag}", p99, "ms")
        took = timed(lambda: c.log.consistency_proof(size // 3, size)) * 1000
        say("consistency proof", f"{took:.2f} ms")
        record(f"consistency_proof_ms_{tag}", took, "ms")
        t = time.perf_counter()
        report = c.log.verify(c.log_key)
        took = time.perf_counter() - t
        say(
            f"log verify, {report.size:,} entries",
            f"{took:.1f} s  ({report.size / took:,.0f} entries/s; aim < 60 s for 1,000,000)",
        )
        record(f"log_verify_s_{tag}", took, "s")

    # Appends are measured on a copy, so that the kept log keeps its size.
    work = BENCH / f"log-{tag}-appends"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(home, work)
    with Custody.open(work) as c:
        signer = c.signer(AGENCY, _pw)
        rate = _single(c, _entries(signer, size, 600, items=1000))
        fresh = RESULTS.get("append_single_per_s_fresh", {}).get("value")
        ratio = f"  ({rate / fresh:.2f} x fresh; aim >= 0.8)" if fresh else ""
        say(f"appends/s at {size:,} entries, one per transaction", f"{rate:,.0f}{ratio}")
        record(f"append_single_per_s_{tag}", rate, "entries/s")
        rate = _batched(c, _entries(signer, size + 600, 20_000, items=1000))
        say(f"appends/s at {size:,} entries, batches of 1,000", f"{rate:,.0f}")
        record(f"append_batch_per_s_{tag}", rate, "entries/s")
    shutil.rmtree(work)


def _median_wall(argv: list[str], runs: int) -> float:
    """The median wall time of `runs` runs of `argv` (after one untimed, warming run)."""
    subprocess.run(argv, check=True, capture_output=True)
    return statistics.median(
        timed(lambda: subprocess.run(argv, check=True, capture_output=True)) for _ in range(runs)
    )


def bench_cli(runs: int = 7) -> None:
    """The start-up of two commands a user runs often: `custody --help` and `custody log
    key` on a home (each the median of `runs`, the console script of this venv)."""
    print("cli: start-up", flush=True)
    exe = Path(sys.executable).parent / "custody"
    if not exe.exists():
        raise SystemExit(f"bench: {exe} not found (make venv installs it)")
    # The reference: the interpreter's own start-up, which no lazy import can remove.
    floor = _median_wall([sys.executable, "-c", "pass"], runs)
    record("python_startup_s", floor, "s")
    took = _median_wall([str(exe), "--help"], runs)
    say(
        "custody --help (subprocess), median of 7",
        f"{took:.3f} s  (python -c pass {floor:.3f} s; aim <= 0.25 s)",
    )
    record("cli_help_s", took, "s")
    home = BENCH / "cli-home"
    _new_home(home)
    took = _median_wall([str(exe), "log", "key", "--home", str(home)], runs)
    say(
        "custody log key (subprocess), median of 7",
        f"{took:.3f} s  (python -c pass {floor:.3f} s; aim <= 0.25 s)",
    )
    record("cli_log_key_s", took, "s")
    shutil.rmtree(home)


def write_results(out: Path, run: str) -> tuple[int, int]:
    """Add this run's figures to `out` (each with when and in which run it was
    measured), keeping the figures of earlier runs that this one did not measure
    (e.g. with --only).  Returns (figures from this run, figures kept)."""
    try:
        kept = json.loads(out.read_text())
    except (OSError, ValueError):
        kept = {}
    if not isinstance(kept, dict):
        kept = {}
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for name, figure in RESULTS.items():
        kept[name] = {**figure, "measured": at, "run": run}
    out.write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")
    return len(RESULTS), len(kept) - len(RESULTS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="the 200,000-entry log only: under ten minutes"
    )
    parser.add_argument("--entries", type=int, help="measure one log of this many entries")
    parser.add_argument("--only", choices=["cli", "log", "writers", "evidence", "browser"])
    parser.add_argument("--file-gib", type=float, help="size of the large file (default 2)")
    parser.add_argument("--clips", type=int, help="clips in the batch (default 200)")
    args = parser.parse_args()
    sizes = [args.entries] if args.entries else [200_000] if args.quick else [200_000, 1_000_000]
    # The figures (200 clips, 2 GiB) are cheap enough for --quick too.
    gib = args.file_gib or 2.0
    clips = args.clips or 200
    browser_gib = args.file_gib or (0.5 if args.quick else 2.0)
    _env()
    BENCH.mkdir(exist_ok=True)
    print(f"custody bench on {os.cpu_count()} cores, python {sys.version.split()[0]}")
    took: dict[str, float] = {}

    def part(name: str, fn: Callable[[], object]) -> None:
        t = time.perf_counter()
        try:
            fn()
        finally:
            took[name] = took.get(name, 0.0) + time.perf_counter() - t

    def log() -> None:
        bench_fresh()
        for entries in sizes:
            bench_big(entries)

    def writers() -> None:
        from bench_writers import bench_writers  # type: ignore[import-not-found]

        bench_writers(BENCH, say, record, per_run=240 if args.quick else 480)

    def evidence() -> None:
        from bench_evidence import bench_evidence  # type: ignore[import-not-found]

        bench_evidence(BENCH, gib, clips, say, record)

    def browser() -> None:
        from browser_bench import bench_browser  # type: ignore[import-not-found]

        bench_browser(BENCH, browser_gib, say, record)

    try:
        if args.only in (None, "cli", "log"):
            part("cli", bench_cli)
        if args.only in (None, "log"):
            part("log", log)
        if args.only in (None, "log", "writers"):
            part("writers", writers)
        if args.only in (None, "evidence"):
            part("evidence", evidence)
        if args.only in (None, "browser"):
            part("browser", browser)
    finally:
        out = BENCH / "results.json"
        run = "quick" if args.quick else "full"
        new, kept = write_results(out, run)
        print(
            f"wrote {out.relative_to(ROOT)}: {new} figures from this run"
            + (f", {kept} kept from earlier runs" if kept else "")
        )
        print(
            f"took {sum(took.values()):.0f} s: "
            + ", ".join(f"{name} {s:.0f} s" for name, s in took.items())
        )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.path.insert(1, str(Path(__file__).parents[1] / "browser"))
    sys.exit(main())
