"""What a projector is called on JetStream: its durable consumer and dead-letter subject.

The streams themselves are set up by ``cairn.stream_setup`` from the
:class:`~cairn_events.EventStream` the projector reads.
"""

from __future__ import annotations

import re

_VALID_NAME = re.compile(r"[A-Za-z0-9_-]+")


def check_projector_name(name: str) -> str:
    """``name`` if it can name a consumer and a subject token, else ValueError."""
    if not _VALID_NAME.fullmatch(name):
        raise ValueError(
            f"projector name {name!r} must be letters, digits, '-' or '_' "
            f"(it names a JetStream consumer and a dead-letter subject)"
        )
    return name


def consumer_name(projector: str) -> str:
    """The durable consumer a projector reads through (on the stream it reads)."""
    return f"cairn-projector-{check_projector_name(projector)}"
