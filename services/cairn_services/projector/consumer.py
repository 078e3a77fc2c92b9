"""A continuous pull from the projector's durable consumer into a local buffer.

nats-py's ``PullSubscription.fetch`` awaits every message with its own timeout
and reaches about 11k msgs/s here; keeping one or two large pull requests
outstanding and collecting deliveries in a subscription callback reaches about
50k/s. ``EventFeed`` does that, with the flow control of nats.go's ``Consume``:
it re-pulls when the messages requested but not yet delivered, plus those
buffered but not yet taken, fall to one batch.

The consumer's position is not trusted: ``open(start_seq)`` recreates it to
deliver from ``start_seq`` (the Postgres checkpoint + 1), so messages fetched
but never committed before a crash come back at once, with no ack-wait delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Sequence

import structlog
from cairn_events import Header, NatsStatus
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from .errors import ProjectorError

log = structlog.get_logger(__name__)

#: Requests that end without delivering everything (expired, consumer changes).
_END_OF_REQUEST = {NatsStatus.REQUEST_TIMEOUT, NatsStatus.CONFLICT}
#: How long after a pull's expiry without any word from the server we assume it was lost.
_LOST_PULL_GRACE_S = 2.0


def stream_seq(msg: Msg) -> int:
    """The stream sequence of a JetStream message, from its ack subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>...`` (9 tokens) or, with a
    domain, ``$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>...``.
    Parsed here because ``Msg.metadata`` builds dataclasses and a datetime per message.
    """
    tokens = msg.reply.split(".")
    return int(tokens[5] if len(tokens) == 9 else tokens[7])


class EventFeed:
    """Delivers the messages of one durable pull consumer in stream order, in batches.

    ``take()`` returns what has arrived (up to a batch), waiting only while
    nothing has. ``ack_through(msg)`` acks ``msg`` and everything before it
    (the consumer uses AckPolicy.ALL). With ``subject_filter`` (one subject or several,
    wildcards allowed) the consumer delivers only the stream's messages on those.
    """

    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        stream: str,
        consumer: str,
        *,
        batch_size: int,
        subject_filter: str | Sequence[str] | None = None,
        pull_expires_s: float = 2.0,
    ) -> None:
        self._nc, self._js = nc, js
        self._stream, self._consumer = stream, consumer
        filters = [subject_filter] if isinstance(subject_filter, str) else subject_filter
        self._filters = list(filters or [])
        self._batch_size = batch_size
        self._expires_s = pull_expires_s
        self._buffer: deque[Msg] = deque()
        self._arrived = asyncio.Event()
        self._outstanding = 0
        self._last_word = 0.0
        self._sub: Subscription | None = None
        self._inbox = ""
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._failure: str | None = None
        self._log = log.bind(stream=stream, consumer=consumer)

    async def open(self, start_seq: int) -> None:
        """(Re)create the durable consumer delivering from ``start_seq`` and start pulling."""
        await self.close()
        with contextlib.suppress(NotFoundError):
            await self._js.delete_consumer(self._stream, self._consumer)
        config = ConsumerConfig(
            durable_name=self._consumer,
            description="Cairn projector: folds events into Postgres read models",
            deliver_policy=DeliverPolicy.ALL if start_seq <= 1 else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=None if start_seq <= 1 else start_seq,
            ack_policy=AckPolicy.ALL,
            # The checkpoint, not redelivery, recovers lost work: see the module docstring.
            ack_wait=600.0,
            max_ack_pending=max(50_000, 4 * self._batch_size),
            # one subject as filter_subject: nats-server before 2.10 knows no filter_subjects
            filter_subject=self._filters[0] if len(self._filters) == 1 else None,
            filter_subjects=self._filters if len(self._filters) > 1 else None,
        )
        await self._js.add_consumer(self._stream, config)
        self._buffer.clear()
        self._outstanding, self._failure = 0, None
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(
            self._inbox, cb=self._on_msg, pending_msgs_limit=8 * self._batch_size + 1000
        )
        await self._top_up()
        self._log.info("projector.consumer_opened", start_seq=start_seq, filters=self._filters)

    async def close(self) -> None:
        """Stop pulling; the durable consumer stays on the server."""
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # a closed connection has no subscription to remove
                self._log.debug("projector.unsubscribe_failed", error=str(exc))
        self._buffer.clear()

    async def take(self, max_wait_s: float) -> list[Msg]:
        """Up to one batch of buffered messages; waits up to ``max_wait_s`` while there are none.

        Raises ProjectorError when the feed is not open (closed after a failure).
        """
        if self._sub is None:
            raise ProjectorError(f"consumer {self._consumer} is not open")
        if not self._buffer:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), max_wait_s)
        if self._failure is not None:
            raise ProjectorError(f"consumer {self._consumer} failed: {self._failure}")
        n = min(len(self._buffer), self._batch_size)
        msgs = [self._buffer.popleft() for _ in range(n)]
        await self._top_up()
        return msgs

    async def ack_through(self, msg: Msg) -> None:
        """Ack ``msg`` and every message delivered before it (fire and forget)."""
        await msg.ack()

    async def reconnected(self) -> None:
        """The connection came back: pulls sent before are gone, so pull afresh."""
        self._outstanding = 0
        await self._top_up()

    async def _on_msg(self, msg: Msg) -> None:
        self._last_word = time.monotonic()
        headers = msg.headers
        status = headers.get(Header.STATUS) if headers else None
        if status is None:
            self._outstanding -= 1
            self._buffer.append(msg)
            self._arrived.set()
            return
        assert headers is not None
        description = headers.get(Header.DESCRIPTION, "")
        if status == NatsStatus.NO_RESPONDERS:
            # JetStream is not serving the consumer (yet): the next take() pulls again.
            self._outstanding = 0
        elif status in _END_OF_REQUEST:
            self._outstanding -= int(headers.get(Header.PENDING_MESSAGES, "0"))
            if "Consumer Deleted" in description:
                self._failure = "the consumer was deleted on the server"
                self._arrived.set()
            elif "Server Shutdown" in description:
                self._outstanding = 0  # every pull dies with the server
            if status == NatsStatus.CONFLICT:
                self._log.warning("projector.pull_ended", status=status, description=description)
            await self._top_up()
        # 100 (heartbeat) and anything else: nothing to do.

    async def _top_up(self) -> None:
        """Pull another batch when requested-but-undelivered plus buffered fall to one batch."""
        if self._sub is None:
            return
        now = time.monotonic()
        if self._outstanding > 0 and now - self._last_word > self._expires_s + _LOST_PULL_GRACE_S:
            # No delivery and no expiry notice: the pull died with a server restart.
            self._log.warning("projector.pull_lost", outstanding=self._outstanding)
            self._outstanding = 0
        if self._outstanding + len(self._buffer) > self._batch_size:
            return
        request = {"batch": self._batch_size, "expires": int(self._expires_s * 1e9)}
        await self._nc.publish(self._next_subject, json.dumps(request).encode(), reply=self._inbox)
        self._outstanding += self._batch_size
        self._last_word = now
