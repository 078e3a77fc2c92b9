"""The stack's service process: the projector and the query API in one event loop.

Run as ``python -m cairn_services.serve --nats-url ... --database-url ... --port ...``;
``cairn up`` starts it detached. Stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import structlog

from .api import create_app, serve_api
from .projector import Projector

log = structlog.get_logger(__name__)


async def serve(
    nats_url: str,
    database_url: str,
    host: str,
    port: int,
    token: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Project the log into Postgres and answer queries until ``stop`` is set (or a signal)."""
    projector = Projector(nats_url, database_url)
    await projector.start()
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    log.info("serve.started", api=f"http://{host}:{port}")
    try:
        await serve_api(create_app(database_url, token=token), host, port, stop)
    finally:
        await projector.stop()
        log.info("serve.stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default=None)
    args = parser.parse_args()
    asyncio.run(serve(args.nats_url, args.database_url, args.host, args.port, args.token))


if __name__ == "__main__":
    main()
