"""The bundle verification path imports no store, no home and no SQL library.

Defence counsel runs `custody verify-bundle` without trusting the agency's stack,
so the modules it needs must load without any of it.  The import runs in a fresh
interpreter: in this one, other tests have loaded everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("sqlalchemy", "sqlmodel", "custody.infra.store", "custody.app")

PROBE = """
import json, sys
import custody.bundle.reader
import custody.bundle.verify
print(json.dumps(sorted(sys.modules)))
"""


def test_reader_and_verify_load_no_store() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(out.stdout)
    assert "custody.bundle.reader" in loaded and "custody.bundle.verify" in loaded
    bad = [m for m in loaded if m in FORBIDDEN or m.startswith(tuple(f + "." for f in FORBIDDEN))]
    assert bad == []
