"""The projector: JetStream events in, Postgres read models out, exactly once in effect.

Each cycle takes what the consumer has delivered (up to ``batch_size``),
folds it, commits rows + dead letters + checkpoint in one Postgres
transaction, and only then acks the last message. The Postgres checkpoint is
the truth about progress: on (re)start the consumer is recreated to deliver
from checkpoint + 1, and anything at or below the checkpoint is skipped, so a
crash at any point loses nothing and applies nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Sequence
from typing import Self

import nats
import structlog
from cairn.stream_setup import ensure_dead_letter_stream, ensure_stream
from cairn_events import DEFAULT_STREAM, FAST_INGEST_SINCE, EventStream, Header
from cairn_projections import ALL_READ_MODELS, Folds, ReadModel
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from .batch import Batch, DeadLetter, fold_batch
from .consumer import EventFeed
from .errors import ProjectorStoppedError, ProjectorTimeoutError
from .streams import check_projector_name, consumer_name
from .writer import ProjectionWriter

log = structlog.get_logger(__name__)

_FIRST_BACKOFF_S, _MAX_BACKOFF_S = 0.1, 5.0
_MAX_REASON_CHARS = 1000
#: Messages folded between yields to the event loop (about 5 ms of work).
_FOLD_SLICE = 250
#: Cyclic-GC thresholds while a projector runs. It makes about ten container objects per
#: event, nearly all freed by reference counting when their batch commits; at Python's
#: default (700, 10, 10) the collector runs every few dozen events and rescans the
#: buffered batch each time, which cost a quarter of replay time here.
_GC_THRESHOLDS = (50_000, 20, 100)


class Projector:
    """Folds ``stream`` (the ``CAIRN`` stream unless told) into ``read_models`` in ``schema``.

    ``read_models`` (every read model unless told) decide what it folds: an event of
    a type none of them folds is skipped, not dead-lettered. ``subject_filter`` (one
    subject or several, wildcards allowed, e.g. ``"cairn.artifact.>"``) makes the
    consumer deliver only those subjects. The checkpoint is per ``name``: projectors
    with other names and read models may run side by side, on one schema or several
    (every schema gets every read model's tables). A filtered projector's checkpoint
    moves only with the messages it is delivered.

    One projector per (``name``, ``schema``) may run at a time (a Postgres
    advisory lock enforces it). Use ``await start()`` / ``await stop()`` or
    ``async with``. After a transient failure (Postgres or NATS unreachable)
    it backs off and resumes from its checkpoint by itself.
    """

    def __init__(
        self,
        nats_url: str,
        database_url: str,
        name: str = "main",
        batch_size: int = 4000,
        schema: str = "public",
        *,
        read_models: Sequence[ReadModel] = ALL_READ_MODELS,
        stream: EventStream = DEFAULT_STREAM,
        subject_filter: str | Sequence[str] | None = None,
        max_wait_s: float = 0.05,
    ) -> None:
        self.name = check_projector_name(name)
        self.schema = schema
        self.stream = _checked_stream(stream)
        read_models = _checked_read_models(read_models)
        subject_filter = _checked_filter(subject_filter, self.stream)
        self._nats_url = nats_url
        self._batch_size = batch_size
        self._max_wait_s = max_wait_s
        self._folds = Folds(read_models)
        self._subject_filter = subject_filter
        self._writer = ProjectionWriter(database_url, name, schema, self._folds.row_types)
        self._log = log.bind(projector=name, schema=schema)
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._feed: EventFeed | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._checkpoint = 0
        self._committed = asyncio.Event()

    @property
    def checkpoint(self) -> int:
        """The last stream sequence committed to Postgres (0 before any)."""
        return self._checkpoint

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Migrate, take the lock, make sure the streams exist, and start projecting.

        Returns once the consumer is set up; projecting goes on in a task.
        Raises ProjectorBusyError if this projector already runs elsewhere.
        """
        if self.running:
            return
        self._stopping = False
        _relax_gc()
        self._checkpoint = await self._writer.open()
        try:
            self._nc = await nats.connect(
                self._nats_url, max_reconnect_attempts=-1, reconnected_cb=self._on_reconnected
            )
            self._js = self._nc.jetstream()
            server = self._nc.connected_server_version
            fast_ingest = (server.major, server.minor) >= FAST_INGEST_SINCE
            await ensure_stream(self._js, self.stream, fast_ingest=fast_ingest)
            await ensure_dead_letter_stream(self._js, self.stream)
            self._feed = EventFeed(
                self._nc,
                self._js,
                self.stream.name,
                consumer_name(self.name),
                batch_size=self._batch_size,
                subject_filter=self._subject_filter,
            )
            await self._feed.open(self._checkpoint + 1)
        except BaseException:
            await self._close()
            raise
        self._task = asyncio.create_task(self._run(), name=f"cairn-projector-{self.name}")
        self._log.info("projector.started", stream=self.stream.name, seq=self._checkpoint)

    async def stop(self) -> None:
        """Finish the batch in hand, stop, and close connections. Safe to call twice."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout=30)
            except TimeoutError:
                self._log.warning("projector.stop_timeout")
        await self._close()
        self._pulse()
        self._log.info("projector.stopped", seq=self._checkpoint)

    async def run_until(self, seq: int, timeout: float = 60.0) -> int:
        """Wait until the checkpoint reaches stream sequence ``seq``; returns the checkpoint.

        Raises ProjectorTimeoutError after ``timeout`` seconds and
        ProjectorStoppedError if the projector is not running.
        """
        deadline = time.monotonic() + timeout
        while self._checkpoint < seq:
            if not self.running:
                raise ProjectorStoppedError(
                    f"projector {self.name!r} is not running (checkpoint {self._checkpoint}, "
                    f"waiting for {seq}); call start() first"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProjectorTimeoutError(
                    f"projector {self.name!r} reached {self._checkpoint}, not {seq}, "
                    f"within {timeout:.1f}s"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._committed.wait(), min(remaining, 1.0))
        return self._checkpoint

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        """Fold batch k+1 (and parse its messages) while Postgres commits batch k.

        A failure backs off (doubling up to _MAX_BACKOFF_S) and resumes from the
        checkpoint; it is logged when the failing starts and when a commit succeeds
        again, not on every attempt.
        """
        retry = _Retry(self._log)
        folded = self._checkpoint
        committing: asyncio.Task[None] | None = None
        while not self._stopping:
            try:
                assert self._feed is not None
                msgs = await self._feed.take(self._max_wait_s)
                if not msgs:
                    if committing is not None and committing.done():
                        done, committing = committing, None
                        await done  # raises what the commit raised
                        retry.succeeded(self._checkpoint)
                    continue
                batch = await self._fold(msgs, folded)
                folded = batch.last_seq
                if committing is not None:
                    await committing  # commits stay in stream order; raises what it raised
                    retry.succeeded(self._checkpoint)
                committing = asyncio.create_task(self._commit(batch))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: back off, resume from checkpoint
                await self._settle(committing)
                committing = None
                await asyncio.sleep(retry.failed(exc, self._checkpoint))
                await self._resume()
                folded = self._checkpoint
        await self._settle(committing)

    async def _fold(self, msgs: list[Msg], after_seq: int) -> Batch:
        """Fold in slices, yielding between them so the commit in flight keeps moving."""
        batch = Batch(last_seq=after_seq)
        for start in range(0, len(msgs), _FOLD_SLICE):
            fold_batch(
                msgs[start : start + _FOLD_SLICE],
                after_seq,
                into=batch,
                folds=self._folds,
                stream=self.stream,
            )
            await asyncio.sleep(0)
        return batch

    async def _commit(self, batch: Batch) -> None:
        """Commit ``batch``, then advance the checkpoint, ack, and announce dead letters."""
        assert self._feed is not None and batch.last_msg is not None
        if batch.size:
            dead = await self._writer.commit(batch)
            self._checkpoint = batch.last_seq
            self._pulse()
            self._log.debug(  # a line per batch is noise at info: the log would grow with the stream
                "projector.batch_committed",
                first_seq=batch.first_seq,
                last_seq=batch.last_seq,
                n=batch.size,
                dead=len(dead),
            )
            if dead:
                await self._publish_dead_letters(dead)
        await self._feed.ack_through(batch.last_msg)

    async def _resume(self) -> None:
        """After a failure: reconnect to Postgres if needed and redeliver from the checkpoint.

        The feed is closed first, so until this succeeds nothing fetched before the
        failure can be committed past an uncommitted batch (``take`` raises instead).
        """
        assert self._feed is not None
        await self._feed.close()
        try:
            if not self._writer.connected:
                self._checkpoint = await self._writer.open()
            await self._feed.open(self._checkpoint + 1)
        except Exception as exc:  # the next cycle fails and backs off again
            self._log.warning("projector.resume_failed", error=str(exc))

    async def _publish_dead_letters(self, dead: list[DeadLetter]) -> None:
        """Tell subscribers; the dead_letters table (already committed) is the record."""
        assert self._js is not None
        subject = self.stream.dead_letter_subject(self.name)
        for letter in dead:
            reason = " ".join(letter.reason.split())[:_MAX_REASON_CHARS]
            headers = {
                Header.DEAD_LETTER_REASON.value: reason,
                Header.MSG_ID.value: f"{self.name}:{letter.seq}",
            }
            try:
                await self._js.publish(
                    subject,
                    letter.data,
                    timeout=5,
                    stream=self.stream.dead_letter_name,
                    headers=headers,
                )
            except Exception as exc:  # the table is the record; go on
                self._log.warning(
                    "projector.dead_letter_publish_failed", seq=letter.seq, error=str(exc)
                )
            self._log.warning("projector.dead_lettered", seq=letter.seq, reason=reason)

    async def _on_reconnected(self) -> None:
        self._log.info("projector.nats_reconnected")
        if self._feed is not None:
            await self._feed.reconnected()

    def _pulse(self) -> None:
        event, self._committed = self._committed, asyncio.Event()
        event.set()

    async def _settle(self, task: asyncio.Task[None] | None) -> None:
        """Wait for an in-flight commit, logging rather than raising its failure."""
        if task is None:
            return
        try:
            await task
        except Exception as exc:  # the caller resumes from the checkpoint anyway
            self._log.warning("projector.commit_failed", error=f"{type(exc).__name__}: {exc}")

    async def _close(self) -> None:
        if self._feed is not None:
            await self._feed.close()
            self._feed = None
        if self._nc is not None:
            try:
                await self._nc.drain()
            except Exception as exc:  # closing a broken connection
                self._log.debug("projector.nats_close_failed", error=str(exc))
            self._nc = None
        await self._writer.close()


class _Retry:
    """The projector's backoff after failures, logged once when failing starts and once
    when a commit succeeds again (with how many attempts and how long it took)."""

    def __init__(self, log: structlog.typing.FilteringBoundLogger) -> None:
        self._log = log
        self._failures = 0
        self._since = 0.0
        self._wait = _FIRST_BACKOFF_S
        self._last_error = ""

    def failed(self, exc: Exception, seq: int) -> float:
        """Count a failure; how long to wait before the next attempt."""
        if self._failures == 0:
            self._since = time.monotonic()
            self._log.warning(
                "projector.failing",
                seq=seq,
                error=f"{type(exc).__name__}: {exc}",
                retrying_every_s=f"{_FIRST_BACKOFF_S}-{_MAX_BACKOFF_S}",
            )
        self._failures += 1
        self._last_error = f"{type(exc).__name__}: {exc}"
        wait, self._wait = self._wait, min(self._wait * 2, _MAX_BACKOFF_S)
        return wait

    def succeeded(self, seq: int) -> None:
        """A commit went through: end the failing spell, if there was one."""
        if self._failures:
            self._log.info(
                "projector.recovered",
                seq=seq,
                attempts=self._failures,
                seconds=round(time.monotonic() - self._since, 3),
                last_error=self._last_error,
            )
            self._failures, self._wait = 0, _FIRST_BACKOFF_S


def _checked_stream(stream: object) -> EventStream:
    if not isinstance(stream, EventStream):
        raise TypeError(
            f"Projector(stream=...) takes an EventStream (e.g. cairn_events.DEFAULT_STREAM or "
            f"EventStream.named('CAIRN_TEST')), not {type(stream).__name__} {stream!r}"
        )
    return stream


def _checked_read_models(read_models: Sequence[object]) -> list[ReadModel]:
    single = isinstance(read_models, str | ReadModel)
    checked = [] if single else [m for m in read_models if isinstance(m, ReadModel)]
    if not checked or len(checked) != len(read_models):
        raise TypeError(
            "Projector(read_models=...) takes a non-empty list of ReadModel values from "
            "cairn_projections (e.g. [RUNS, STEPS] or ALL_READ_MODELS); got "
            f"{read_models!r}"
        )
    return checked


def _checked_filter(
    subject_filter: str | Sequence[str] | None, stream: EventStream
) -> str | Sequence[str] | None:
    """``subject_filter`` if every subject in it lies in ``stream`` (else nothing would come)."""
    if subject_filter is None:
        return None
    subjects = [subject_filter] if isinstance(subject_filter, str) else list(subject_filter)
    outside = [s for s in subjects if not isinstance(s, str) or not s.startswith(f"{stream.root}.")]
    if outside or not subjects:
        raise ValueError(
            f"Projector(subject_filter=...) names subjects of stream {stream.name}, which all "
            f"start with '{stream.root}.' (e.g. stream.subject('artifact.>')); "
            f"{outside or subjects!r} would deliver nothing"
        )
    return subject_filter


def _relax_gc() -> None:
    """Raise the process's cyclic-GC thresholds to _GC_THRESHOLDS (never lower them)."""
    current = gc.get_threshold()
    gc.set_threshold(*(max(c, t) for c, t in zip(current, _GC_THRESHOLDS, strict=True)))
