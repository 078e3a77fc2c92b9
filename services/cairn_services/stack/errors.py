"""Errors a user of the local stack may meet (missing binaries, servers that won't start)."""

from __future__ import annotations


class StackError(RuntimeError):
    """A local server could not be found, started or stopped.

    The message always says what went wrong and what to do about it, so callers
    (the CLI, pytest fixtures) can show it to the user as is.
    """
