"""The one exception of the benchmark, in a module of its own so that every part can raise it
without importing another part."""

from __future__ import annotations


class BenchError(Exception):
    """A problem the user must fix (bad trace, server that does not start); ends the command."""
