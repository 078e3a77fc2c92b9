"""The projector and query API on a background thread, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx

from .ports import free_port


class ServicesThread:
    """Runs :func:`cairn_services.serve.serve` on its own event loop in a daemon thread."""

    def __init__(self, nats_url: str, database_url: str, token: str | None = None) -> None:
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        self.error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._args = (nats_url, database_url, "127.0.0.1", self.port, token)
        self._thread = threading.Thread(target=self._run, name="cairn-services", daemon=True)

    def _run(self) -> None:
        from ..serve import serve

        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        try:
            self._loop.run_until_complete(serve(*self._args, stop=self._stop))
        except BaseException as exc:  # surfaced by start()
            self.error = exc

    def start(self, timeout: float = 30.0) -> ServicesThread:
        """Start and wait until the API answers /health."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise self.error
            try:
                if httpx.get(f"{self.api_url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"the Cairn services did not answer /health within {timeout} s")

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def __enter__(self) -> ServicesThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
