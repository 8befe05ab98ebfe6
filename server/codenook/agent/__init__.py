"""Agent tasks: a tool-using loop on the same engine, confined to the workspace."""
