"""Single publishes to JetStream and their acknowledgements.

Where events go one at a time (no fast-ingest batches), each is one publish whose
reply subject is ``<prefix>.<n>``, under an inbox prefix of this publisher's own
(``_CPA<nuid>``) that one subscription hears. JetStream's answer settles that
message's future: with the stream sequence of its PubAck, or with the
``nats.js.errors.APIError`` its ``error`` makes (the subclass nats-py would raise:
503 is ``ServiceUnavailableError``, 400 ``BadRequestError``, ...), so
:func:`cairn.refusals.refusal_of` tells "refused" from "not now" as soon as the
server has answered.

nats-py's ``publish_async`` works the same way but never settles a future whose
answer is an error (its reply handler raises instead), so a refused event used to
wait out the overdue-ack check (``ack_timeout``) before it was quarantined. The
flow control is the one Cairn gave nats-py: at most ``max_pending`` publishes
unanswered, after which the next one waits for room, at most ``stall_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec
import nats.js.errors
from cairn_events import Header, NatsStatus
from nats.nuid import NUID

from .fast_ingest import Outgoing, ReplyError, decode_reply

#: Publishes awaiting their answer before the next one waits for room.
MAX_PENDING = 10_000
#: While waiting for room: how often futures cancelled meanwhile (spooled) are let go.
_SWEEP_S = 0.05


class Acks:
    """Publishes events one at a time over one NATS connection; a future per answer.

    A future the publisher cancels (an outage spooled its event, or its answer was
    overdue) is let go when its answer comes or when room is needed, so giving up
    costs the hot path nothing (nats-py ran a done-callback per publish for it).
    """

    def __init__(
        self, nc: Any, *, max_pending: int = MAX_PENDING, stall_timeout: float = 5.0
    ) -> None:
        self._nc = nc
        self.max_pending = max_pending
        self.stall_timeout = stall_timeout
        self._prefix = f"_CPA{NUID().next().decode()}."
        self._count = 0
        #: Unanswered publishes by their reply subject.
        self._pending: dict[str, asyncio.Future[int]] = {}
        self._room = asyncio.Event()
        self._waiting_for_room = False
        self._loop = asyncio.get_running_loop()

    async def open(self) -> Acks:
        await self._nc.subscribe(f"{self._prefix}*", cb=self._on_reply)
        return self

    @property
    def pending(self) -> int:
        """How many publishes await their answer."""
        return len(self._pending)

    async def publish(self, item: Outgoing) -> asyncio.Future[int]:
        """Publish ``item``; a future of its stream sequence, or of why JetStream refused it.

        Raises what the connection raises (closed, reconnecting, buffer full), and
        ``TooManyStalledMsgsError`` if ``max_pending`` publishes stayed unanswered for
        ``stall_timeout``.
        """
        pending = self._pending
        if len(pending) >= self.max_pending:
            await self._wait_for_room()
        self._count += 1
        reply = f"{self._prefix}{self._count}"
        ack: asyncio.Future[int] = self._loop.create_future()
        pending[reply] = ack
        try:
            await self._nc.publish(
                item.subject, item.data, reply=reply, headers={Header.MSG_ID: item.msg_id}
            )
        except BaseException:
            pending.pop(reply, None)
            raise
        return ack

    async def _wait_for_room(self) -> None:
        pending, deadline = self._pending, self._loop.time() + self.stall_timeout
        self._waiting_for_room = True
        try:
            while True:
                for reply in [reply for reply, ack in pending.items() if ack.done()]:
                    del pending[reply]  # cancelled by the publisher: no answer is awaited
                if len(pending) < self.max_pending:
                    return
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    raise nats.js.errors.TooManyStalledMsgsError
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), min(remaining, _SWEEP_S))
        finally:
            self._waiting_for_room = False

    async def _on_reply(self, msg: Any) -> None:
        ack = self._pending.pop(msg.subject, None)
        if self._waiting_for_room:
            self._room.set()
        if ack is None or ack.done():
            return  # an answer to a publish given up on (spooled, or sent again)
        headers = msg.headers
        if headers and headers.get(Header.STATUS) == NatsStatus.NO_RESPONDERS:
            ack.set_exception(nats.js.errors.NoStreamResponseError())  # no stream takes it
            return
        try:
            reply = decode_reply(msg.data)
        except msgspec.DecodeError:
            ack.set_exception(_unreadable(msg.data))
            return
        if reply.error is not None:
            ack.set_exception(_api_error(reply.error))
        elif reply.stream is None:
            ack.set_exception(_unreadable(msg.data))
        else:
            ack.set_result(reply.seq)


def _api_error(error: ReplyError) -> nats.js.errors.APIError:
    """The exception nats-py raises for JetStream's ``error`` (a subclass chosen by code)."""
    try:
        nats.js.errors.APIError.from_error(
            {"code": error.code, "err_code": error.err_code, "description": error.description}
        )
    except nats.js.errors.APIError as exc:
        return exc
    raise AssertionError("APIError.from_error always raises")  # pragma: no cover


def _unreadable(data: bytes) -> nats.js.errors.Error:
    """An answer that is no PubAck: not a refusal (the spool sends the event again)."""
    return nats.js.errors.Error(f"an answer that is no acknowledgement: {data[:200]!r}")
