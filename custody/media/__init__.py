"""Pure media evidence: file digests, canonical snapshots, packet lists, the
classification of a file against a record, and lineage proofs (docs/spec/media.md)."""
