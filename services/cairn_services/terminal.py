"""The CLI's terminal: one rich Console, made (and rich imported) when first printed to.

Commands that print plain lines (``up``, ``down``, ``status``) never pay for rich.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@functools.cache
def console() -> Console:
    from rich.console import Console

    return Console()
