"""I/O: the database (the only SQL), log storage with its indexed custody state,
the write-once vault, key files, ffmpeg, durable file writes."""
