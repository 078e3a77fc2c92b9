"""Publishing events to JetStream from a background event loop.

The step's thread hands each event over and goes on; the loop pipelines
publishes (``Nats-Msg-Id`` = event id, so a retry is dropped as a duplicate)
and claims artifact versions by compare-and-set on the name's subjects.
Events NATS does not acknowledge while it is unreachable go to the
:class:`~cairn.spool.Spool` and are sent again when it is back.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import threading
from collections.abc import Awaitable, Callable
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
    artifact_version_subject,
    artifact_versions_filter,
    decode,
    encode,
    subject_of,
)

from .errors import ArtifactVersionError, StackUnavailableError
from .fast_ingest import NOT_ENABLED, BatchFailed, FastIngest, Outgoing
from .settings import redact_url
from .spool import Spool, SpoolEntry

log = structlog.get_logger(__name__)

_WRONG_LAST_SEQUENCE = 10071  # JetStream: the compare-and-set expectation was stale
#: The most events sent as one fast-ingest batch.
_MAX_BATCH = 5000


class _Claim(msgspec.Struct):
    template: ArtifactMaterialized
    requested: str | None
    future: Future[ArtifactMaterialized]


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
        self.last_seq = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="cairn-publisher", daemon=True
        )
        self._queue: collections.deque[Outgoing | _Claim] = collections.deque()
        self._incoming: collections.deque[Outgoing | _Claim] = collections.deque()
        self._wake_scheduled = False
        self._inflight: collections.deque[tuple[Outgoing, asyncio.Future[Any]]] = (
            collections.deque()
        )
        self._claims: set[asyncio.Task[None]] = set()
        self._spooled_claims: dict[str, Future[ArtifactMaterialized]] = {}
        self._spool_pending = False
        self._connected = False
        self._name_locks: dict[str, asyncio.Lock] = {}
        self._last_claim: dict[str, tuple[int, int]] = {}  # name -> (stream seq, numeric count)
        self._wakeup: asyncio.Event | None = None
        self._nc: Any = None
        self._js: Any = None
        self._closing = False
        self._sender: asyncio.Task[None] | None = None
        self._fast: FastIngest | None = None  # None: the server takes one publish at a time
        self._in_batch: list[Outgoing] | None = None  # taken from the queue, batch not settled

    # -- caller side (any thread) ------------------------------------------------

    def start(self) -> EventPublisher:
        """Connect; raise StackUnavailableError naming what to start if NATS is unreachable.

        A server older than NATS_SERVER_REQUIRED is refused the same way.
        """
        from .settings import reachable

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
                self._loop.call_soon_threadsafe(self._loop.stop)
                error = exc
        if isinstance(error, StackUnavailableError):
            raise error
        if error is not None:
            raise StackUnavailableError(
                f"Cannot reach NATS at {redact_url(self.nats_url)} ({type(error).__name__}: {error}). "
                "Start the local stack with `cairn up`, or point CAIRN_NATS_URL at a running "
                "nats-server with JetStream enabled (nats-server -js)."
            ) from None
        return self

    def publish(self, event: Event) -> None:
        """Queue ``event`` for sending; returns at once."""
        self._hand_over(Outgoing(subject_of(event), encode(event), event.event_id))

    def claim(
        self, template: ArtifactMaterialized, requested: str | None
    ) -> Future[ArtifactMaterialized]:
        """Claim the next version of ``template.name`` (or ``requested``); resolves to the stored event."""
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
        """Wait until everything queued is acknowledged; False if NATS stayed away too long."""
        done = asyncio.run_coroutine_threadsafe(self._drained(), self._loop)
        try:
            done.result(timeout)
            return True
        except TimeoutError:
            done.cancel()
            return False

    def close(self, timeout: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        if self._connected:  # while NATS is away the spool already holds what is left
            self.flush(timeout)
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self.spool.close()

    @property
    def spooled(self) -> int:
        """How many events wait in the spool for NATS."""
        return len(self.spool.read()[0])

    # -- loop side ---------------------------------------------------------------

    async def _connect(self) -> None:
        import nats
        from nats.js.errors import NotFoundError

        self._wakeup = asyncio.Event()
        self._nc = await nats.connect(
            self.nats_url,
            connect_timeout=self.connect_timeout,
            allow_reconnect=False,  # fail fast on the first connect (bad credentials, wrong port)
            reconnect_time_wait=0.2,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            error_cb=self._on_error,
        )
        # once connected, ride out any outage: the spool keeps what NATS cannot take meanwhile
        self._nc.options.update(allow_reconnect=True, max_reconnect_attempts=-1)
        self._js = self._nc.jetstream(publish_async_max_pending=10_000)
        server = self._nc.connected_server_version
        if (server.major, server.minor) < NATS_SERVER_REQUIRED:
            await self._nc.close()
            required = ".".join(map(str, NATS_SERVER_REQUIRED))
            raise StackUnavailableError(
                f"NATS at {redact_url(self.nats_url)} runs nats-server "
                f"{server.major}.{server.minor}.{server.patch}; Cairn needs "
                f"{required} or newer (artifact versions are claimed with "
                "Nats-Expected-Last-Subject-Sequence-Subject). Upgrade that server, or unset "
                "CAIRN_NATS_URL and use the local stack (`cairn up`), which ships a recent one."
            )
        batched = (server.major, server.minor) >= FAST_INGEST_SINCE
        try:
            info = await self._js.stream_info(STREAM)
        except NotFoundError:
            await self._js.add_stream(
                name=STREAM,
                subjects=STREAM_SUBJECTS,
                duplicate_window=DUPLICATE_WINDOW_S,
                allow_batched=batched or None,  # None: not sent, for servers that predate it
            )
        else:
            if batched and not info.config.allow_batched:
                batched = await self._allow_batches(info.config)
        if batched:
            self._fast = await FastIngest(self._nc, ack_timeout=self.ack_timeout).open()
        self._connected = True
        self._sender = self._loop.create_task(self._send_loop())
        if self.spool.adopt_orphans():
            self._spool_pending = True
            self._loop.create_task(self._drain_spool())

    async def _allow_batches(self, config: Any) -> bool:
        """Turn on fast-ingest batches for a stream made without them; False if refused."""
        try:
            await self._js.update_stream(config, allow_batched=True)
        except Exception as exc:  # e.g. credentials without stream-update rights
            log.info("publisher.batches_unavailable", stream=STREAM, error=str(exc))
            return False
        return True

    async def _close(self) -> None:
        self._closing = True
        if self._sender is not None:
            self._sender.cancel()
        if self._nc is not None:
            await self._nc.close()

    def _take_incoming(self) -> None:
        self._wake_scheduled = False  # before draining, so a later hand-over schedules a new wake
        while self._incoming:
            self._queue.append(self._incoming.popleft())
        assert self._wakeup is not None
        self._wakeup.set()

    async def _send_loop(self) -> None:
        assert self._wakeup is not None
        while True:
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
                    self._claims.add(task)
                    task.add_done_callback(self._claims.discard)
                elif self._fast is None:
                    item = self._queue.popleft()
                    assert isinstance(item, Outgoing)
                    await self._publish_one(item)
                else:
                    run = self._in_batch = self._take_run()
                    try:
                        await self._send_batch(run, self._publish_one)
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

    async def _send_batch(
        self, run: list[Outgoing], one_by_one: Callable[[Outgoing], Awaitable[None]]
    ) -> None:
        """Send ``run`` as one fast-ingest batch; what it did not store goes through ``one_by_one``.

        Raises BatchFailed if the connection broke: what was not stored then
        belongs in the spool, not in a retry.
        """
        assert self._fast is not None
        try:
            self.last_seq = max(self.last_seq, await self._fast.send(run))
        except BatchFailed as exc:
            if not (self._connected and self._nc.is_connected):
                raise
            rest = run[exc.stored :]
            log.warning(
                "publisher.batch_failed", reason=exc.reason, stored=exc.stored, resending=len(rest)
            )
            if exc.err_code == NOT_ENABLED:  # the stream was changed under us
                self._fast = None
            for item in rest:
                await one_by_one(item)

    async def _publish_one(self, item: Outgoing) -> None:
        try:
            ack = await self._js.publish_async(
                item.subject, item.data, headers={Header.MSG_ID: item.msg_id}
            )
        except Exception as exc:
            if self._nc.is_connected:  # refused by the client itself (e.g. over max_payload)
                log.error(
                    "publisher.publish_refused",
                    subject=item.subject,
                    event_id=item.msg_id,
                    error=str(exc),
                )
            elif self._connected:  # down, and _on_disconnected is still to come: it spools this
                self._inflight.append((item, self._loop.create_future()))
            else:
                self._spool_items([item])
            return
        ack.add_done_callback(self._on_ack)
        self._inflight.append((item, ack))

    def _on_ack(self, ack: asyncio.Future[Any]) -> None:
        if not ack.cancelled() and ack.exception() is None:
            self.last_seq = max(self.last_seq, ack.result().seq)
        elif not ack.cancelled():
            log.warning("publisher.publish_refused", error=str(ack.exception()))
        while self._inflight and self._inflight[0][1].done():
            self._inflight.popleft()

    async def _run_claim(self, claim: _Claim) -> None:
        try:
            event = await self._claim_version(claim.template, claim.requested)
        except ArtifactVersionError as exc:
            claim.future.set_exception(exc)
        except Exception as exc:  # NATS went away mid-claim: redo it from the spool
            log.warning("publisher.claim_deferred", name=claim.template.name, error=str(exc))
            self._spooled_claims[claim.template.event_id] = claim.future
            self._spool_items([claim])
        else:
            claim.future.set_result(event)

    async def _claim_version(
        self, template: ArtifactMaterialized, requested: str | None
    ) -> ArtifactMaterialized:
        from nats.js.errors import APIError, NotFoundError

        name = template.name
        lock = self._name_locks.setdefault(name, asyncio.Lock())
        async with lock:
            while True:
                last = self._last_claim.get(name)
                if last is None:
                    last, mine = await self._read_last_claim(template)
                    if mine is not None:
                        return mine
                last_seq, count = last
                if requested is not None:
                    try:
                        await self._js.get_last_msg(
                            STREAM, artifact_version_subject(name, requested)
                        )
                    except NotFoundError:
                        pass
                    else:
                        raise ArtifactVersionError(
                            f"Artifact '{name}' already has version '{requested}'; an explicit "
                            "version can be used once per name. Choose another version, or leave "
                            f"it out to get the next number ({count + 1})."
                        )
                event = msgspec.structs.replace(
                    template,
                    version=requested or str(count + 1),
                    numeric_count=count if requested else count + 1,
                )
                headers = {
                    Header.MSG_ID: event.event_id,
                    Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(last_seq),
                    Header.EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT: artifact_versions_filter(name),
                }
                try:
                    ack = await self._js.publish(
                        artifact_version_subject(name, event.version),
                        encode(event),
                        headers=headers,
                        timeout=self.ack_timeout,
                    )
                except APIError as exc:
                    if exc.err_code != _WRONG_LAST_SEQUENCE:
                        raise
                    self._last_claim.pop(name, None)  # another writer got there: re-read
                    continue
                if ack.duplicate:  # an earlier attempt of ours was stored: take its version
                    event = decode((await self._js.get_msg(STREAM, seq=ack.seq)).data)
                self._last_claim[name] = (ack.seq, event.numeric_count)
                self.last_seq = max(self.last_seq, ack.seq)
                return event

    async def _read_last_claim(
        self, template: ArtifactMaterialized
    ) -> tuple[tuple[int, int], ArtifactMaterialized | None]:
        """The newest version of the name (seq, count), and it if it is ours already."""
        from nats.js.errors import NotFoundError

        try:
            msg = await self._js.get_last_msg(STREAM, artifact_versions_filter(template.name))
        except NotFoundError:
            return (0, 0), None
        latest: ArtifactMaterialized = decode(msg.data)
        mine = latest if latest.event_id == template.event_id else None
        return (msg.seq, latest.numeric_count), mine

    def _spool_items(self, items: list[Outgoing | _Claim]) -> None:
        entries = []
        for item in items:
            if isinstance(item, _Claim):
                self._spooled_claims[item.template.event_id] = item.future
                entries.append(
                    SpoolEntry(
                        subject=artifact_versions_filter(item.template.name),
                        event=msgspec.Raw(encode(item.template)),
                        claim=True,
                        requested_version=item.requested,
                    )
                )
            else:
                entries.append(SpoolEntry(subject=item.subject, event=msgspec.Raw(item.data)))
        if not entries:
            return
        self.spool.append(entries)
        self._spool_pending = True
        log.warning("publisher.spooled", n=len(entries), spool=str(self.spool.path))

    async def _on_disconnected(self) -> None:
        self._connected = False
        if self._closing:
            return
        unacked: list[Outgoing | _Claim] = [item for item, ack in self._inflight if not ack.done()]
        for _, ack in self._inflight:
            ack.cancel()
        self._inflight.clear()
        if self._fast is not None and self._in_batch is not None:
            unacked += self._fast.abandon()
            self._in_batch = None
        self._spool_items(unacked + list(self._queue))
        self._queue.clear()

    async def _on_reconnected(self) -> None:
        self._connected = True
        self._loop.create_task(self._drain_spool())

    async def _on_error(self, exc: Exception) -> None:
        pass  # connection errors are handled by reconnecting and spooling

    async def _drain_spool(self) -> None:
        """Send everything spooled, in order; retry until it is all acknowledged."""
        while self._spool_pending and self._connected:
            entries, end = self.spool.read()
            try:
                await self._send_spooled(entries)
            except Exception as exc:  # still not accepting (JetStream may lag the reconnect)
                log.info("publisher.spool_drain_retry", error=str(exc))
                await asyncio.sleep(0.5)
                continue
            self.spool.discard_through(end)
            if self.spool.read()[0]:  # spooled while we drained: go round again
                continue
            self._spool_pending = False
            assert self._wakeup is not None
            self._wakeup.set()
            log.info("publisher.spool_drained")

    async def _send_spooled(self, entries: list[SpoolEntry]) -> None:
        """Redo the claims one at a time, and send the events between them in batches.

        Raises if anything is not acknowledged; the caller sends it all again
        (``Nats-Msg-Id`` drops what JetStream already has).
        """
        for is_claim, group in itertools.groupby(entries, key=lambda entry: entry.claim):
            if is_claim:
                for entry in group:
                    await self._redo_claim(entry)
                continue
            events = [_outgoing(entry) for entry in group]
            for start in range(0, len(events), _MAX_BATCH):
                run = events[start : start + _MAX_BATCH]
                if self._fast is not None:
                    await self._send_batch(run, self._publish_and_wait)
                else:
                    for item in run:
                        await self._publish_and_wait(item)

    async def _redo_claim(self, entry: SpoolEntry) -> None:
        template: ArtifactMaterialized = decode(bytes(entry.event))
        future = self._spooled_claims.pop(template.event_id, None)
        try:
            event = await self._claim_version(template, entry.requested_version)
        except ArtifactVersionError as exc:
            log.error("publisher.spooled_claim_refused", name=template.name, error=str(exc))
            if future is not None and not future.done():
                future.set_exception(exc)
            return
        if future is not None and not future.done():
            future.set_result(event)

    async def _publish_and_wait(self, item: Outgoing) -> None:
        ack = await self._js.publish(
            item.subject, item.data, headers={Header.MSG_ID: item.msg_id}, timeout=self.ack_timeout
        )
        self.last_seq = max(self.last_seq, ack.seq)

    async def _drained(self) -> None:
        while True:
            if self._incoming or self._queue or self._spool_pending or self._in_batch is not None:
                await asyncio.sleep(0.005)
                continue
            pending: list[Any] = [ack for _, ack in self._inflight if not ack.done()]
            pending += [task for task in self._claims if not task.done()]
            if not pending:
                return
            await asyncio.wait(pending, timeout=0.05)


class _EventId(msgspec.Struct):
    event_id: str


_event_id = msgspec.json.Decoder(_EventId).decode


def _outgoing(entry: SpoolEntry) -> Outgoing:
    data = bytes(entry.event)
    return Outgoing(entry.subject, data, _event_id(data).event_id)
