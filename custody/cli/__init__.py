"""The `custody` command: a thin typer layer over `custody.app`."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> None:
    """Console entry point (`custody = custody.cli:main`)."""
    from custody.cli.main import main as _main

    _main(argv)
