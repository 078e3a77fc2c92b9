"""How far this process's own writes have got: what a read must wait for (read-your-writes).

The tracker registers itself here when it is created (:func:`register`); the Client asks
:func:`last_published_seq` before each read. Neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable

_source: Callable[[str], int] | None = None


def register(source: Callable[[str], int]) -> None:
    """``source(api_url)`` answers :func:`last_published_seq` from now on."""
    global _source
    _source = source


def last_published_seq(api_url: str) -> int:
    """Stream sequence of this process's newest acknowledged event that the API at
    ``api_url`` can wait for; 0 if none (nothing tracked yet, or another stack's API)."""
    return 0 if _source is None else _source(api_url)
