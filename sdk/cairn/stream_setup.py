"""Setting up the JetStream streams an :class:`~cairn_events.EventStream` declares.

The SDK's publisher and the projector both call these, so the stream is configured
in one place (``EventStream.config``) whoever creates it first.
"""

from __future__ import annotations

from typing import Any

import structlog
from cairn_events import EventStream, JetStreamError

log = structlog.get_logger(__name__)


async def ensure_stream(js: Any, stream: EventStream, *, fast_ingest: bool) -> bool:
    """Create ``stream`` if it is missing; whether it takes fast-ingest batches.

    With ``fast_ingest`` (the server is nats-server 2.14 or newer) a new stream takes
    batches, and an existing one made without them is updated to take them; if that
    update is refused (credentials without the right), publishing goes one by one.
    """
    from nats.js.api import StreamConfig
    from nats.js.errors import BadRequestError, NotFoundError

    try:
        info = await js.stream_info(stream.name)
    except NotFoundError:
        config = StreamConfig(**stream.config(allow_batched=True if fast_ingest else None))
        try:
            await js.add_stream(config)
            log.info("stream.created", stream=stream.name, subjects=stream.subjects)
        except BadRequestError as exc:
            _refuse_overlap(exc, stream.name, stream.subjects)
            if exc.err_code != JetStreamError.STREAM_NAME_IN_USE:  # made meanwhile: fine
                raise
            info = await js.stream_info(stream.name)
        else:
            return fast_ingest
    if fast_ingest and not info.config.allow_batched:
        try:
            await js.update_stream(info.config, allow_batched=True)
        except Exception as exc:  # e.g. credentials without stream-update rights
            log.info("stream.batches_unavailable", stream=stream.name, error=str(exc))
            return False
    return fast_ingest


async def ensure_dead_letter_stream(js: Any, stream: EventStream) -> None:
    """Create ``stream``'s dead-letter stream if it is missing."""
    from nats.js.api import StreamConfig
    from nats.js.errors import BadRequestError, NotFoundError

    try:
        await js.stream_info(stream.dead_letter_name)
        return
    except NotFoundError:
        pass
    try:
        await js.add_stream(StreamConfig(**stream.dead_letter_config()))
        log.info("stream.created", stream=stream.dead_letter_name)
    except BadRequestError as exc:
        _refuse_overlap(exc, stream.dead_letter_name, stream.dead_letter_subjects)
        if exc.err_code != JetStreamError.STREAM_NAME_IN_USE:
            raise


class StreamSubjectsTakenError(ValueError):
    """Another stream on the server already takes the subjects a new stream would."""


def _refuse_overlap(exc: Any, name: str, subjects: list[str]) -> None:
    if exc.err_code == JetStreamError.SUBJECTS_OVERLAP:
        raise StreamSubjectsTakenError(
            f"stream {name} cannot take {', '.join(subjects)}: another stream on this NATS "
            "server takes those subjects already (JetStream error 10065). Give the "
            "EventStream another root (EventStream(name=..., root=...)), or use that stream."
        ) from None
