"""Sending runs of events to JetStream: one fast-ingest batch, or one publish each.

A run is what the send loop (or the spool drain) has ready in order, up to a version
claim. :class:`Sender` quarantines what the server would refuse before sending it,
sends the rest as one batch when the link has batches, else one by one (through the
link's :class:`~cairn.acks.Acks`), and keeps track of their acknowledgements in the
:class:`~cairn.outbox.Outbox`. What is not
acknowledged while NATS is away goes to the spool; what NATS refuses for good, to the
quarantine (:mod:`.refusals` tells the two apart).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time

import structlog
from cairn_events import JetStreamError

from .connection import Link
from .fast_ingest import BatchFailed, Outgoing
from .outbox import Inflight, Outbox, entry_of
from .quarantine import Quarantine
from .refusals import refusal_before_sending, refusal_of

log = structlog.get_logger(__name__)

#: The most events sent as one run (one fast-ingest batch).
MAX_RUN = 5000


class Sender:
    """Sends runs of events over one :class:`~cairn.connection.Link`, in order."""

    def __init__(self, link: Link, outbox: Outbox, quarantine: Quarantine) -> None:
        self._link = link
        self._outbox = outbox
        self._inflight = outbox.inflight
        self._quarantine = quarantine

    def sendable(self, items: list[Outgoing]) -> list[Outgoing]:
        """``items`` less those NATS would refuse, which are quarantined with the reason."""
        kept = []
        max_payload, stream = self._link.max_payload, self._link.stream
        for item in items:
            reason = refusal_before_sending(item.subject, len(item.data), max_payload, stream)
            if reason is None:
                kept.append(item)
            else:
                self._quarantine.keep(entry_of(item), reason)
        return kept

    async def send(self, run: list[Outgoing], *, from_spool: bool) -> None:
        """Send ``run`` in one fast-ingest batch, or one by one on a link without batches.

        From the send loop, single events are not awaited (their answers settle them
        as they come); from the spool each is, so the drain goes on only past an event
        stored or quarantined. Raises BatchFailed if the connection broke: what was not
        stored then belongs in the spool, not in a retry.
        """
        one_by_one = self._publish_and_wait if from_spool else self._publish_one
        link = self._link
        if link.fast is None:
            for item in run:
                await one_by_one(item)
            return
        try:
            seq = await link.fast.send(run)
        except BatchFailed as exc:
            if not (link.connected and link.nc.is_connected):
                raise
            rest = run[exc.stored :]
            log.warning(
                "publisher.batch_failed", reason=exc.reason, stored=exc.stored, resending=len(rest)
            )
            if exc.err_code == JetStreamError.BATCH_NOT_ENABLED:  # the stream changed under us
                link.stop_batches()
            if exc.stored:
                await self._learn_seq(run[exc.stored - 1].subject)
            if not from_spool:  # from the send loop: the drain sends the rest, in order
                self._outbox.resend_later(rest)
                return
            for item in rest:  # one by one: a refused message is quarantined, the rest go on
                await one_by_one(item)
        else:
            self._outbox.acknowledged(seq)

    async def _publish_one(self, item: Outgoing) -> None:
        """Publish without waiting; the answer (stored or refused) is handled by _on_ack."""
        link = self._link
        try:
            ack = await link.acks.publish(item)
        except Exception as exc:
            reason = refusal_of(exc)
            if reason is not None and link.nc.is_connected:
                self._quarantine.keep(entry_of(item), reason)
            elif link.connected:  # NATS is away and has not said so yet, or is stalled
                never = asyncio.get_running_loop().create_future()
                self._inflight.append(Inflight(item, never, time.monotonic()))
            else:
                self._outbox.spool_items([item])
            return
        ack.add_done_callback(functools.partial(self._on_ack, item))
        self._inflight.append(Inflight(item, ack, time.monotonic()))

    def _on_ack(self, item: Outgoing, ack: asyncio.Future[int]) -> None:
        if not ack.cancelled():  # cancelled: the outage spooled it
            error = ack.exception()
            if error is None:
                self._outbox.acknowledged(ack.result())
            elif (reason := refusal_of(error)) is not None:
                self._quarantine.keep(entry_of(item), reason)
            else:
                self._outbox.resend_later([item])
        inflight = self._inflight
        while inflight and inflight[0].ack.done():
            inflight.popleft()

    async def _publish_and_wait(self, item: Outgoing) -> None:
        """Publish and wait for the acknowledgement; a refused event is quarantined.

        Raises (TimeoutError after ``ack_timeout``, or what the connection raises) when
        NATS is away: the drain waits and sends it again.
        """
        link = self._link
        try:
            ack = await link.acks.publish(item)
            seq = await asyncio.wait_for(ack, link.ack_timeout)
        except Exception as exc:
            reason = refusal_of(exc)
            if reason is None:
                raise
            self._quarantine.keep(entry_of(item), reason)
            return
        self._outbox.acknowledged(seq)

    async def _learn_seq(self, subject: str) -> None:
        """Raise last_seq to the newest message on ``subject`` (a batch stored part of itself)."""
        with contextlib.suppress(Exception):  # only read-your-writes precision is at stake
            msg = await self._link.js.get_last_msg(self._link.stream.name, subject)
            self._outbox.acknowledged(msg.seq)
