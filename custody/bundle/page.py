"""The browser verifier page (docs/browser-verifier.md): `verify.html`, one self-contained
file built from web/ by `make web` and shipped as package data (custody/assets/verify.html).

`custody export` writes it into every bundle (docs/spec/bundle.md §2, listed in the
manifest's `files` like any other file) and `custody verifier-page --out FILE` writes it
on its own.  This module only reads the shipped bytes; it never builds them.
"""

from __future__ import annotations

from importlib import resources

from custody.errors import StorageError

VERIFIER_PAGE = "verify.html"


def verifier_page() -> bytes:
    """The shipped verify.html, byte for byte.

    Raises StorageError when the installed package lacks it (a checkout where
    `make web` never ran and custody/assets/verify.html was deleted)."""
    try:
        return resources.files("custody").joinpath("assets", VERIFIER_PAGE).read_bytes()
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise StorageError(
            f"the browser verifier page (custody/assets/{VERIFIER_PAGE}) is not installed",
            hint="run `make web` in the custody checkout, or reinstall custody",
        ) from exc
