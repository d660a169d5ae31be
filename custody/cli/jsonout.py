"""The one place the CLI prints JSON (docs/json/README.md, the output contract).

`emit_json` prints one indented object (or, for a few listing commands kept as they
were, one array) per command; `emit_json_line` prints one compact object per line for
`--jsonl`.  Both pass the value through `plain` first, so that every command writes the
same conventions whatever its library returns:

- times are RFC 3339 in UTC with `Z` (a `datetime`, or a string already in ISO 8601
  form with `+00:00`, becomes `2026-03-01T10:00:00Z`);
- dates are `YYYY-MM-DD`; paths are strings; tuples and sets are arrays;
- numbers stay numbers (a caller that has a number as text converts it itself);
- the shared names: beside an older key, its new name is added with the same value,
  the old key staying for the scripts that read it (deprecated, docs/json/README.md):
  `index` beside a log index called `entry` or `log_index`, `item` beside a BLAKE3
  digest called `blake3`.  An entry's own `fields` and a clip's `metadata` are left as they are.

This module imports nothing from its sibling CLI modules, and nothing heavy.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Annotated, Any

import typer

# An ISO 8601 date-time whose offset is UTC written as +00:00 (or -00:00).
_UTC_OFFSET = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)[+-]00:?00$")


# Old key -> the shared name, and what a value must be for the alias to apply.
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
ALIASES: dict[str, tuple[str, Any]] = {
    "log_index": ("index", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "entry": ("index", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "blake3": ("item", lambda v: isinstance(v, str) and _HEX64.match(v) is not None),
}
# Keys whose contents are records kept as they are (a signed entry's own fields, a
# clip's ffprobe metadata snapshot): never renamed.
_VERBATIM = frozenset({"fields", "metadata"})


def rfc3339(t: datetime) -> str:
    """`t` in UTC as RFC 3339 with `Z`; a naive time is taken to be UTC already."""
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return t.replace(tzinfo=None).isoformat() + "Z"


def plain(obj: Any, verbatim: bool = False) -> Any:
    """`obj` as JSON-ready values, with the output contract's conventions applied
    (`verbatim`: inside an entry's fields, where no key is aliased)."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, int | float):
        return obj
    if isinstance(obj, str):
        m = None if verbatim else _UTC_OFFSET.match(obj)
        return m.group(1) + "Z" if m else obj
    if isinstance(obj, datetime):
        return rfc3339(obj)
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, Mapping):
        out = {str(k): plain(v, verbatim or str(k) in _VERBATIM) for k, v in obj.items()}
        if not verbatim:
            for old, (new, fits) in ALIASES.items():
                if old in out and new not in out and fits(out[old]):
                    out[new] = out[old]
        return out
    if isinstance(obj, list | tuple | set | frozenset):
        items = [plain(v, verbatim) for v in obj]
        return sorted(items) if isinstance(obj, set | frozenset) else items
    return obj


def emit_json(obj: Any) -> None:
    """Print `obj` as one indented JSON document with sorted keys."""
    sys.stdout.write(json.dumps(plain(obj), indent=2, sort_keys=True) + "\n")


def emit_json_line(obj: Any) -> None:
    """Print `obj` as one line of JSON (JSON Lines, `--jsonl`), flushed at once."""
    sys.stdout.write(json.dumps(plain(obj), sort_keys=True, separators=(",", ":")) + "\n")
    sys.stdout.flush()


JsonlOpt = Annotated[
    bool,
    typer.Option(
        "--jsonl",
        help="Print JSON Lines: one object per file as it is done, then a summary object "
        '("final": true).',
    ),
]
