"""Shared fixtures: real nats-server and Postgres processes on free local ports.

Set CAIRN_TEST_NATS_URL / CAIRN_TEST_DATABASE_URL to use servers you run yourself instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import asyncpg
import pytest
from cairn_services.stack.nats_server import NatsServer
from cairn_services.stack.postgres_server import PostgresServer


@pytest.fixture(scope="session")
def _managed_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer | None]:
    """A NatsServer for the session, or None when CAIRN_TEST_NATS_URL points elsewhere."""
    if os.environ.get("CAIRN_TEST_NATS_URL"):
        yield None
        return
    server = NatsServer(tmp_path_factory.mktemp("nats")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_url(_managed_nats: NatsServer | None) -> str:
    """URL of a JetStream-enabled NATS server shared by the whole session."""
    return _managed_nats.url if _managed_nats else os.environ["CAIRN_TEST_NATS_URL"]


@pytest.fixture(scope="session")
def nats_server(_managed_nats: NatsServer | None) -> NatsServer:
    """The session's NatsServer, for tests that stop and restart it (skipped if external)."""
    if _managed_nats is None:
        pytest.skip("needs a nats-server this test can control; CAIRN_TEST_NATS_URL is set")
    return _managed_nats


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DSN of a Postgres database shared by the whole session."""
    if external := os.environ.get("CAIRN_TEST_DATABASE_URL"):
        yield external
        return
    server = PostgresServer(tmp_path_factory.mktemp("postgres") / "data", fast=True).start()
    yield server.dsn
    server.stop()


@pytest.fixture
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    """DSN of a new, empty database on the session's server; dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    await _admin_execute(database_url, f'CREATE DATABASE "{name}"')
    yield urlsplit(database_url)._replace(path=f"/{name}").geturl()
    await _admin_execute(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin_execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class ServicesThread:
    """The projector and query API (cairn_services.serve) on a thread with its own loop."""

    def __init__(self, nats_url: str, database_url: str, token: str | None = None) -> None:
        import asyncio
        import threading

        from cairn_services.stack.ports import free_port

        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._args = (nats_url, database_url, "127.0.0.1", self.port, token)
        self._thread = threading.Thread(target=self._run, name="cairn-services", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        import asyncio

        from cairn_services.serve import serve

        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        try:
            self._loop.run_until_complete(serve(*self._args, stop=self._stop))
        except BaseException as exc:  # surfaced by start()/stop()
            self.error = exc

    def start(self) -> ServicesThread:
        import time

        import httpx

        self._thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.error is not None:
                raise self.error
            try:
                if httpx.get(f"{self.api_url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError("the Cairn services did not answer /health within 30 s")

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="session")
def cairn_stack(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServicesThread]:
    """Projector + API on the session's servers, and the SDK's environment pointing at them."""
    from cairn.tracking import reset_tracker

    services = ServicesThread(nats_url, database_url).start()
    home = tmp_path_factory.mktemp("cairn-home")
    saved = {
        k: os.environ.get(k)
        for k in ("CAIRN_NATS_URL", "CAIRN_API_URL", "CAIRN_ARTIFACT_STORE", "CAIRN_HOME")
    }
    os.environ.update(
        CAIRN_NATS_URL=nats_url,
        CAIRN_API_URL=services.api_url,
        CAIRN_ARTIFACT_STORE=str(home / "artifacts"),
        CAIRN_HOME=str(home),
    )
    yield services
    reset_tracker()
    services.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def uid() -> str:
    """A short unique token to keep artifact names of one test apart from the others'."""
    return uuid.uuid4().hex[:8]
