"""Pure custody formats and rules: the entry codec, one typed class per entry type,
the party-key timeline, the rule engine, and `describe()` (docs/spec/entry.md)."""
