"""The JetStream streams the projector reads and dead-letters into."""

from __future__ import annotations

import re

import structlog
from cairn_events import (
    DEAD_LETTER_STREAM,
    DEAD_LETTER_SUBJECTS,
    DUPLICATE_WINDOW_S,
    STREAM,
    STREAM_SUBJECTS,
)
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

log = structlog.get_logger(__name__)

_STREAM_NAME_IN_USE = 10058
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
    """The durable consumer a projector reads through."""
    return f"cairn-projector-{check_projector_name(projector)}"


async def ensure_streams(js: JetStreamContext, *, fast_ingest: bool = False) -> None:
    """Create the event stream and the dead-letter stream if missing; leave existing ones as is.

    With ``fast_ingest`` (nats-server >= 2.14) the event stream takes fast-ingest
    batches, which is how the SDK publishes.
    """
    await _ensure_stream(js, STREAM, STREAM_SUBJECTS, allow_batched=fast_ingest or None)
    await _ensure_stream(js, DEAD_LETTER_STREAM, DEAD_LETTER_SUBJECTS)


async def _ensure_stream(
    js: JetStreamContext, name: str, subjects: list[str], allow_batched: bool | None = None
) -> None:
    try:
        await js.stream_info(name)
        return
    except NotFoundError:
        pass
    config = StreamConfig(
        name=name,
        subjects=list(subjects),
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        allow_batched=allow_batched,
    )
    try:
        await js.add_stream(config)
        log.info("projector.stream_created", stream=name, subjects=subjects)
    except BadRequestError as exc:
        if exc.err_code != _STREAM_NAME_IN_USE:  # someone else created it meanwhile
            raise
