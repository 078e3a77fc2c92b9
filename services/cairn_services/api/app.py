"""The query API application: a Starlette app over the read models, and a way to serve it.

The lifespan runs the migrations (so the API can start before the projector),
opens the read models' pool on ``schema`` and follows the projector's
checkpoint; on shutdown it closes them in reverse order. Every error a client
sees is an ``ErrorBody``: a database fault is a 503 with ``Retry-After``, a bug
a 500 naming an error id that the log line also carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import traceback
from collections.abc import AsyncIterator, Iterator

import msgspec
import structlog
import uvicorn
from cairn.models import ErrorBody
from cairn.naming import shown
from cairn_projections.lineage_index import DEFAULT_MAX_ENTRIES, LineageIndex
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .checkpoint import CheckpointWatcher
from .database import DatabaseLimits, ReadModelPool
from .errors import ApiError, HttpError, InternalError, UnauthorizedError
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
    limits: DatabaseLimits | None = None,
    lineage_entries: int = DEFAULT_MAX_ENTRIES,
) -> Starlette:
    """The API over the read models that projector ``projector_name`` writes into ``schema``.

    With ``token``, every request but ``/health`` needs ``Authorization: Bearer <token>``.
    ``?min_seq=N`` waits up to ``min_seq_timeout`` seconds for the projector. ``limits``
    bound the pool and each query (see :class:`DatabaseLimits`). Lineage answers from memory
    while the graph has at most ``lineage_entries`` versions, step runs and edges, from
    Postgres beyond (see :mod:`cairn_projections.lineage_index`).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        read_models = await ReadModelPool.open(database_url, schema, limits or DatabaseLimits())
        try:
            watcher = CheckpointWatcher(read_models, database_url, schema, projector_name)
            await watcher.start()
            index = LineageIndex(projector_name, max_entries=lineage_entries)
            app.state.cairn = ApiState(read_models, watcher, min_seq_timeout, index)
            log.info("api.started", schema=schema, projector=projector_name)
            try:
                yield
            finally:
                await watcher.stop()
        finally:
            await read_models.close()

    middleware = [Middleware(ErrorBoundary)]
    if token:
        middleware.append(Middleware(BearerAuth, token=token))
    return Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
    )


def error_response(error: ApiError) -> Response:
    """``error`` as its status and ``ErrorBody``, with ``Retry-After`` when it has one."""
    body = _encoder.encode(ErrorBody(error=error.code, message=error.message))
    response = Response(body, status_code=error.status, media_type="application/json")
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = f"{request.method} {shown(request.url.path)}: {exc.detail}"
    return error_response(HttpError(exc.status_code, message))


class ErrorBoundary:
    """Answers any exception no handler took with a 500 naming an error id, logged with it.

    The body says nothing of the exception (its text may hold addresses or SQL); the
    log line ``api.internal_error`` has the traceback under the same ``error_id``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            error = InternalError(secrets.token_hex(4))
            # The traceback as plain text, not exc_info: however logging is configured (or
            # not, in-process), no renderer gets the frames' locals, which hold the headers.
            log.error(
                "api.internal_error",
                error_id=error.error_id,
                method=scope["method"],
                path=shown(scope["path"]),
                traceback=traceback.format_exc(),
            )
            if started:
                raise  # too late for an error response: let the server drop the connection
            await error_response(error)(scope, receive, send)


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
                response = error_response(error)
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
