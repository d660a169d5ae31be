"""Evidence benchmarks for `make bench` (issue #15): custody against the plain tools.

Every comparison is measured in this one run, side by side, on the same files, the same
way: each command runs as a child process of a small launcher (`_LAUNCHER`) that times it
and reads its peak RSS with wait4(2); every command runs once untimed first (the page
cache is warm for both sides), then the two sides alternate, with a `sync` before each
timed run so that no side pays for the other's dirty pages.  docs/bench.md describes each
figure, its reference and the issue's target.

* hashing: custody's BLAKE3 pass (`custody.infra.vault.hash_file`, in this process) vs
  `b3sum`, best of three; custody's throughput over b3sum's (aim >= 0.9); BLAKE3 +
  SHA-256 in one pass vs `sha256sum`;
* one large file: `custody ingest` of it (copy into the store, hash, fsync, signed log
  entry) vs `cp` + `b3sum` of the copy + `sync` of the copy (aim <= 1.2x), and vs `cp`
  + `b3sum` alone; the peak RSS of the ingest (aim < 150 MB whatever the file size);
* a batch of distinct one-second clips in a folder: `custody ingest` of the folder
  (default --jobs) vs `hashdeep -c sha256 -r` of it, in clips per second (aim >= 40);
* the bundle of those clips with media: `custody export --with-media`, then
  `custody verify-bundle` of it (median of 3; aim <= 5 s) vs `b3sum -c` of its
  media/B3SUMS (median of 3); and `custody verify` of the clips' folder against the
  home's log (median of 3) beside the same `b3sum -c`.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

PASSPHRASE = "bench"
CASE, PARTY = "BENCH", "bench-agency"
Say = Callable[[str, str], None]
Record = Callable[[str, float, str], None]

# The console script of the environment running the bench (.venv/bin/custody).
CUSTODY = Path(sys.executable).parent / "custody"

# Times one command and reads its peak RSS.  wait4(2) on a child reports the largest
# peak RSS of that child and of the descendants it waited for; but a child spawned by
# a big process (vfork/posix_spawn, as subprocess does) inherits that process's peak
# at exec, so the bench would be counted.  This launcher is a small process of its
# own: it forks, the fork execs the command, and the figures are the command's alone
# (its largest single process, ffmpeg or ffprobe children included; the launcher's
# own few MB are a floor no custody process is below).  It writes "SECONDS KB" to the
# file named by its first argument and exits with the command's status.
_LAUNCHER = """
import os, sys, time
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    except OSError as exc:
        sys.stderr.write(f"{sys.argv[2]}: {exc}\\n")
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
took = time.perf_counter() - t
with open(sys.argv[1], "w") as f:
    f.write(f"{took!r} {usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass(frozen=True)
class Run:
    seconds: float
    rss_mb: float
    stdout: str


def _run(argv: list[str | Path], *, cwd: Path | None = None) -> Run:
    """Run `argv` under the launcher; a failure stops the bench, naming the command."""
    args = [str(a) for a in argv]
    with tempfile.TemporaryDirectory(prefix="custody-bench-") as tmp:
        usage, out, err = (Path(tmp) / name for name in ("usage", "stdout", "stderr"))
        with out.open("wb") as fout, err.open("wb") as ferr:
            proc = subprocess.run(
                [sys.executable, "-c", _LAUNCHER, str(usage), *args],
                stdin=subprocess.DEVNULL,
                stdout=fout,
                stderr=ferr,
                cwd=cwd,
                check=False,
            )
        if proc.returncode != 0:
            tail = err.read_text(errors="replace").strip().splitlines()[-3:]
            raise SystemExit(
                f"bench: {' '.join(args)} failed (exit {proc.returncode}): {' | '.join(tail)}"
            )
        seconds, kb = usage.read_text().split()
        return Run(float(seconds), int(kb) / 1024, out.read_text(errors="replace"))


def _side_by_side(
    ours: Callable[[], Run], ref: Callable[[], Run], rounds: int
) -> tuple[list[Run], list[Run]]:
    """Each side once untimed (warm cache, same state for both), then `rounds` of each,
    alternating: (custody's runs, the reference's runs)."""
    ours()
    ref()
    mine: list[Run] = []
    theirs: list[Run] = []
    for _ in range(rounds):
        mine.append(ours())
        theirs.append(ref())
    return mine, theirs


def _best(runs: list[Run]) -> float:
    return min(r.seconds for r in runs)


def _median(runs: list[Run]) -> float:
    return statistics.median(r.seconds for r in runs)


def _best_in_process(fn: Callable[[], object], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _big_file(path: Path, gib: float) -> Path:
    size = int(gib * (1 << 30))
    if path.exists() and path.stat().st_size == size:
        return path
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        written = 0
        while written < size:
            # Vary each MiB so no two blocks are equal (defeats any dedup in the way).
            chunk = written.to_bytes(8, "little") + block[8:]
            f.write(chunk[: size - written])
            written += len(chunk)
    return path


def _home(path: Path) -> None:
    """A fresh home with the bench party (an agency) and the bench case."""
    from custody.app import evidence
    from custody.app.home import Custody, Home, init

    if path.exists():
        shutil.rmtree(path)
    init(Home.locate(path), "bench.example/custody", lambda _p: PASSPHRASE)
    with Custody.open(path) as c:
        c.new_key(PARTY, "agency", "Bench", lambda _p: PASSPHRASE, datetime.now(UTC))
        evidence.new_case(c, CASE, "benchmark", datetime.now(UTC))


def _ingest(home: Path, path: Path, expect: int) -> Run:
    """`custody ingest PATH` (default --jobs) into a fresh `home`; checks that exactly
    `expect` files were ingested (the JSON Lines summary)."""
    _home(home)
    os.sync()
    run = _run(
        [
            CUSTODY,
            "ingest",
            path,
            "--home",
            home,
            "--case",
            CASE,
            "--by",
            PARTY,
            "--legal-basis",
            "warrant",
            "--jsonl",
        ]
    )
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    if summary.get("ingested") != expect or summary.get("failed"):
        raise SystemExit(f"bench: ingest of {path} did not ingest {expect} file(s): {summary}")
    return run


def _distinct_clips(bench: Path, count: int) -> Path:
    """A folder of `count` distinct one-second clips (tests/clips.py make_clip, each
    with its own tone and one of five test patterns), made once and kept."""
    folder = bench / f"clips-{count}-1s"
    if folder.is_dir() and len(list(folder.glob("*.mp4"))) == count:
        return folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import clips as clipgen  # tests/clips.py: real clips made with ffmpeg

    patterns = ("testsrc2", "testsrc", "smptebars", "mandelbrot", "rgbtestsrc")
    print(f"  making {count} distinct one-second clips in {folder} (kept)…", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    work = folder.with_name(folder.name + ".part")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    def make(n: int) -> Path:
        return clipgen.make_clip(
            work / f"clip{n:04d}.mp4",
            seconds=1,
            pattern=patterns[n % len(patterns)],
            frequency=220 + 5 * n,
        )

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(make, range(count)))
    work.rename(folder)
    return folder


def bench_evidence(bench: Path, gib: float, clips: int, say: Say, record: Record) -> None:
    """Run the evidence benches; `record(name, value, unit)` keeps each figure."""
    from custody.infra.vault import hash_file

    size = f"{gib:g}".replace(".", "_") + "gib"
    cores = os.cpu_count() or 1

    print("evidence", flush=True)
    if not CUSTODY.exists():
        raise SystemExit(f"bench: {CUSTODY} not found (make venv installs it)")
    if shutil.which("b3sum") is None:
        raise SystemExit("bench: b3sum is not installed (make sysdeps installs it)")
    print(
        "  page cache: warm (every command runs once untimed, then the two sides alternate;"
        " sync before each timed run)",
        flush=True,
    )
    big = _big_file(bench / "big.bin", gib)
    b3 = ["b3sum", "--no-names", str(big)]
    subprocess.run(b3, check=True, capture_output=True)  # warm
    t_b3 = _best_in_process(lambda: subprocess.run(b3, check=True, capture_output=True))
    t_ours = _best_in_process(lambda: hash_file(big))
    mib = big.stat().st_size / (1 << 20)
    say(
        f"BLAKE3 of a {gib:g} GiB file, warm cache",
        f"custody {mib / t_ours:,.0f} MiB/s, b3sum {mib / t_b3:,.0f} MiB/s: "
        f"ratio {t_b3 / t_ours:.2f} (aim >= 0.9)",
    )
    record("blake3_mib_per_s", mib / t_ours, "MiB/s")
    record("blake3_over_b3sum", t_b3 / t_ours, "ratio")
    sha = ["sha256sum", str(big)]
    t_sha = _best_in_process(lambda: subprocess.run(sha, check=True, capture_output=True), 1)
    t_both = _best_in_process(lambda: hash_file(big, sha256=True), runs=1)
    say(
        "BLAKE3 + SHA-256 in one pass (--sha256)",
        f"{mib / t_both:,.0f} MiB/s; sha256sum alone {mib / t_sha:,.0f} MiB/s: "
        f"ratio {t_sha / t_both:.2f}",
    )
    record("blake3_sha256_mib_per_s", mib / t_both, "MiB/s")
    record("blake3_sha256_over_sha256sum", t_sha / t_both, "ratio")

    # One large file: custody's ingest is durable (the object is fsynced before the
    # entry is signed); `cp` returns with the copy still in the page cache, so the
    # issue's reference adds a sync of the copy.  Both comparisons are shown.
    home = bench / "evidence-home"
    copy = bench / "copy.bin"

    def cp_b3sum(sync: bool) -> Run:
        copy.unlink(missing_ok=True)
        os.sync()
        script = 'cp -- "$1" "$2" && b3sum --no-names -- "$2" >/dev/null'
        script += ' && sync -- "$2"' if sync else ""
        return _run(["sh", "-c", script, "sh", big, copy])

    ingests, synced = _side_by_side(
        lambda: _ingest(home, big, 1), lambda: cp_b3sum(sync=True), rounds=2
    )
    plain = [cp_b3sum(sync=False) for _ in range(2)]
    copy.unlink(missing_ok=True)
    t_ingest, t_cp_sync, t_cp = _best(ingests), _best(synced), _best(plain)
    rss = max(r.rss_mb for r in ingests)
    say(
        f"ingest of one {gib:g} GiB file (CLI, end to end)",
        f"{t_ingest:.2f} s vs cp + b3sum + sync {t_cp_sync:.2f} s: "
        f"{t_ingest / t_cp_sync:.2f}x (aim <= 1.2x); vs cp + b3sum {t_cp:.2f} s: "
        f"{t_ingest / t_cp:.2f}x",
    )
    say(
        f"peak RSS while ingesting the {gib:g} GiB file",
        f"{rss:,.0f} MB (cp + b3sum + sync {max(r.rss_mb for r in synced):,.0f} MB; aim < 150 MB)",
    )
    record(f"ingest_s_{size}", t_ingest, "s")
    record(f"ingest_{size}_over_cp_b3sum", t_ingest / t_cp, "ratio")
    record(f"ingest_{size}_over_cp_b3sum_sync", t_ingest / t_cp_sync, "ratio")
    record(f"ingest_peak_rss_mb_{size}", rss, "MB")
    shutil.rmtree(home)

    # A batch of distinct short clips, in a folder: one run = one `custody ingest` of it.
    batch = _distinct_clips(bench, clips)
    hashdeep = shutil.which("hashdeep")

    def reference() -> Run:
        if hashdeep is None:
            return Run(0.0, 0.0, "")
        os.sync()
        return _run([hashdeep, "-c", "sha256", "-r", batch])

    ingests, refs = _side_by_side(lambda: _ingest(home, batch, clips), reference, rounds=2)
    rate = clips / _best(ingests)
    if hashdeep is None:
        print("  hashdeep is not installed (make sysdeps installs it): no reference", flush=True)
        versus = "hashdeep: not installed"
    else:
        ref_rate = clips / _best(refs)
        versus = f"hashdeep -c sha256 -r {ref_rate:,.0f} clips/s"
        record(f"hashdeep_clips_per_s_{clips}", ref_rate, "clips/s")
    say(
        f"ingest {clips} one-second clips (--jobs default: {cores})",
        f"{rate:,.1f} clips/s ({versus}; aim >= 40)",
    )
    record(f"ingest_clips_per_s_{clips}", rate, "clips/s")

    # The bundle of those clips with media (the home of the last ingest above).
    bundle = bench / f"bundle-{clips}"
    shutil.rmtree(bundle, ignore_errors=True)
    os.sync()
    exported = _run([CUSTODY, "export", CASE, "--to", bundle, "--with-media", "--home", home])
    key = _run([CUSTODY, "log", "key", "--home", home]).stdout.strip()
    media = bundle / "media"
    if len(list(media.glob("*.mp4"))) != clips or not (media / "B3SUMS").is_file():
        raise SystemExit(f"bench: {bundle} does not hold the {clips} clips and media/B3SUMS")

    def verify() -> Run:
        os.sync()
        with tempfile.TemporaryDirectory(prefix="custody-bench-seen-") as seen:
            run = _run([CUSTODY, "verify-bundle", bundle, "--trust", key, "--seen", seen])
        if run.stdout.strip().splitlines()[-1:] != ["VERIFIED"]:
            raise SystemExit(f"bench: verify-bundle did not verify {bundle}")
        return run

    def b3sum_check() -> Run:
        os.sync()
        run = _run(["b3sum", "-c", "B3SUMS"], cwd=media)
        if run.stdout.count(": OK\n") != clips:
            raise SystemExit(f"bench: b3sum -c did not check {clips} files in {media}")
        return run

    def verify_folder() -> Run:
        os.sync()
        argv = [CUSTODY, "verify", batch, "--case", CASE, "--home", home, "--jsonl"]
        run = _run(argv)
        summary = json.loads(run.stdout.strip().splitlines()[-1])
        if summary.get("counts", {}).get("matched") != clips or not summary.get("verified"):
            raise SystemExit(f"bench: custody verify did not match {clips} files: {summary}")
        return run

    verifies, checks = _side_by_side(verify, b3sum_check, rounds=3)
    t_verify, t_check = _median(verifies), _median(checks)
    t_folder = _median(_side_by_side(verify_folder, b3sum_check, rounds=3)[0])
    say(
        f"export a bundle of the {clips} clips with media",
        f"{exported.seconds:.2f} s",
    )
    say(
        f"verify-bundle of the {clips} clips with media, median",
        f"{t_verify:.2f} s (b3sum -c {t_check:.2f} s; aim <= 5 s)",
    )
    say(
        f"custody verify of the folder of {clips} clips, median",
        f"{t_folder:.2f} s (b3sum -c {t_check:.2f} s)",
    )
    record(f"bundle_export_s_{clips}_clips", exported.seconds, "s")
    record(f"verify_folder_s_{clips}_clips", t_folder, "s")
    record(f"verify_bundle_s_{clips}_clips", t_verify, "s")
    record(f"b3sum_check_s_{clips}_clips", t_check, "s")
    shutil.rmtree(bundle)
    shutil.rmtree(home)
