"""Read-your-writes: wait until the projector's checkpoint reaches a stream sequence.

The projector NOTIFYs ``cairn_checkpoint`` with ``<schema>:<projector>:<seq>``
in each commit; one LISTEN connection wakes every waiting request. Waiters
also re-read the checkpoint every ``poll_s`` so a lost notification (or a lost
LISTEN connection) only slows them down. Reads go through the API's
:class:`.database.ReadModelPool`, so a database fault is a 503 here too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import structlog
from cairn_projections import CHECKPOINT_CHANNEL
from cairn_projections.bookkeeping import get_checkpoint

from .database import ReadModelPool
from .errors import ProjectorBehindError

log = structlog.get_logger(__name__)


class CheckpointWatcher:
    """Knows the checkpoint of one projector in one schema, and waits for it to move."""

    def __init__(
        self,
        read_models: ReadModelPool,
        database_url: str,
        schema: str,
        projector: str,
        poll_s: float = 0.25,
    ) -> None:
        self._read_models, self._database_url = read_models, database_url
        self._schema, self._projector = schema, projector
        self._poll_s = poll_s
        self._seen = 0
        self._moved = asyncio.Event()
        self._listener: asyncpg.Connection | None = None

    async def start(self) -> None:
        await self._listen()

    async def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            await listener.close()

    async def current(self) -> int:
        """The committed checkpoint, read from Postgres now."""
        async with self._read_models.connection() as conn:
            seq = await get_checkpoint(conn, self._projector)
        self._advance(seq)
        return self._seen

    async def wait_for(self, seq: int, timeout: float) -> int:
        """The checkpoint once it is >= ``seq``; ProjectorBehindError after ``timeout`` s."""
        if self._seen >= seq:
            return self._seen
        started = time.monotonic()
        checkpoint = await self.current()
        while checkpoint < seq:
            remaining = started + timeout - time.monotonic()
            if remaining <= 0:
                raise ProjectorBehindError(self._projector, checkpoint, seq, timeout)
            moved = self._moved
            try:
                await asyncio.wait_for(moved.wait(), min(remaining, self._poll_s))
                checkpoint = self._seen
            except TimeoutError:
                if self._listener is None or self._listener.is_closed():
                    await self._listen()
                checkpoint = await self.current()
        return checkpoint

    def _advance(self, seq: int) -> None:
        if seq > self._seen:
            self._seen = seq
            moved, self._moved = self._moved, asyncio.Event()
            moved.set()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        schema, projector, seq = payload.rsplit(":", 2)
        if schema == self._schema and projector == self._projector:
            self._advance(int(seq))

    async def _listen(self) -> None:
        self._listener = None
        listener: asyncpg.Connection | None = None
        try:
            # Bounded like the pool: a waiting request must not hang on a dead server.
            timeout = self._read_models.limits.acquire_timeout
            listener = await asyncpg.connect(self._database_url, timeout=timeout)
            await listener.add_listener(CHECKPOINT_CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if listener is not None:
                listener.terminate()
            log.warning("api.checkpoint_listen_failed", error=type(exc).__name__, detail=str(exc))
            return
        self._listener = listener
