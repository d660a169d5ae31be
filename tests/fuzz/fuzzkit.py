"""The fuzzing harness: settings, the parser property, mutations and the known findings.

The property every parser of untrusted input must have (docs/faults.md): given any
bytes, it returns a value or raises `custody.errors.CustodyError` (FormatError or
another subclass) -- never any other exception, never a hang, and never memory out
of proportion to its input (a claimed size of 10^12 inside a 1 KiB input must not
make it allocate 10^12 of anything).

`check(fn, data)` runs one example under those three bounds.  Each example gets
`TIME_LIMIT` seconds (a SIGALRM timer raises `Hang` in Python code; a hang inside C
code that never returns to the interpreter is caught by faulthandler, which prints
every thread's stack and ends the run) and `MEMORY_BUDGET` bytes of address space
above what the process already uses (an allocation beyond it fails with
MemoryError, which the property reports like any other wrong exception).

Settings: `make test` runs `QUICK_EXAMPLES` examples per fuzzer, derandomised so
that the suite is reproducible; `make fuzz` sets `CUSTODY_FUZZ=long`, which runs
`LONG_FACTOR` (`CUSTODY_FUZZ_FACTOR`, default 50) times as many with fresh random
seeds (hypothesis keeps any failure it finds in .hypothesis/ and replays it first
next time).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import resource
import signal
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from custody.errors import CustodyError

ENV_FUZZ = "CUSTODY_FUZZ"
ENV_FACTOR = "CUSTODY_FUZZ_FACTOR"
LONG = os.environ.get(ENV_FUZZ, "") == "long"
QUICK_EXAMPLES = 200
LONG_FACTOR = int(os.environ.get(ENV_FACTOR, "50"))
TIME_LIMIT = 10.0  # seconds per example: a parser of <= 64 KiB that needs more is hanging
MEMORY_BUDGET = 512 << 20  # bytes of address space one example may add


def fuzz_settings(examples: int = QUICK_EXAMPLES) -> settings:
    """Hypothesis settings for one fuzzer: `examples` in `make test`, many more in `make fuzz`.

    No hypothesis deadline: on a loaded two-core machine a deadline makes slow
    examples fail at random; `check` bounds each example's time instead.
    """
    quick = settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        # Derandomised runs would find nothing new in a database; keep none.
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            # The suite's autouse fixture (an isolated home) is function-scoped; the
            # parsers never read it, so sharing it between examples is harmless.
            HealthCheck.function_scoped_fixture,
        ],
        print_blob=True,
    )
    if not LONG:
        return quick
    # The long campaign: fresh random seeds, and the default example database
    # (.hypothesis/), which replays earlier failures first.
    database = settings().database
    return settings(
        quick, max_examples=examples * LONG_FACTOR, derandomize=False, database=database
    )


class Hang(Exception):
    """An example ran longer than `TIME_LIMIT` seconds."""


def _address_space() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


@contextlib.contextmanager
def bounded(seconds: float = TIME_LIMIT, memory: int = MEMORY_BUDGET) -> Iterator[None]:
    """Run the body with a time limit (raises Hang) and a memory budget (MemoryError)."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"no answer after {seconds} s")

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + memory
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    # The last resort: a hang inside C code never reaches the Python-level alarm.
    faulthandler.dump_traceback_later(seconds * 3, exit=True)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, old_handler)


# -- the findings not fixed yet -------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A crash the fuzzers found whose fix is in a file the fuzzing tests do not own.

    `function` is where the exception is raised (the innermost custody frame of
    its traceback, as `custody.<module>.<function>`), `exception` its type and
    `message` a regex its text matches.  The table is `fuzz_findings.KNOWN`;
    tests/fuzz/test_fuzz_findings.py runs each `example` and expects it to fail
    (xfail, strict): when the fix lands the example passes, the strict xfail fails
    the suite, and the finding is to be deleted from the table, so that the
    fuzzers stop tolerating it.
    """

    name: str
    function: str
    exception: type[BaseException]
    message: str
    example: Callable[[], object]

    def matches(self, exc: BaseException) -> bool:
        if not isinstance(exc, self.exception) or not re.search(self.message, str(exc)):
            return False
        return custody_frame(exc) == self.function


def custody_frame(exc: BaseException) -> str | None:
    """`custody.<module>.<function>` of the innermost traceback frame inside custody/."""
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        path = frame.filename.replace(os.sep, "/")
        if "/custody/" in path and "/tests/" not in path:
            module = path.rsplit("/custody/", 1)[1].removesuffix(".py").replace("/", ".")
            found = f"custody.{module}.{frame.name}"
    return found


def check(fn: Callable[[], object], *, tolerate_known: bool = True) -> None:
    """Call `fn` (one parse) under `bounded()`; fail unless it returns or raises CustodyError.

    With `tolerate_known`, an exception that matches a finding in `fuzz_findings.KNOWN` passes:
    its own strict-xfail test keeps it visible until it is fixed, and meanwhile
    the fuzzer can look for other crashes behind it.
    """
    with bounded():
        try:
            fn()
        except CustodyError:
            return
        except Hang:
            raise
        except Exception as exc:
            from fuzz_findings import KNOWN  # it imports this module: import it late

            if tolerate_known and any(f.matches(exc) for f in KNOWN):
                return
            raise


# -- mutations of genuine inputs ------------------------------------------------------------

# A number standing alone (a size, an index, a KDF parameter), not digits inside base64.
_NUMBER = re.compile(rb"(?<![A-Za-z0-9+/])\d+(?![A-Za-z0-9+/])")
_INTERESTING_NUMBERS = [
    b"0",
    b"00",
    b"-1",
    b"1" * 20,  # beyond 2^64
    b"9" * 5000,  # beyond Python's 4300-digit int() limit
    b"18446744073709551615",
    b"18446744073709551616",
    b"999999999999",  # a claimed size of 10^12
    "\u00b2".encode(),  # SUPERSCRIPT TWO: str.isdigit() but not int()
    "\u0663".encode(),  # ARABIC-INDIC DIGIT THREE: int() accepts it
]
_INTERESTING_CHUNKS = [
    b"\n",
    b"\n\n",
    b" ",
    b"\x00",
    b"\r\n",
    b"\xff\xfe",
    b"\xed\xa0\x80",  # a UTF-8-encoded lone surrogate
    "\u2014 ".encode(),  # the em dash of a signature line
    b"+",
    b"=",
    b"[" * 2000,
    b"{" * 2000,
    b'{"a":' * 1000,
    b"NaN",
    b"1e999",
    b'"\\ud800"',
]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes], max_steps: int = 4) -> bytes:
    """A genuine input from `seeds` with a few random mutations applied.

    The mutations: flip a bit, insert or delete bytes, overwrite with an
    interesting chunk, replace a number with an interesting one (huge, negative,
    non-ASCII digits), duplicate, delete or swap lines, truncate, and append.
    """
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, max_steps))):
        op = draw(st.integers(0, 11))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == 0 and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == 1:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == 2 and data:
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == 3:
            chunk = draw(st.sampled_from(_INTERESTING_CHUNKS))
            data[pos : pos + len(chunk) * draw(st.integers(0, 1))] = chunk
        elif op in (4, 10, 11):
            numbers = list(_NUMBER.finditer(data))
            if numbers:
                m = draw(st.sampled_from(numbers))
                data[m.start() : m.end()] = draw(st.sampled_from(_INTERESTING_NUMBERS))
        elif op in (5, 6, 7):
            lines = bytes(data).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            if op == 5:
                lines.insert(i, lines[i] * draw(st.sampled_from([1, 1, 2, 100])))
            elif op == 6:
                del lines[i]
            else:
                j = draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\n".join(lines))
        elif op == 8:
            del data[pos:]
        elif op == 9:
            data += draw(st.binary(max_size=32))
    return bytes(data)


def inputs(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """Mostly mutations of `seeds`, some random bytes, some random text."""
    return st.one_of(
        mutated(seeds),
        mutated(seeds),
        mutated(seeds),
        st.binary(max_size=2048),
        st.text(max_size=512).map(lambda s: s.encode("utf-8", "surrogatepass")),
    )
