"""Riding out NATS going away: spool what is unacknowledged, reconnect, send the spool again.

When the connection drops, everything handed over and not acknowledged goes, in
order, to the :class:`~cairn.spool.Spool`, and so does everything handed over until
it is back. Then the spool is drained: events in runs through the
:class:`~cairn.sending.Sender`, claims one by one through the
:class:`~cairn.claims.Claimer`, waiting out further outages and quarantining what
NATS refuses, while the send loop waits so the order holds. A connection the server
closes for good (a protocol error) is opened again. Acknowledgements overdue while
connected (a message lost on the way) are sent again from the spool too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec
import structlog

from .claims import Claimer
from .connection import Link
from .outbox import Handed, Outbox, outgoing_of
from .quarantine import Quarantine
from .sending import MAX_RUN, Sender
from .settings import redact_url
from .spool import SpoolEntry, Unreadable, sendable_units

log = structlog.get_logger(__name__)

_RETRY_FIRST_S, _RETRY_MAX_S = 0.2, 2.0


class Outage:
    """Watches the link (a :class:`~cairn.connection.ConnectionWatcher`) and drains the spool."""

    def __init__(
        self,
        link: Link,
        outbox: Outbox,
        sender: Sender,
        claimer: Claimer,
        quarantine: Quarantine,
    ) -> None:
        self._link = link
        self._outbox = outbox
        self._sender = sender
        self._claimer = claimer
        self._quarantine = quarantine
        #: Opening a new connection after the server closed ours for good; None until then.
        self.reopener: asyncio.Task[None] | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._drain_offset = 0  # how far into the spool the drain has sent

    def start(self) -> None:
        """Start draining the spool whenever the outbox asks for it (on the loop)."""
        self._drainer = asyncio.get_running_loop().create_task(self._drain_when_wanted())

    def tasks(self) -> list[asyncio.Task[None]]:
        """The tasks this part runs, for the publisher to end when it closes."""
        return [t for t in (self._drainer, self.reopener) if t is not None]

    # -- the connection goes and comes -------------------------------------------------

    async def on_disconnected(self) -> None:
        link = self._link
        was_connected, link.connected = link.connected, False
        if link.closing:
            return
        if was_connected:
            log.warning("publisher.nats_away", nats=redact_url(link.nats_url))
        self.spool_unfinished()

    async def on_reconnected(self) -> None:
        self._link.connected = True
        log.info("publisher.nats_back", nats=redact_url(self._link.nats_url))
        self._outbox.request_drain()

    async def on_closed(self) -> None:
        """The connection ended for good (a protocol error from the server): open a new one."""
        if self._link.closing:
            return
        await self.on_disconnected()
        if self.reopener is None or self.reopener.done():
            self.reopener = asyncio.get_running_loop().create_task(self._reopen())

    async def _reopen(self) -> None:
        link = self._link
        started, attempts, wait, error = time.monotonic(), 0, _RETRY_FIRST_S, ""
        log.warning("publisher.reconnecting", nats=redact_url(link.nats_url))
        while not link.closing:
            attempts += 1
            try:
                await link.open(self)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(wait)
                wait = min(wait * 2, _RETRY_MAX_S)
                continue
            log.info(
                "publisher.reconnected",
                attempts=attempts,
                seconds=round(time.monotonic() - started, 3),
            )
            self._claimer.forget()
            self._outbox.request_drain()
            return
        log.info("publisher.reconnect_abandoned", attempts=attempts, error=error)

    def spool_unfinished(self) -> None:
        """Spool, in order, everything handed over and not yet acknowledged."""
        outbox, link = self._outbox, self._link
        unacked: list[Handed] = [f.item for f in outbox.inflight if not f.ack.done()]
        for flight in outbox.inflight:
            flight.ack.cancel()
        outbox.inflight.clear()
        if link.fast is not None and outbox.in_batch is not None:
            unacked += link.fast.abandon()
            outbox.in_batch = None
        if link.closing:
            unacked += [c for task, c in outbox.claiming.items() if not task.done()]
            outbox.queue.extend(outbox.incoming)
            outbox.incoming.clear()
        outbox.spool_items(unacked + list(outbox.queue))
        outbox.queue.clear()

    def resend_overdue(self) -> None:
        """Acknowledgements overdue while connected (a message dropped on the way): resend."""
        overdue_before = time.monotonic() - self._link.ack_timeout
        inflight = self._outbox.inflight
        overdue = [f for f in inflight if not f.ack.done() and f.sent_at < overdue_before]
        if overdue and self._link.connected:
            for flight in overdue:
                flight.ack.cancel()
            log.info("publisher.acks_overdue", n=len(overdue))
            self._outbox.resend_later([f.item for f in overdue])

    # -- draining the spool ------------------------------------------------------------

    async def _drain_when_wanted(self) -> None:
        outbox, link = self._outbox, self._link
        while True:
            await outbox.drain_wanted.wait()
            outbox.drain_wanted.clear()
            if outbox.spool_pending and link.connected and not link.closing:
                try:
                    await self._drain()
                except Exception as exc:  # e.g. the spool file cannot be read: next time, again
                    log.error("publisher.spool_drain_failed", error=f"{type(exc).__name__}: {exc}")

    async def _drain(self) -> None:
        """Send everything spooled, in order; wait out outages, quarantine refusals.

        Logs when it starts waiting for NATS and when it ends, with counts, not per attempt.
        """
        outbox, link, spool = self._outbox, self._link, self._outbox.spool
        started, retries, sent, wait = time.monotonic(), 0, 0, _RETRY_FIRST_S
        refused_before = self._quarantine.kept
        while outbox.spool_pending and link.connected and not link.closing:
            entries, end = spool.read(self._drain_offset)
            if not entries:
                spool.discard_through(end)
                self._drain_offset = 0
                if spool.count():  # spooled while we drained: go round again
                    continue
                outbox.spool_pending = outbox.spooling = False
                outbox.ready.set()  # the send loop goes on with what waited behind the spool
                log.info(
                    "publisher.spool_drained",
                    sent=sent,
                    quarantined=self._quarantine.kept - refused_before,
                    retries=retries,
                    seconds=round(time.monotonic() - started, 3),
                )
                return
            try:
                for unit, unit_end in sendable_units(entries, MAX_RUN):
                    sent += await self._send_unit(unit)
                    self._drain_offset = unit_end
            except Exception as exc:  # NATS is not taking anything right now
                if retries == 0:
                    log.warning(
                        "publisher.spool_drain_waiting",
                        pending=len(entries),
                        error=f"{type(exc).__name__}: {exc}",
                    )
                retries += 1
                await asyncio.sleep(wait)
                wait = min(wait * 2, _RETRY_MAX_S)
                if retries % 5 == 0:  # NoStreamResponse after a restart: make sure it exists
                    with contextlib.suppress(Exception):
                        await link.ensure_stream()
        if outbox.spool_pending and not link.closing:
            log.info("publisher.spool_drain_paused", sent=sent, retries=retries)

    async def _send_unit(self, unit: SpoolEntry | Unreadable | list[SpoolEntry]) -> int:
        """Send one claim or one run of events from the spool; how many were sent.

        Raises when NATS is away (the drain waits and sends the unit again).
        """
        if isinstance(unit, Unreadable):
            raw = msgspec.json.encode(unit.line.decode(errors="replace"))
            entry = SpoolEntry(subject="?", event=msgspec.Raw(raw))
            self._quarantine.keep(entry, f"the spool line cannot be read: {unit.error}")
            return 0
        if isinstance(unit, SpoolEntry):
            return await self._claimer.redo(unit)
        run = self._sender.sendable([outgoing_of(entry) for entry in unit])
        if run:
            await self._sender.send(run, from_spool=True)
        return len(run)
