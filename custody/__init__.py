"""custody: forensic chain of custody for camera footage.

The library API lives in a few public modules; the CLI (`custody.cli`) is a thin
layer over them.  The pure core (`custody.core`) does no I/O at all.
"""

__version__ = "0.1.0"
