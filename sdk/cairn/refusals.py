"""Telling "NATS is away" from "NATS refuses this message".

An event NATS cannot take now (connection lost, server restarting, JetStream
slow to answer) is kept in the spool and sent again later. An event NATS will
never take (a subject it cannot route, a payload over its limit, a request
JetStream answers with an error) would stall everything behind it if it were
retried: it is quarantined instead, with the reason, and the rest goes on.
"""

from __future__ import annotations

import functools
import re

from cairn_events import DEFAULT_STREAM, MAX_SUBJECT_BYTES, EventStream, JetStreamError

#: Room kept for headers (Nats-Msg-Id, the claim's expectations) under the server's max_payload.
HEADER_ROOM = 1024
#: JetStream answers that mean "not now" rather than "never": retried, not quarantined.
_TRANSIENT_ERR_CODES = frozenset({JetStreamError.CLUSTER_NOT_AVAILABLE})


class Refused(Exception):
    """NATS will not take this message whatever we do; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@functools.cache  # one pattern per subject root: the check runs for every event sent
def _publishable(root: str) -> re.Pattern[str]:
    """Subjects a stream with this root takes: tokens of anything but dots, whitespace, wildcards."""
    return re.compile(re.escape(root) + r"(?:\.[^.\s*>]+)+")


def refusal_before_sending(
    subject: str, size: int, max_payload: int, stream: EventStream = DEFAULT_STREAM
) -> str | None:
    """Why a message of ``size`` bytes on ``subject`` cannot be published to ``stream``; None if it can.

    Checked before sending because the server's answer to these is to drop the
    message silently or to close the connection (a control line over 4,096 bytes).
    """
    if len(subject) > MAX_SUBJECT_BYTES:
        return f"its subject is {len(subject)} bytes; the limit is {MAX_SUBJECT_BYTES}"
    if not _publishable(stream.root).fullmatch(subject):
        return (
            f"its subject {subject[:120]!r} is not one stream {stream.name} takes "
            f"(empty token, whitespace or wildcard, or outside {stream.root}.>)"
        )
    if size > max_payload - HEADER_ROOM:
        return (
            f"it is {size:,} bytes; this NATS server takes at most {max_payload - HEADER_ROOM:,} "
            f"(max_payload {max_payload:,} less {HEADER_ROOM} for headers)"
        )
    return None


def refusal_of(exc: BaseException) -> str | None:
    """The reason if ``exc`` means the message is refused for good; None if NATS is only away."""
    import nats.errors
    import nats.js.errors

    if isinstance(exc, Refused):
        return exc.reason
    if isinstance(
        exc, nats.js.errors.ServiceUnavailableError | nats.js.errors.NoStreamResponseError
    ):
        return None  # JetStream is starting up or electing a leader
    if isinstance(exc, nats.js.errors.APIError):
        if exc.err_code in _TRANSIENT_ERR_CODES:
            return None
        return f"JetStream refused it: {exc.description} (code {exc.code}, err_code {exc.err_code})"
    if isinstance(exc, nats.errors.MaxPayloadError):
        return "it is larger than the server's max_payload"
    if isinstance(exc, nats.errors.BadSubjectError):
        return "its subject is not valid"
    if isinstance(exc, nats.errors.BadHeaderError):
        return "a header is not valid"
    if isinstance(exc, nats.errors.Error | OSError | TimeoutError):
        return None  # connection lost, closed, reconnecting, or no answer in time
    # Anything else (an event that cannot be decoded, a bug) would fail the same way forever.
    return f"it cannot be sent: {type(exc).__name__}: {exc}"
