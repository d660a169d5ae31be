"""What the fuzzers found and is not fixed yet: one `Finding` per crash, with its example.

Every entry names the function that raises, the exception and the smallest input
that shows it.  tests/fuzz/test_fuzz_findings.py expects each example to break the
parser property (strict xfail); the fuzzers in the meantime tolerate exactly these
exceptions from exactly these functions, and nothing else.  When a fix lands, its
xfail turns into an unexpected pass that fails the suite: delete the entry here.

Every finding of the first campaigns is fixed; each has a regression test under
tests/unit/*/test_parser_bounds_*.py or tests/faults/test_ingest_faults.py.
"""

from __future__ import annotations

from fuzzkit import Finding

KNOWN: list[Finding] = []
