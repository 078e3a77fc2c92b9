"""Shared fixtures: real nats-server and Postgres processes on free local ports.

Set CAIRN_TEST_NATS_URL / CAIRN_TEST_DATABASE_URL to use servers you run yourself instead.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import asyncpg
import nats
import pytest
from cairn.stream_setup import ensure_dead_letter_stream, ensure_stream
from cairn_events import EventStream
from cairn_services.stack.in_thread import ServicesThread
from cairn_services.stack.nats_server import NatsServer
from cairn_services.stack.postgres_server import PostgresServer
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError


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


@pytest.fixture
async def stream(nats_url: str) -> AsyncIterator[EventStream]:
    """An event stream of this test's own, with its dead-letter stream; both deleted after.

    A projector or API test reads only what it published, not every earlier test's events.
    """
    own = EventStream.named(f"T_{uuid.uuid4().hex[:12]}")
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, own, fast_ingest=False)
        await ensure_dead_letter_stream(js, own)
    finally:
        await nc.close()
    yield own
    nc = await nats.connect(nats_url)  # the test's connections may be gone (a server restart)
    try:
        for name in (own.name, own.dead_letter_name):
            with contextlib.suppress(NotFoundError):
                await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


@pytest.fixture
async def js(nats_url: str, stream: EventStream) -> AsyncIterator[JetStreamContext]:
    """JetStream on the session's server, for publishing to the test's ``stream``."""
    nc = await nats.connect(nats_url)
    yield nc.jetstream()
    await nc.close()


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


@pytest.fixture(params=[True, False], ids=["batches", "one-by-one"])
def publish_batches(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[bool]:
    """Run a test twice: publishing in fast-ingest batches, and one event at a time.

    Sets ``CAIRN_PUBLISH_BATCHES`` (the SDK's tracker and subprocesses read it); tests
    that build their own EventPublisher pass ``fast_ingest=`` this fixture's value.
    """
    from cairn.publishing import BATCHES_VARIABLE
    from cairn.tracking import reset_tracker

    monkeypatch.setenv(BATCHES_VARIABLE, "1" if request.param else "0")
    reset_tracker()  # the next tracker reads the variable
    yield request.param
    reset_tracker()
