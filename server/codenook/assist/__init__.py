"""Chat-based help on the shared engine: code actions with streamed edits, hover."""
