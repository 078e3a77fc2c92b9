"""Calling the query API in-process: a sync httpx transport for ``cairn.Client``.

``Client("http://cairn", transport=InProcessTransport(app, loop))`` sends every request
to ``app`` (an ASGI app, e.g. :func:`.create_app`'s) running on ``loop`` in another
thread, through ``httpx.ASGITransport``: no socket, no server, the same responses. The
app's lifespan must be entered on ``loop`` first (``app.router.lifespan_context(app)``),
and the Client called from a thread other than the loop's (``asyncio.to_thread`` in an
async test), since its calls block until the app has answered.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

import httpx
from starlette.types import ASGIApp


class InProcessTransport(httpx.BaseTransport):
    """Answers a sync httpx client's requests from ``app`` on ``loop`` (see the module doc).

    A request not answered within ``timeout`` seconds raises ``httpx.ReadTimeout``.
    """

    def __init__(
        self, app: ASGIApp, loop: asyncio.AbstractEventLoop, *, timeout: float = 30.0
    ) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._loop = loop
        self._timeout = timeout

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError(
                "InProcessTransport was called on the app's own event loop, which it would "
                "block; call the Client from another thread (e.g. asyncio.to_thread)"
            )
        future = asyncio.run_coroutine_threadsafe(self._send(request, request.read()), self._loop)
        try:
            return future.result(self._timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise httpx.ReadTimeout(
                f"the in-process app did not answer within {self._timeout:g}s", request=request
            ) from None

    async def _send(self, request: httpx.Request, body: bytes) -> httpx.Response:
        forwarded = httpx.Request(
            request.method, request.url, headers=request.headers, content=body
        )
        response = await self._asgi.handle_async_request(forwarded)
        content = await response.aread()
        return httpx.Response(response.status_code, headers=response.headers, content=content)
