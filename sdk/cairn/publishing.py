"""Publishing events to JetStream from a background event loop.

The step's thread hands each event over and goes on; the loop takes what was
handed over and sends it in order: runs of events through the
:class:`~cairn.sending.Sender` (fast-ingest batches, or one publish each), version
claims through the :class:`~cairn.claims.Claimer` (compare-and-set). While NATS is
away the :class:`~cairn.outage.Outage` keeps what is unacknowledged in the spool and
sends it when NATS is back; what NATS refuses for good is quarantined with the
reason, and everything after it goes on. These parts share one
:class:`~cairn.outbox.Outbox` (where each event is) and one
:class:`~cairn.connection.Link` (the connection), both owned here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from cairn_events import DEFAULT_STREAM, ArtifactMaterialized, Event, EventStream, encode

from .claims import Claimer
from .connection import Link
from .errors import StackUnavailableError
from .fast_ingest import BatchFailed, Outgoing
from .outage import Outage
from .outbox import ClaimRequest, Outbox
from .quarantine import Quarantine
from .sending import MAX_RUN, Sender
from .settings import redact_url
from .spool import Spool

T = TypeVar("T")

#: Set to ``0`` to make publishers publish one event at a time even where the server
#: takes fast-ingest batches (the test suite runs the publisher's tests both ways).
BATCHES_VARIABLE = "CAIRN_PUBLISH_BATCHES"


class EventPublisher:
    """Sends events to JetStream in order, without making the caller wait per event.

    Events go to ``stream`` (on ``stream.subject_of(event)``). ``fast_ingest`` False
    publishes one event at a time even where the server takes batches; None (the
    default) uses batches where the server takes them, unless ``CAIRN_PUBLISH_BATCHES``
    is ``0``.
    """

    def __init__(
        self,
        nats_url: str,
        spool_dir: Path,
        *,
        stream: EventStream = DEFAULT_STREAM,
        fast_ingest: bool | None = None,
        connect_timeout: float = 3.0,
        ack_timeout: float = 5.0,
    ) -> None:
        if fast_ingest is None:
            fast_ingest = os.environ.get(BATCHES_VARIABLE, "1").strip() != "0"
        self.nats_url = nats_url
        self.stream = stream
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self.spool = Spool(spool_dir)
        self.quarantine = Quarantine(spool_dir / "quarantine")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="cairn-publisher", daemon=True
        )
        self._link = Link(
            nats_url,
            stream,
            batches=fast_ingest,
            connect_timeout=connect_timeout,
            ack_timeout=ack_timeout,
        )
        self._outbox = outbox = Outbox(self._link, self.spool)
        self._sender = Sender(self._link, outbox, self.quarantine)
        self._claimer = Claimer(self._link, outbox, self.quarantine, ack_timeout=ack_timeout)
        self._outage = Outage(self._link, outbox, self._sender, self._claimer, self.quarantine)
        self._subject_of = stream.subject_of
        self._incoming = outbox.incoming  # the hand-over appends here from callers' threads
        self._queue = outbox.queue
        self._wake_scheduled = False
        self._holding = False  # see hold()
        self._settled = asyncio.Event()  # set whenever the send loop goes idle
        self._send_loop_task: asyncio.Task[None] | None = None

    # -- caller side (any thread) ------------------------------------------------

    def start(self) -> EventPublisher:
        """Connect; raise StackUnavailableError naming what to start if NATS is unreachable.

        A server older than NATS_SERVER_REQUIRED is refused the same way.
        """
        from .settings import reachable, unreachable_advice

        error: BaseException | None = None
        if not any(
            reachable(url.strip(), self.connect_timeout) for url in self.nats_url.split(",")
        ):
            error = ConnectionRefusedError("nothing accepts connections there")
        else:
            self._thread.start()
            connecting = asyncio.run_coroutine_threadsafe(self._connect(), self._loop)
            try:
                connecting.result(self.connect_timeout + 5)
            except BaseException as exc:
                connecting.cancel()
                self._stop_loop(self.connect_timeout)
                error = exc
        if isinstance(error, StackUnavailableError):
            raise error
        if error is not None:
            raise StackUnavailableError(
                f"Cannot reach NATS at {redact_url(self.nats_url)} ({type(error).__name__}: {error}). "
                + unreachable_advice(
                    "CAIRN_NATS_URL", "nats-server with JetStream enabled (nats-server -js)"
                )
            ) from None
        return self

    def publish(self, event: Event) -> None:
        """Queue ``event`` for sending; returns at once."""
        self._hand_over(Outgoing(self._subject_of(event), encode(event), event.event_id))

    def claim(
        self, template: ArtifactMaterialized, requested: str | None
    ) -> Future[ArtifactMaterialized]:
        """Claim the next version of ``template.name`` (or ``requested``); resolves to the stored event.

        The future fails with ArtifactVersionError if ``requested`` is taken and with
        EventRefusedError if NATS refuses the claim; it stays pending while NATS is away.
        """
        future: Future[ArtifactMaterialized] = Future()
        self._hand_over(ClaimRequest(template, requested, future), always_wake=True)
        return future

    def _hand_over(self, item: Outgoing | ClaimRequest, *, always_wake: bool = False) -> None:
        # Wake the loop once for everything handed over meanwhile: each wake-up costs the
        # caller's thread a GIL hand-off, which is most of the per-step overhead. A claim is
        # never held (its caller may wait for it): it wakes the loop even while holding.
        self._incoming.append(item)  # before reading the flag: see _take_incoming
        if not self._wake_scheduled and (always_wake or not self._holding):
            self._wake()

    def _wake(self) -> None:
        self._wake_scheduled = True
        self._loop.call_soon_threadsafe(self._take_incoming)

    def hold(self) -> None:
        """Keep what is handed over from now on until :meth:`release` (or a flush) sends it.

        For bursts of small events no one waits for (steps served from cache): one wake-up
        of the loop for all of them instead of one per step. A claim is never held: it
        sends what is held with it.
        """
        self._holding = True

    def release(self) -> None:
        """Send what :meth:`hold` kept, and everything handed over after, as it comes."""
        self._holding = False
        if self._incoming and not self._wake_scheduled:
            self._wake()

    def call(self, work: Callable[[Any], Awaitable[T]], timeout: float) -> T:
        """Run ``work(js)`` on the loop with the connection's JetStream context, now.

        For one request and its answer that must not wait behind the send queue (a cache
        lease); nothing is spooled. StackUnavailableError while NATS is away, TimeoutError
        after ``timeout``; what ``work`` raises, as it raised it.
        """
        if not self._link.connected:
            raise StackUnavailableError(f"NATS at {redact_url(self.nats_url)} is away")
        done = asyncio.run_coroutine_threadsafe(_called(work, self._link.js), self._loop)
        try:
            return done.result(timeout)
        except TimeoutError:
            done.cancel()
            raise

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued is acknowledged or quarantined; False after ``timeout``."""
        self.release()
        done = asyncio.run_coroutine_threadsafe(self._drained(), self._loop)
        try:
            done.result(timeout)
            return True
        except TimeoutError:
            done.cancel()
            return False

    @property
    def connected(self) -> bool:
        """Whether the connection to NATS is up right now."""
        return self._link.connected

    @property
    def last_seq(self) -> int:
        """Stream sequence of the newest event this process knows JetStream stored."""
        return self._outbox.last_seq

    def close(self, timeout: float = 5.0) -> None:
        """Flush (while connected), keep in the spool what is still unacknowledged, disconnect."""
        if not self._thread.is_alive():
            return
        if self._link.connected:  # while NATS is away the spool already holds what is left
            self.flush(timeout)
        self._stop_loop(timeout)
        self.spool.close()

    @property
    def refused(self) -> int:
        """How many events this process quarantined."""
        return self.quarantine.kept

    @property
    def spooled(self) -> int:
        """How many events wait in the spool for NATS."""
        return self.spool.count()

    def _stop_loop(self, timeout: float) -> None:
        """End every task on the loop (none is left pending), then stop the loop and its thread."""
        closing = asyncio.run_coroutine_threadsafe(self._close(), self._loop)
        with contextlib.suppress(Exception):
            closing.result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()

    # -- loop side -----------------------------------------------------------------

    async def _connect(self) -> None:
        await self._link.open(self._outage)
        self._send_loop_task = self._loop.create_task(self._send_loop())
        self._outage.start()
        if self.spool.adopt_orphans():
            self._outbox.request_drain()

    async def _close(self) -> None:
        self._link.closing = True
        self._outage.spool_unfinished()  # the next Cairn process sends what is still unacknowledged
        current = asyncio.current_task()
        mine = [t for t in (self._send_loop_task,) if t is not None] + self._outage.tasks()
        for task in [*mine, *self._outbox.claiming]:
            task.cancel()
        await self._link.close()
        rest = [t for t in asyncio.all_tasks() if t is not current]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def _take_incoming(self) -> None:
        self._wake_scheduled = False  # before draining, so a later hand-over schedules a new wake
        incoming, queue = self._incoming, self._queue
        while incoming:
            queue.append(incoming.popleft())
        self._outbox.ready.set()

    async def _send_loop(self) -> None:
        outbox, link, queue = self._outbox, self._link, self._queue
        while True:
            self._settled.set()
            await outbox.ready.wait()
            outbox.ready.clear()
            while queue:
                if not link.connected:  # keep order: everything after the gap goes to the spool
                    outbox.spool_items(list(queue))
                    queue.clear()
                    break
                if outbox.spool_pending:  # a drain is under way; it wakes us when done
                    break
                head = queue[0]
                if isinstance(head, ClaimRequest):
                    queue.popleft()
                    self._claimer.start(head)
                    continue
                run = outbox.in_batch = self._sender.sendable(self._take_run())
                try:
                    if run:
                        await self._sender.send(run, from_spool=False)
                except BatchFailed as exc:
                    # The connection broke. If NATS has not said so yet, put back what may
                    # not be stored: the outage spools it in order with the rest.
                    if outbox.in_batch is not None:
                        queue.extendleft(reversed(run[exc.stored :]))
                    break
                finally:
                    outbox.in_batch = None

    def _take_run(self) -> list[Outgoing]:
        """The events at the head of the queue, up to the next claim (at most MAX_RUN)."""
        run: list[Outgoing] = []
        queue = self._queue
        while queue and len(run) < MAX_RUN and isinstance(queue[0], Outgoing):
            run.append(queue.popleft())  # type: ignore[arg-type]
        return run

    async def _drained(self) -> None:
        outbox = self._outbox
        while True:
            if outbox.busy():
                self._settled.clear()  # the send loop sets it when it is idle again
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._settled.wait(), 0.05)
                continue
            pending = outbox.awaited()
            if not pending:
                return
            await asyncio.wait(pending, timeout=0.05)
            self._outage.resend_overdue()


async def _called(work: Callable[[Any], Awaitable[T]], js: Any) -> T:
    return await work(js)
