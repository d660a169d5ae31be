"""Use cases on a custody home: keys, evidence, consent, handoffs, derived clips,
export, witnessing.  This is the library API that the CLI and scripts call."""
