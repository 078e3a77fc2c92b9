"""JetStream fast-ingest batches: many events stored per acknowledgement.

nats-server 2.14 takes a *fast batch* into a stream with ``allow_batched``:
ordinary messages whose reply subject tells the server which batch a message
belongs to, its place in it and how often to acknowledge,
``<prefix>.<batch>.<flow>.fail.<n>.<op>.$FI``. The server stores each message
as it arrives, says ``{"type":"ack","seq":n}`` (messages 1..n are stored)
every ``flow`` messages, and answers the last one (op *commit*) with the
stream sequence. In ``fail`` gap mode the first message it refuses ends the
batch: everything before it is stored, nothing after it.

Compared with one acknowledgement per publish (:mod:`.acks`) this takes
most of the per-event work off the publishing process, which on a small
machine shares its cores with the server and the projector
(``benchmarks/ingest.py`` shows both). One batch is in flight at a time, so
batches keep the order of the events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec
from cairn_events import Header
from nats.nuid import NUID

_START, _APPEND, _COMMIT, _PING = 0, 1, 2, 4


class Outgoing(msgspec.Struct):
    """One encoded event on its way to JetStream."""

    subject: str
    data: bytes
    msg_id: str


class BatchFailed(Exception):
    """A batch ended before its commit was acknowledged.

    ``stored`` is how many of its first messages JetStream is known to hold;
    the rest may or may not be stored, and can be sent again safely (their
    ``Nats-Msg-Id`` makes JetStream drop a copy it already has).
    """

    def __init__(self, stored: int, reason: str, *, err_code: int | None = None) -> None:
        super().__init__(reason)
        self.stored = stored
        self.reason = reason
        self.err_code = err_code


class ReplyError(msgspec.Struct):
    """The ``error`` of a JetStream answer: HTTP-like ``code``, JetStream ``err_code``, why."""

    code: int = 0
    err_code: int = 0
    description: str = ""


class Reply(msgspec.Struct):
    """A JetStream answer to a publish: a PubAck, an error, or (batches) a flow ack or a gap.

    :mod:`.acks` reads the same answers to single publishes (``stream`` and ``seq``, or
    ``error``).
    """

    type: str | None = None
    seq: int = 0
    msgs: int = 0
    last_seq: int = 0
    stream: str | None = None
    error: ReplyError | None = None


decode_reply = msgspec.json.Decoder(Reply).decode


class _Batch:
    __slots__ = ("acked", "done", "flow", "id", "items", "progress", "reply_prefix")

    def __init__(self, batch_id: str, items: Sequence[Outgoing], reply_prefix: str, flow: int):
        self.id = batch_id
        self.items = items
        self.reply_prefix = reply_prefix
        self.flow = flow
        self.acked = 0
        self.progress = asyncio.Event()
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def fail(self, stored: int, reason: str, err_code: int | None = None) -> None:
        if not self.done.done():
            self.done.set_exception(BatchFailed(max(stored, 0), reason, err_code=err_code))
            self.progress.set()


class FastIngest:
    """Sends sequences of events as fast batches over one NATS connection, one batch at a time.

    ``flow`` is how often (in messages) the server is asked to acknowledge;
    ``window`` how many acknowledgements may be outstanding before sending
    pauses (2 is what ADR-50 recommends).
    """

    def __init__(
        self, nc: Any, *, flow: int = 500, window: int = 2, ack_timeout: float = 5.0
    ) -> None:
        self._nc = nc
        self.flow = flow
        self.window = window
        self.ack_timeout = ack_timeout
        nuid = NUID().next().decode()
        # The server reads the reply subject from the right: "<prefix>.<batch>" must be two
        # tokens. A prefix of our own lets one subscription hear every batch of this publisher.
        self._prefix = f"_CFI{nuid}"
        self._batch_base = nuid[:12]
        self._count = 0
        self._sub: Any = None
        self._one_at_a_time = asyncio.Lock()
        self.current: _Batch | None = None

    async def open(self) -> FastIngest:
        self._sub = await self._nc.subscribe(f"{self._prefix}.>", cb=self._on_reply)
        return self

    async def send(self, items: Sequence[Outgoing]) -> int:
        """Publish ``items`` as one batch; the stream sequence of the last, once all are stored.

        Raises BatchFailed (with how many are known to be stored) if the
        server refuses a message, or stops acknowledging for ``ack_timeout``.
        """
        async with self._one_at_a_time:
            return await self._send(items)

    async def _send(self, items: Sequence[Outgoing]) -> int:
        assert items, "a batch needs at least one message"
        self._count += 1
        batch_id = f"{self._batch_base}{self._count}"
        batch = _Batch(batch_id, items, f"{self._prefix}.{batch_id}.{self.flow}.fail.", self.flow)
        self.current = batch
        publish, last = self._nc.publish, len(items)
        try:
            try:
                for n, item in enumerate(items, 1):
                    if batch.acked + batch.flow * self.window <= n:
                        await self._wait_for_room(batch, n)
                    if batch.done.done():
                        break
                    op = _COMMIT if n == last else _START if n == 1 else _APPEND
                    await publish(
                        item.subject,
                        item.data,
                        reply=f"{batch.reply_prefix}{n}.{op}.$FI",
                        headers={Header.MSG_ID: item.msg_id},
                    )
            except Exception as exc:  # the connection refused the write (closed, buffer full)
                batch.fail(batch.acked, f"publishing failed: {type(exc).__name__}: {exc}")
            try:
                return await asyncio.wait_for(asyncio.shield(batch.done), self.ack_timeout)
            except TimeoutError:
                batch.fail(batch.acked, f"no acknowledgement of the batch in {self.ack_timeout} s")
                return await batch.done
        finally:
            self.current = None

    def abandon(self) -> list[Outgoing]:
        """End the batch in flight (the connection is gone); the messages not known to be stored."""
        batch = self.current
        if batch is None:
            return []
        batch.fail(batch.acked, "abandoned: the connection to NATS was lost")
        return list(batch.items[batch.acked :])

    async def _wait_for_room(self, batch: _Batch, n: int) -> None:
        """Wait until the server has acknowledged enough for message ``n`` to go out."""
        deadline = asyncio.get_running_loop().time() + self.ack_timeout
        pinged = False
        while batch.acked + batch.flow * self.window <= n and not batch.done.done():
            batch.progress.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                batch.fail(batch.acked, f"no flow acknowledgement in {self.ack_timeout} s")
                return
            try:
                await asyncio.wait_for(batch.progress.wait(), min(remaining, self.ack_timeout / 3))
            except TimeoutError:
                if not pinged:  # an ack may have been lost: ask for the latest again
                    pinged = True
                    await self._nc.publish(
                        batch.items[0].subject,
                        b"",
                        reply=f"{batch.reply_prefix}{n - 1}.{_PING}.$FI",
                    )

    async def _on_reply(self, msg: Any) -> None:
        tokens = msg.subject.split(".")
        batch = self.current
        if batch is None or len(tokens) < 7 or tokens[1] != batch.id or batch.done.done():
            return  # an answer about a batch that has ended
        try:
            reply = decode_reply(msg.data)
        except msgspec.DecodeError:
            batch.fail(batch.acked, f"unreadable answer from JetStream: {msg.data[:200]!r}")
            return
        if reply.type == "ack":
            batch.acked = max(batch.acked, reply.seq)
            batch.flow = reply.msgs or batch.flow
            batch.progress.set()
        elif reply.type == "gap":
            batch.fail(reply.last_seq, f"messages {reply.last_seq + 1}..{reply.seq - 1} were lost")
        elif reply.error is not None:
            # a refused message: the one this answers (or, for "err", the one it names)
            n = reply.seq if reply.type == "err" else int(tokens[4])
            batch.fail(n - 1, reply.error.description, reply.error.err_code)
        elif reply.stream is not None:
            batch.acked = len(batch.items)
            batch.done.set_result(reply.seq)
            batch.progress.set()
