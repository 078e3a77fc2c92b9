"""Publishing events to JetStream from a background event loop.

The step's thread hands each event over and goes on; the loop sends them in
fast-ingest batches (``Nats-Msg-Id`` = event id, so a retry is dropped as a
duplicate) and claims artifact versions by compare-and-set (:mod:`.claims`).
What NATS does not acknowledge while it is away goes to the
:class:`~cairn.spool.Spool` and is sent again when it is back; what NATS
refuses for good goes to the :class:`~cairn.quarantine.Quarantine` with the
reason, and everything after it goes on (:mod:`.refusals` tells the two apart).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import msgspec
import structlog
from cairn_events import (
    DUPLICATE_WINDOW_S,
    FAST_INGEST_SINCE,
    NATS_SERVER_REQUIRED,
    STREAM,
    STREAM_SUBJECTS,
    ArtifactMaterialized,
    Event,
    Header,
    JetStreamError,
    artifact_version_subject,
    decode,
    encode,
    subject_of,
)

from .claims import VersionClaims
from .errors import ArtifactVersionError, EventRefusedError, StackUnavailableError
from .fast_ingest import BatchFailed, FastIngest, Outgoing
from .quarantine import Quarantine
from .refusals import Refused, refusal_before_sending, refusal_of
from .settings import redact_url
from .spool import Spool, SpoolEntry, Unreadable, claim_entry, sendable_units

log = structlog.get_logger(__name__)

#: The most events sent as one fast-ingest batch.
_MAX_BATCH = 5000
#: nats-server's default max_payload, until the server says its own.
_DEFAULT_MAX_PAYLOAD = 1024 * 1024
_RETRY_FIRST_S, _RETRY_MAX_S = 0.2, 2.0


class _Claim(msgspec.Struct):
    template: ArtifactMaterialized
    requested: str | None
    future: Future[ArtifactMaterialized]


class _Inflight(msgspec.Struct):
    item: Outgoing
    ack: asyncio.Future[Any]
    sent_at: float


class EventPublisher:
    """Sends events to JetStream in order, without making the caller wait per event."""

    def __init__(
        self,
        nats_url: str,
        spool_dir: Path,
        *,
        connect_timeout: float = 3.0,
        ack_timeout: float = 5.0,
    ) -> None:
        self.nats_url = nats_url
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self.spool = Spool(spool_dir)
        self.quarantine = Quarantine(spool_dir / "quarantine")
        #: Stream sequence of the newest event this process knows JetStream stored.
        self.last_seq = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="cairn-publisher", daemon=True
        )
        self._queue: collections.deque[Outgoing | _Claim] = collections.deque()
        self._incoming: collections.deque[Outgoing | _Claim] = collections.deque()
        self._wake_scheduled = False
        self._inflight: collections.deque[_Inflight] = collections.deque()
        self._claiming: dict[asyncio.Task[None], _Claim] = {}
        self._spooled_claims: dict[str, Future[ArtifactMaterialized]] = {}
        self._spool_pending = False
        self._drain_offset = 0  # how far into the spool the drain has sent
        self._spooling = False  # spooled since the last drain: logged once per outage
        self._connected = False
        self._claims = VersionClaims(ack_timeout)
        self._max_payload = _DEFAULT_MAX_PAYLOAD
        self._wakeup: asyncio.Event | None = None
        self._settled: asyncio.Event | None = None  # set whenever the send loop goes idle
        self._nc: Any = None
        self._js: Any = None
        self._closing = False
        self._sender: asyncio.Task[None] | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._reopener: asyncio.Task[None] | None = None
        self._fast: FastIngest | None = None  # None: the server takes one publish at a time
        self._in_batch: list[Outgoing] | None = None  # taken from the queue, batch not settled

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
        self._hand_over(Outgoing(subject_of(event), encode(event), event.event_id))

    def claim(
        self, template: ArtifactMaterialized, requested: str | None
    ) -> Future[ArtifactMaterialized]:
        """Claim the next version of ``template.name`` (or ``requested``); resolves to the stored event.

        The future fails with ArtifactVersionError if ``requested`` is taken and with
        EventRefusedError if NATS refuses the claim; it stays pending while NATS is away.
        """
        future: Future[ArtifactMaterialized] = Future()
        self._hand_over(_Claim(template, requested, future))
        return future

    def _hand_over(self, item: Outgoing | _Claim) -> None:
        # Wake the loop once for everything handed over meanwhile: each wake-up costs the
        # caller's thread a GIL hand-off, which is most of the per-step overhead.
        self._incoming.append(item)  # before reading the flag: see _take_incoming
        if not self._wake_scheduled:
            self._wake_scheduled = True
            self._loop.call_soon_threadsafe(self._take_incoming)

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued is acknowledged or quarantined; False after ``timeout``."""
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
        return self._connected

    def close(self, timeout: float = 5.0) -> None:
        """Flush (while connected), keep in the spool what is still unacknowledged, disconnect."""
        if not self._thread.is_alive():
            return
        if self._connected:  # while NATS is away the spool already holds what is left
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

    # -- loop side: connection -----------------------------------------------------

    async def _connect(self) -> None:
        self._wakeup = asyncio.Event()
        self._settled = asyncio.Event()
        await self._open_connection()
        self._sender = self._loop.create_task(self._send_loop())
        if self.spool.adopt_orphans():
            self._start_drain()

    async def _open_connection(self) -> None:
        """Connect, check the server, make sure the stream exists; fail fast on the first try."""
        import nats

        nc = await nats.connect(
            self.nats_url,
            connect_timeout=self.connect_timeout,
            allow_reconnect=False,  # fail fast on the first connect (bad credentials, wrong port)
            reconnect_time_wait=0.2,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            closed_cb=self._on_closed,
            error_cb=self._on_error,
        )
        server = nc.connected_server_version
        if (server.major, server.minor) < NATS_SERVER_REQUIRED:
            self._closing = True  # this close is ours, not an outage
            await nc.close()
            required = ".".join(map(str, NATS_SERVER_REQUIRED))
            raise StackUnavailableError(
                f"NATS at {redact_url(self.nats_url)} runs nats-server "
                f"{server.major}.{server.minor}.{server.patch}; Cairn needs "
                f"{required} or newer (artifact versions are claimed with "
                f"Nats-Expected-Last-Subject-Sequence-Subject). Upgrade that server to "
                f"nats-server {required} or newer."
            )
        # once connected, ride out any outage: the spool keeps what NATS cannot take meanwhile
        nc.options.update(allow_reconnect=True, max_reconnect_attempts=-1)
        self._nc, self._js = nc, nc.jetstream(publish_async_max_pending=10_000)
        self._max_payload = int(nc.max_payload or _DEFAULT_MAX_PAYLOAD)
        batched = await self._ensure_stream((server.major, server.minor) >= FAST_INGEST_SINCE)
        self._fast = await FastIngest(nc, ack_timeout=self.ack_timeout).open() if batched else None
        self._connected = True

    async def _ensure_stream(self, batched: bool) -> bool:
        """Create the stream if it is missing; whether it takes fast-ingest batches."""
        from nats.js.errors import NotFoundError

        try:
            info = await self._js.stream_info(STREAM)
        except NotFoundError:
            await self._js.add_stream(
                name=STREAM,
                subjects=STREAM_SUBJECTS,
                duplicate_window=DUPLICATE_WINDOW_S,
                allow_batched=batched or None,  # None: not sent, for servers that predate it
            )
            return batched
        if batched and not info.config.allow_batched:
            return await self._allow_batches(info.config)
        return batched

    async def _allow_batches(self, config: Any) -> bool:
        """Turn on fast-ingest batches for a stream made without them; False if refused."""
        try:
            await self._js.update_stream(config, allow_batched=True)
        except Exception as exc:  # e.g. credentials without stream-update rights
            log.info("publisher.batches_unavailable", stream=STREAM, error=str(exc))
            return False
        return True

    async def _on_disconnected(self) -> None:
        was_connected, self._connected = self._connected, False
        if self._closing:
            return
        if was_connected:
            log.warning("publisher.nats_away", nats=redact_url(self.nats_url))
        self._spool_unfinished()

    async def _on_reconnected(self) -> None:
        self._connected = True
        log.info("publisher.nats_back", nats=redact_url(self.nats_url))
        self._start_drain()

    async def _on_closed(self) -> None:
        """The connection ended for good (a protocol error from the server): open a new one."""
        if self._closing:
            return
        await self._on_disconnected()
        if self._reopener is None or self._reopener.done():
            self._reopener = self._loop.create_task(self._reopen())

    async def _reopen(self) -> None:
        started, attempts, wait, error = time.monotonic(), 0, _RETRY_FIRST_S, ""
        log.warning("publisher.reconnecting", nats=redact_url(self.nats_url))
        while not self._closing:
            attempts += 1
            try:
                await self._open_connection()
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
            self._claims.forget()
            self._start_drain()
            return
        log.info("publisher.reconnect_abandoned", attempts=attempts, error=error)

    async def _on_error(self, exc: Exception) -> None:
        pass  # connection errors are handled by reconnecting and spooling

    async def _close(self) -> None:
        self._closing = True
        self._spool_unfinished()  # the next Cairn process sends what is still unacknowledged
        current = asyncio.current_task()
        mine = [t for t in (self._sender, self._drainer, self._reopener) if t is not None]
        for task in [*mine, *self._claiming]:
            task.cancel()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), self.ack_timeout)
        rest = [t for t in asyncio.all_tasks() if t is not current]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    # -- loop side: sending ------------------------------------------------------

    def _take_incoming(self) -> None:
        self._wake_scheduled = False  # before draining, so a later hand-over schedules a new wake
        while self._incoming:
            self._queue.append(self._incoming.popleft())
        assert self._wakeup is not None
        self._wakeup.set()

    async def _send_loop(self) -> None:
        assert self._wakeup is not None and self._settled is not None
        while True:
            self._settled.set()
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                if not self._connected:  # keep order: everything after the gap goes to the spool
                    self._spool_items(list(self._queue))
                    self._queue.clear()
                    break
                if self._spool_pending:  # a drain is under way; it wakes us when done
                    break
                if isinstance(self._queue[0], _Claim):
                    claim = self._queue.popleft()
                    assert isinstance(claim, _Claim)
                    task = self._loop.create_task(self._run_claim(claim))
                    self._claiming[task] = claim
                    task.add_done_callback(self._claiming.pop)
                    continue
                run = self._in_batch = self._sendable(self._take_run())
                try:
                    if run:
                        await self._send_events(run, from_spool=False)
                except BatchFailed as exc:
                    # The connection broke. If NATS has not said so yet, put back what may
                    # not be stored: _on_disconnected spools it in order with the rest.
                    if self._in_batch is not None:
                        self._queue.extendleft(reversed(run[exc.stored :]))
                    break
                finally:
                    self._in_batch = None

    def _take_run(self) -> list[Outgoing]:
        """The events at the head of the queue, up to the next claim (at most _MAX_BATCH)."""
        run: list[Outgoing] = []
        queue = self._queue
        while queue and len(run) < _MAX_BATCH and isinstance(queue[0], Outgoing):
            run.append(queue.popleft())  # type: ignore[arg-type]
        return run

    def _sendable(self, items: list[Outgoing]) -> list[Outgoing]:
        """``items`` less those NATS would refuse, which are quarantined with the reason."""
        kept = []
        for item in items:
            reason = refusal_before_sending(item.subject, len(item.data), self._max_payload)
            if reason is None:
                kept.append(item)
            else:
                self._quarantine(_entry_of(item), reason)
        return kept

    async def _send_events(self, run: list[Outgoing], *, from_spool: bool) -> None:
        """Send ``run`` in one fast-ingest batch, or one by one on a server without batches.

        From the send loop, single events are not awaited (``publish_async``); from
        the spool each is, so a refusal is known at once. Raises BatchFailed if the
        connection broke: what was not stored then belongs in the spool, not in a retry.
        """
        one_by_one = self._publish_and_wait if from_spool else self._publish_one
        if self._fast is None:
            for item in run:
                await one_by_one(item)
            return
        try:
            seq = await self._fast.send(run)
        except BatchFailed as exc:
            if not (self._connected and self._nc.is_connected):
                raise
            rest = run[exc.stored :]
            log.warning(
                "publisher.batch_failed", reason=exc.reason, stored=exc.stored, resending=len(rest)
            )
            if exc.err_code == JetStreamError.BATCH_NOT_ENABLED:  # the stream changed under us
                self._fast = None
            if exc.stored:
                await self._learn_seq(run[exc.stored - 1].subject)
            if not from_spool:
                # From the send loop: let the drain send the rest, waiting for each answer
                # (nats-py's publish_async never resolves a refusal: it raises in its callback).
                self._resend_later(rest)
                return
            for item in rest:  # one by one: a refused message is quarantined, the rest go on
                await one_by_one(item)
        else:
            self._saw(seq)

    async def _publish_one(self, item: Outgoing) -> None:
        """Publish without waiting; the acknowledgement is handled by _on_ack."""
        try:
            ack = await self._js.publish_async(
                item.subject, item.data, headers={Header.MSG_ID: item.msg_id}
            )
        except Exception as exc:
            reason = refusal_of(exc)
            if reason is not None and self._nc.is_connected:
                self._quarantine(_entry_of(item), reason)
            elif self._connected:  # NATS is away and has not said so yet, or is stalled
                self._inflight.append(_Inflight(item, self._loop.create_future(), time.monotonic()))
            else:
                self._spool_items([item])
            return
        ack.add_done_callback(functools.partial(self._on_ack, item))
        self._inflight.append(_Inflight(item, ack, time.monotonic()))

    def _on_ack(self, item: Outgoing, ack: asyncio.Future[Any]) -> None:
        if not ack.cancelled():  # cancelled: _on_disconnected spooled it
            error = ack.exception()
            if error is None:
                self._saw(ack.result().seq)
            elif (reason := refusal_of(error)) is not None:
                self._quarantine(_entry_of(item), reason)
            else:
                self._resend_later([item])
        while self._inflight and self._inflight[0].ack.done():
            self._inflight.popleft()

    async def _publish_and_wait(self, item: Outgoing) -> None:
        """Publish and wait for the acknowledgement; a refused event is quarantined."""
        try:
            ack = await self._js.publish(
                item.subject,
                item.data,
                headers={Header.MSG_ID: item.msg_id},
                timeout=self.ack_timeout,
            )
        except Exception as exc:
            reason = refusal_of(exc)
            if reason is None:
                raise
            self._quarantine(_entry_of(item), reason)
            return
        self._saw(ack.seq)

    async def _learn_seq(self, subject: str) -> None:
        """Raise last_seq to the newest message on ``subject`` (a batch stored part of itself)."""
        with contextlib.suppress(Exception):  # only read-your-writes precision is at stake
            self._saw((await self._js.get_last_msg(STREAM, subject)).seq)

    def _saw(self, seq: int) -> None:
        """JetStream stored something at ``seq``: read-your-writes waits for at least this."""
        if seq > self.last_seq:
            self.last_seq = seq

    # -- loop side: claims ---------------------------------------------------------

    async def _run_claim(self, claim: _Claim) -> None:
        try:
            await self._claim(claim.template, claim.requested, claim.future)
        except ArtifactVersionError as exc:
            _settle(claim.future, exc)
        except Refused as refused:
            self._quarantine(claim_entry(claim.template, claim.requested), refused.reason)
            _settle(claim.future, self._refused_error(claim.template, refused.reason))
        except Exception as exc:  # NATS went away mid-claim: redo it from the spool
            log.info("publisher.claim_deferred", name=claim.template.name, error=str(exc))
            self._spool_items([claim])

    async def _claim(
        self,
        template: ArtifactMaterialized,
        requested: str | None,
        future: Future[ArtifactMaterialized] | None,
    ) -> None:
        """Claim a version; raises Refused when NATS refuses it, anything else when it is away."""
        # The size is left to nats-py (MaxPayloadError) and JetStream: a claim waits for its answer.
        subject = artifact_version_subject(template.name, requested or "0")
        reason = refusal_before_sending(subject, 0, self._max_payload)
        if reason is not None:
            raise Refused(reason)
        try:
            claimed = await self._claims.claim(self._js, template, requested)
        except ArtifactVersionError:
            raise
        except Exception as exc:
            if (reason := refusal_of(exc)) is not None:
                raise Refused(reason) from exc
            raise
        self._saw(claimed.seq)
        if future is not None:
            _settle(future, claimed.event)

    def _refused_error(self, template: ArtifactMaterialized, reason: str) -> EventRefusedError:
        return EventRefusedError(
            f"NATS refused the version claim of artifact '{template.name}': {reason}. "
            f"It is kept in {self.quarantine.directory}; see `cairn spool status`."
        )

    # -- loop side: spool and quarantine -------------------------------------------

    def _spool_items(self, items: list[Outgoing | _Claim]) -> None:
        entries = []
        for item in items:
            if isinstance(item, _Claim):
                self._spooled_claims[item.template.event_id] = item.future
                entries.append(claim_entry(item.template, item.requested))
            else:
                entries.append(_entry_of(item))
        if not entries:
            return
        self.spool.append(entries)
        self._spool_pending = True
        if not self._spooling:
            self._spooling = True
            log.warning("publisher.spooling", spool=str(self.spool.path))

    def _spool_unfinished(self) -> None:
        """Spool, in order, everything handed over and not yet acknowledged."""
        unacked: list[Outgoing | _Claim] = [f.item for f in self._inflight if not f.ack.done()]
        for flight in self._inflight:
            flight.ack.cancel()
        self._inflight.clear()
        if self._fast is not None and self._in_batch is not None:
            unacked += self._fast.abandon()
            self._in_batch = None
        if self._closing:
            unacked += [c for task, c in self._claiming.items() if not task.done()]
            self._queue.extend(self._incoming)
            self._incoming.clear()
        self._spool_items(unacked + list(self._queue))
        self._queue.clear()

    def _resend_later(self, items: list[Outgoing]) -> None:
        """Not acknowledged in time while connected: send again from the spool."""
        self._spool_items(list(items))
        if self._connected:
            self._start_drain()

    def _quarantine(self, entry: SpoolEntry, reason: str) -> None:
        """Keep a refused event with its reason (reported once) and go on."""
        self.quarantine.keep(entry, reason)

    def _start_drain(self) -> None:
        if self.spool.count():
            self._spool_pending = True
        if self._spool_pending and (self._drainer is None or self._drainer.done()):
            self._drainer = self._loop.create_task(self._drain_spool())

    async def _drain_spool(self) -> None:
        """Send everything spooled, in order; wait out outages, quarantine refusals.

        Logs when it starts waiting for NATS and when it ends, with counts, not per attempt.
        """
        started, retries, sent, wait = time.monotonic(), 0, 0, _RETRY_FIRST_S
        refused_before = self.refused
        while self._spool_pending and self._connected and not self._closing:
            entries, end = self.spool.read(self._drain_offset)
            if not entries:
                self.spool.discard_through(end)
                self._drain_offset = 0
                if self.spool.count():  # spooled while we drained: go round again
                    continue
                self._spool_pending = self._spooling = False
                assert self._wakeup is not None
                self._wakeup.set()
                log.info(
                    "publisher.spool_drained",
                    sent=sent,
                    quarantined=self.refused - refused_before,
                    retries=retries,
                    seconds=round(time.monotonic() - started, 3),
                )
                return
            try:
                for unit, unit_end in sendable_units(entries, _MAX_BATCH):
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
                        await self._ensure_stream(self._fast is not None)
        if self._spool_pending and not self._closing:
            log.info("publisher.spool_drain_paused", sent=sent, retries=retries)

    async def _send_unit(self, unit: SpoolEntry | Unreadable | list[SpoolEntry]) -> int:
        """Send one claim or one run of events from the spool; how many were sent.

        Raises when NATS is away (the drain waits and sends the unit again).
        """
        if isinstance(unit, Unreadable):
            raw = msgspec.json.encode(unit.line.decode(errors="replace"))
            entry = SpoolEntry(subject="?", event=msgspec.Raw(raw))
            self._quarantine(entry, f"the spool line cannot be read: {unit.error}")
            return 0
        if isinstance(unit, SpoolEntry):
            return await self._redo_claim(unit)
        run = self._sendable([_outgoing(entry) for entry in unit])
        if run:
            await self._send_events(run, from_spool=True)
        return len(run)

    async def _redo_claim(self, entry: SpoolEntry) -> int:
        try:
            template: ArtifactMaterialized = decode(bytes(entry.event))
        except Exception as exc:
            self._quarantine(entry, f"the spooled claim cannot be read: {exc}")
            return 0
        future = self._spooled_claims.get(template.event_id)
        try:
            await self._claim(template, entry.requested_version, future)
        except ArtifactVersionError as exc:
            self._quarantine(entry, str(exc))
            reason: BaseException = exc
        except Refused as refused:
            self._quarantine(entry, refused.reason)
            reason = self._refused_error(template, refused.reason)
        else:
            self._spooled_claims.pop(template.event_id, None)
            return 1
        self._spooled_claims.pop(template.event_id, None)
        if future is not None:
            _settle(future, reason)
        return 0

    async def _drained(self) -> None:
        assert self._settled is not None
        while True:
            if self._incoming or self._queue or self._spool_pending or self._in_batch is not None:
                self._settled.clear()  # the send loop sets it when it is idle again
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._settled.wait(), 0.05)
                continue
            pending: list[Any] = [f.ack for f in self._inflight if not f.ack.done()]
            pending += [task for task in self._claiming if not task.done()]
            if not pending:
                return
            await asyncio.wait(pending, timeout=0.05)
            self._resend_overdue()

    def _resend_overdue(self) -> None:
        """Acknowledgements overdue while connected (a message dropped on the way): resend."""
        overdue_before = time.monotonic() - self.ack_timeout
        overdue = [f for f in self._inflight if not f.ack.done() and f.sent_at < overdue_before]
        if overdue and self._connected:
            for flight in overdue:
                flight.ack.cancel()
            log.info("publisher.acks_overdue", n=len(overdue))
            self._resend_later([f.item for f in overdue])


class _EventId(msgspec.Struct):
    event_id: str


_event_id = msgspec.json.Decoder(_EventId).decode


def _outgoing(entry: SpoolEntry) -> Outgoing:
    data = bytes(entry.event)
    try:
        msg_id = _event_id(data).event_id
    except (msgspec.DecodeError, msgspec.ValidationError):
        msg_id = ""  # refused before sending: it is not an event
    return Outgoing(entry.subject, data, msg_id)


def _entry_of(item: Outgoing) -> SpoolEntry:
    return SpoolEntry(subject=item.subject, event=msgspec.Raw(item.data))


def _settle(
    future: Future[ArtifactMaterialized], outcome: ArtifactMaterialized | BaseException
) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
