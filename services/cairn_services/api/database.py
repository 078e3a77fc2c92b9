"""The API's connections to the read models: bounded waits, and faults told apart from bugs.

Every query goes through :meth:`ReadModelPool.connection`. It waits at most
``acquire_timeout`` for a connection, Postgres cancels any statement after
``statement_timeout``, and an exception that means "Postgres cannot answer now"
(refused, lost, starting up or shutting down, out of connections, too slow) leaves
it as :class:`DatabaseUnavailableError` (503 with ``Retry-After``). Anything else
is a bug and goes on unchanged. A lost connection is replaced on the next
acquire, so the API recovers by itself when Postgres is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import structlog
from cairn_projections import init_connection, migrate, server_settings

from .errors import DatabaseUnavailableError

log = structlog.get_logger(__name__)
_encoder = msgspec.json.Encoder()

# Seconds a client should wait before retrying: a restart takes a few, a busy pool less.
_RETRY_DOWN_S = 5
_RETRY_BUSY_S = 1
# A new connection may take this long at start-up; during a request, acquire_timeout bounds it.
_CONNECT_TIMEOUT_S = 30.0
# 57P03 "the database system is starting up / shutting down / in recovery", 57P01, 57P02.
_RESTARTING = (
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


@dataclass(frozen=True)
class DatabaseLimits:
    """How long a request may hold on to Postgres, so that no request stalls the others.

    ``pool_size`` connections at most; ``acquire_timeout`` seconds to get one (a free one,
    or a new one connected); ``statement_timeout`` seconds per query, after which
    Postgres cancels it. Migrations at start-up are not bounded by ``statement_timeout``.
    """

    pool_size: int = 10
    acquire_timeout: float = 2.0
    statement_timeout: float = 5.0

    @property
    def command_timeout(self) -> float:
        """The client-side bound: a second more, for a server that stopped answering at all."""
        return self.statement_timeout + 1.0


class ReadModelPool:
    """The asyncpg pool over one schema's read models, handing out bounded connections."""

    def __init__(self, pool: asyncpg.Pool, limits: DatabaseLimits) -> None:
        self._pool, self.limits = pool, limits

    @classmethod
    async def open(cls, database_url: str, schema: str, limits: DatabaseLimits) -> ReadModelPool:
        """Migrate ``schema`` (unbounded: a migration may be slow), then open the pool."""
        conn = await asyncpg.connect(database_url, timeout=_CONNECT_TIMEOUT_S)
        try:
            await migrate(conn, schema)
        finally:
            await conn.close()
        settings = server_settings(schema)
        settings["statement_timeout"] = str(round(limits.statement_timeout * 1000))
        pool = await asyncpg.create_pool(
            database_url,
            min_size=1,
            max_size=limits.pool_size,
            timeout=_CONNECT_TIMEOUT_S,
            command_timeout=limits.command_timeout,
            server_settings=settings,
            init=_init_connection,
        )
        return cls(pool, limits)

    async def close(self) -> None:
        """Close the pool; connections still stuck after a statement timeout are cut."""
        try:
            await asyncio.wait_for(self._pool.close(), self.limits.command_timeout)
        except TimeoutError:
            self._pool.terminate()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A pooled connection for one request; DatabaseUnavailableError when Postgres can't answer."""
        conn: Any = None
        closed = False
        try:
            conn = await self._pool.acquire(timeout=self.limits.acquire_timeout)
            try:
                yield conn
            finally:
                closed = _is_closed(conn)  # before release, which detaches the proxy
                await self._pool.release(conn)
        except Exception as exc:
            unavailable = self._unavailable(exc, acquired=conn is not None, closed=closed)
            if unavailable is None:
                raise
            log.warning(
                "api.database_unavailable",
                reason=unavailable.reason,
                error=type(exc).__name__,
                detail=str(exc),
            )
            raise unavailable from None

    def _unavailable(
        self, exc: Exception, *, acquired: bool, closed: bool
    ) -> DatabaseUnavailableError | None:
        """What ``exc`` tells a client, when it means Postgres cannot answer now; else None."""
        limits = self.limits
        # TimeoutError is an OSError: tell the timeouts apart before the network faults.
        if isinstance(exc, TimeoutError) and not acquired:
            reason = (
                f"no connection to it could be had within {limits.acquire_timeout:g}s (every "
                "pooled connection is busy, or Postgres is slow to accept new ones)"
            )
            return DatabaseUnavailableError(reason, _RETRY_BUSY_S)
        if isinstance(exc, TimeoutError | asyncpg.QueryCanceledError):
            reason = f"a query was cancelled or did not finish within {limits.statement_timeout:g}s"
            return DatabaseUnavailableError(reason, _RETRY_BUSY_S)
        if isinstance(exc, _RESTARTING):
            reason = "Postgres is starting up, shutting down or recovering"
            return DatabaseUnavailableError(reason, _RETRY_DOWN_S)
        if isinstance(exc, asyncpg.InsufficientResourcesError):
            reason = "Postgres is out of connection slots or other resources"
            return DatabaseUnavailableError(reason, _RETRY_DOWN_S)
        if closed or isinstance(exc, OSError | asyncpg.PostgresConnectionError):
            reason = "it cannot be reached, or the connection to it was lost"
            return DatabaseUnavailableError(reason, _RETRY_DOWN_S)
        return None


def _is_closed(conn: Any) -> bool:
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:  # asyncpg detached it already: it does so when it closes
        return True


async def _init_connection(conn: asyncpg.Connection) -> None:
    await init_connection(
        conn, dumps=lambda v: _encoder.encode(v).decode(), loads=msgspec.json.decode
    )
