"""Pure transparency-log formats: RFC 6962/9162 Merkle trees, C2SP signed notes,
checkpoints, cosignatures, tlog-proofs and the witness update rule.

No custody semantics, no I/O: usable on its own by any tlog verifier.
"""
