"""The stack's service process: the projector and the query API in one event loop.

Run as ``CAIRN_NATS_URL=... CAIRN_DATABASE_URL=... [CAIRN_API_TOKEN=...] python -m
cairn_services.serve --port ...``; ``cairn up`` starts it detached. The URLs (which
hold passwords) and the token come from the environment, never the command line,
which every local user can read; ``CAIRN_LOG_LEVEL=debug`` adds a line per committed
batch. Stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from urllib.parse import urlsplit

import structlog

from .api import create_app, serve_api
from .logs import configure_logging, level_from_env
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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    missing = [
        name for name in ("CAIRN_NATS_URL", "CAIRN_DATABASE_URL") if not os.environ.get(name)
    ]
    if missing:
        parser.error(
            f"{' and '.join(missing)} not set: the service process takes its NATS URL, database "
            "URL and API token (CAIRN_API_TOKEN) from the environment, not the command line."
        )
    nats_url, database_url = os.environ["CAIRN_NATS_URL"], os.environ["CAIRN_DATABASE_URL"]
    token = os.environ.get("CAIRN_API_TOKEN") or None
    passwords = [urlsplit(url).password for url in nats_url.split(",") + [database_url]]
    try:
        level = level_from_env()
    except ValueError as exc:
        parser.error(str(exc))
    configure_logging(sys.stdout, secrets=[token, *passwords], level=level)
    try:
        asyncio.run(serve(nats_url, database_url, args.host, args.port, token))
    except Exception:
        log.exception("serve.failed")  # through the masking logger, not Python's own traceback
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
