"""Read-your-writes: wait until the projector's checkpoint reaches a stream sequence.

One LISTEN connection follows the checkpoint notifications the projector sends
in its commit, so waiting costs no polling queries.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import structlog
from cairn_projections import CHECKPOINT_CHANNEL
from cairn_projections.queries import get_checkpoint

log = structlog.get_logger(__name__)


class CheckpointWatch:
    """The newest committed checkpoint of one projector, kept current by LISTEN/NOTIFY."""

    def __init__(self, projector: str, schema: str) -> None:
        self.projector = projector
        self.schema = schema
        self.checkpoint = 0
        self._changed = asyncio.Condition()
        self._conn: Any = None

    async def start(self, database_url: str, server_settings: dict[str, str]) -> None:
        self._conn = await asyncpg.connect(database_url, server_settings=server_settings)
        await self._conn.add_listener(CHECKPOINT_CHANNEL, self._on_notify)
        self.checkpoint = await get_checkpoint(self._conn, self.projector)

    async def stop(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        schema, _, rest = payload.partition(":")
        projector, _, seq = rest.rpartition(":")
        if schema == self.schema and projector == self.projector and int(seq) > self.checkpoint:
            self.checkpoint = int(seq)
            asyncio.get_running_loop().create_task(self._notify_all())

    async def _notify_all(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """True once the checkpoint is at least ``seq``; False after ``timeout`` seconds."""
        if self.checkpoint >= seq:
            return True
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: self.checkpoint >= seq)
        except TimeoutError:
            return self.checkpoint >= seq
        return True
