"""The query API application: a Starlette app over the read models, and a way to serve it.

The lifespan opens an asyncpg pool on ``schema``, runs the migrations (so the
API can start before the projector) and follows the projector's checkpoint;
on shutdown it closes them in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator, Iterator

import asyncpg
import msgspec
import structlog
import uvicorn
from cairn.models import ErrorBody
from cairn_projections import init_connection, migrate, server_settings
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .checkpoint import CheckpointWatcher
from .errors import ApiError, UnauthorizedError
from .routes import ROUTES
from .state import ApiState

log = structlog.get_logger(__name__)
_encoder = msgspec.json.Encoder()


def create_app(
    database_url: str,
    *,
    projector_name: str = "main",
    schema: str = "public",
    token: str | None = None,
    min_seq_timeout: float = 10.0,
) -> Starlette:
    """The API over the read models that projector ``projector_name`` writes into ``schema``.

    With ``token``, every request but ``/health`` needs ``Authorization: Bearer <token>``.
    ``?min_seq=N`` waits up to ``min_seq_timeout`` seconds for the projector.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            database_url,
            min_size=1,
            max_size=10,
            server_settings=server_settings(schema),
            init=_init_connection,
        )
        try:
            async with pool.acquire() as conn:
                await migrate(conn, schema)
            watcher = CheckpointWatcher(pool, database_url, schema, projector_name)
            await watcher.start()
            app.state.cairn = ApiState(pool, watcher, min_seq_timeout)
            log.info("api.started", schema=schema, projector=projector_name)
            try:
                yield
            finally:
                await watcher.stop()
        finally:
            await pool.close()

    return Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        middleware=[Middleware(BearerAuth, token=token)] if token else [],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )


async def _init_connection(conn: asyncpg.Connection) -> None:
    await init_connection(
        conn, dumps=lambda v: _encoder.encode(v).decode(), loads=msgspec.json.decode
    )


def error_response(status: int, code: str, message: str) -> Response:
    body = _encoder.encode(ErrorBody(error=code, message=message))
    return Response(body, status_code=status, media_type="application/json")


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "not_found" if exc.status_code == 404 else "http_error"
    return error_response(
        exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}"
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("api.internal_error", path=request.url.path)
    return error_response(500, "internal", f"{type(exc).__name__}: {exc}")


class BearerAuth:
    """Refuses (401) every request but ``/health`` without ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/health":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                error = UnauthorizedError(
                    "This Cairn API needs a token: send 'Authorization: Bearer <token>' "
                    "(the SDK reads it from CAIRN_API_TOKEN)"
                )
                response = error_response(error.status, error.code, error.message)
                response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process hosting it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_api(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 8000, stop: asyncio.Event | None = None
) -> None:
    """Serve ``app`` with uvicorn until ``stop`` is set or the task is cancelled.

    Either way the server shuts down gracefully (lifespan shutdown included)
    before this returns (or re-raises the cancellation).
    """
    config = uvicorn.Config(app, host=host, port=port, lifespan="on", log_config=None)
    server = _EmbeddedServer(config)
    serving = asyncio.ensure_future(server.serve())
    stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
    try:
        waiting = {serving} if stopper is None else {serving, stopper}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        server.should_exit = True
        await asyncio.shield(serving)
        raise
    finally:
        if stopper is not None:
            stopper.cancel()
    if not serving.done():
        server.should_exit = True
    await serving
