"""CLI: `custody verifier-page --out FILE`, the browser verifier on its own.

Writes the shipped verify.html (`custody.bundle.page.verifier_page`), the same bytes
`custody export` puts in every bundle: one file that opens from disk in a current
browser, makes no network request and checks a bundle (docs/browser-verifier.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import write_out


def verifier_page_cmd(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the page to this file (verify.html); without it, to stdout.",
        ),
    ] = None,
) -> None:
    """Write the browser verifier page (verify.html) that every bundle carries.

    Give it to defence counsel who cannot install custody: they open it in a browser,
    choose the bundle folder or .zip and paste the log's verifier key.  It is the page
    shipped with this custody, byte for byte (docs/browser-verifier.md says how to
    rebuild it and check that).
    """
    from custody.bundle.page import verifier_page

    write_out(verifier_page(), out)
