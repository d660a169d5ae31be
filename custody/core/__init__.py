"""The pure core: digests, Merkle math, note/checkpoint/entry encodings, signatures.

Nothing under `custody.core` may import a database, the CLI or `subprocess`;
`tests/test_layers.py` walks the imports to keep it that way.
"""
