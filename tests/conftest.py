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
from cairn_services.stack.in_thread import ServicesThread
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
