"""custody: forensic chain of custody for camera footage.

The packages are layers (docs/architecture.md): `tlog`, `model` and `media` are
pure; `bundle` verifies a defence bundle without any store; `infra` does the I/O
(database, vault, key files, ffmpeg); `app` holds the use cases that scripts
import; `report` renders for a court; `cli` is a thin typer layer over `app`.
"""

__version__ = "0.1.0"
