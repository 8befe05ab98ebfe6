"""One engine host per user, shared by every editor window and by API clients (Claude Code)."""
