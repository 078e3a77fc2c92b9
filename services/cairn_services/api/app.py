"""The query API application: connect, migrate, serve; close in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import uvicorn
from cairn_projections import init_connection, migrate, server_settings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

from .freshness import CheckpointWatch
from .routes import ROUTES, ApiProblem, problem_response


class _BearerToken(BaseHTTPMiddleware):
    """Every request but /health needs ``Authorization: Bearer <token>``."""

    def __init__(self, app: object, token: str) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.expected = f"Bearer {token}".encode()

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        given = request.headers.get("authorization", "").encode()
        if request.url.path != "/health" and not hmac.compare_digest(given, self.expected):
            return problem_response(
                ApiProblem(401, "unauthorized", "This Cairn API needs a token: set CAIRN_API_TOKEN")
            )
        return await call_next(request)


def _json_text(value: object) -> str:
    return msgspec.json.encode(value).decode()


def create_app(
    database_url: str,
    *,
    projector_name: str = "main",
    schema: str = "public",
    token: str | None = None,
    freshness_timeout: float = 10.0,
) -> Starlette:
    """The API over the read models in ``schema`` of ``database_url``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings = server_settings(schema)
        async with (
            asyncpg.create_pool(
                database_url,
                min_size=2,
                max_size=10,
                server_settings=settings,
                init=lambda conn: init_connection(conn, dumps=_json_text, loads=msgspec.json.decode),
            ) as pool,
        ):
            async with pool.acquire() as conn:
                await migrate(conn, schema)
            watch = CheckpointWatch(projector_name, schema)
            await watch.start(database_url, settings)
            app.state.pool, app.state.watch = pool, watch
            app.state.freshness_timeout = freshness_timeout
            try:
                yield
            finally:
                await watch.stop()

    middleware = [Middleware(_BearerToken, token=token)] if token else []
    return Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers={ApiProblem: lambda _req, exc: problem_response(exc)},  # type: ignore[dict-item]
    )


async def serve_api(app: Starlette, host: str, port: int, stop: asyncio.Event | None = None) -> None:
    """Serve ``app`` with uvicorn until ``stop`` is set (then shut down gracefully) or cancelled."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    if stop is None:
        await server.serve()
        return

    async def exit_on_stop() -> None:
        await stop.wait()
        server.should_exit = True

    watcher = asyncio.create_task(exit_on_stop())
    try:
        await server.serve()
    finally:
        watcher.cancel()
