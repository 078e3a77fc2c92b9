"""The progress lines a run prints as it goes (run started, step finished, ...)."""

from __future__ import annotations

import contextlib
import sys


def say(line: str) -> None:
    """Print a progress line; a closed or broken stdout (``| head``) must not stop the run."""
    with contextlib.suppress(OSError, ValueError):  # BrokenPipeError, or a closed file
        sys.stdout.write(line + "\n")
