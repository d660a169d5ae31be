"""The fuzzers' findings that are not fixed yet, each shown by its smallest input.

Each test runs one `fuzz_findings.KNOWN` example under the parser property without
tolerating any finding, and is expected to fail (strict xfail, naming the function
and the exception).  A fix makes its test pass unexpectedly, which fails the suite:
then delete the entry from fuzz_findings.KNOWN.
"""

from __future__ import annotations

import pytest
from fuzz_findings import KNOWN
from fuzzkit import Finding, check


def _case(f: Finding) -> object:
    reason = f"{f.function} raises {f.exception.__name__}: {f.name}"
    return pytest.param(f, id=f.name, marks=pytest.mark.xfail(strict=True, reason=reason))


@pytest.mark.parametrize("finding", [_case(f) for f in KNOWN])
def test_finding_still_crashes(finding: Finding) -> None:
    try:
        check(finding.example, tolerate_known=False)
    except Exception as exc:
        # The failure must be the finding itself, not some other breakage of the example.
        assert finding.matches(exc), f"{finding.name}: another failure: {exc!r}"
        raise


def test_findings_are_distinct() -> None:
    names = [f.name for f in KNOWN]
    assert len(names) == len(set(names))
