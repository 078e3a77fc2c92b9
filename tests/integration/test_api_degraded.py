"""The query API when Postgres is down, slow, crashing or out of connections.

These tests start their own Postgres (the session's is shared) and stop, kill or
lock it; each test uses a schema of its own on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import msgspec
import pytest
from cairn import ApiError, Client, ServiceUnavailableError, StackUnavailableError
from cairn.models import ErrorBody
from cairn_projections import server_settings
from cairn_services.api import (
    MAX_POSITION,
    DatabaseLimits,
    DatabaseUnavailableError,
    create_app,
    serve_api,
)
from cairn_services.api.database import ReadModelPool
from cairn_services.stack import free_port
from cairn_services.stack.postgres_server import PostgresServer
from structlog.testing import capture_logs
from test_api import running  # same folder: pytest puts it on sys.path

PROMPT_S = 1.0  # generous: these answers take milliseconds; it only has to be far below a stall


@pytest.fixture(scope="module")
def _postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = PostgresServer(tmp_path_factory.mktemp("pg-degraded") / "data", fast=True).start()
    yield server
    server.stop()


@pytest.fixture
def postgres(_postgres: PostgresServer) -> PostgresServer:
    """This module's own Postgres, running (a failed test may have left it stopped)."""
    return _postgres.start()


@pytest.fixture
def schema(uid: str) -> str:
    return f"degraded_{uid}"


def assert_unavailable(response: httpx.Response, server: PostgresServer, reason: str = "") -> str:
    """A clean 503: Retry-After, database_unavailable, what to do, and nothing internal."""
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    body = msgspec.json.decode(response.content, type=ErrorBody)
    assert body.error == "database_unavailable"
    assert body.message.startswith("The read-model database is unavailable: "), body.message
    assert reason in body.message and "Retry in" in body.message
    for internal in (server.host, "localhost", str(server.port), "postgresql://", "Error", "Errno"):
        assert internal not in body.message
    return body.message


@contextlib.asynccontextmanager
async def locked(dsn: str, schema: str, table: str) -> AsyncIterator[asyncpg.Connection]:
    """Holds an exclusive lock on ``table``, so every query touching it waits."""
    conn = await asyncpg.connect(dsn, server_settings=server_settings(schema))
    try:
        await conn.execute(f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield conn
    finally:  # closing ends the transaction and its lock (a test may have killed it already)
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await conn.close(timeout=5)


async def blocked_backend(conn: asyncpg.Connection) -> int:
    """The pid of the (one) backend waiting for a lock, once there is one."""
    for _ in range(200):
        pid = await conn.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' LIMIT 1"
        )
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.02)
    raise AssertionError("no request ever waited for the lock")


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def timed_get(client: httpx.AsyncClient, path: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.get(path)
    return response, time.monotonic() - started


async def test_postgres_down_is_503_with_retry_after_then_200_when_it_is_back(
    postgres: PostgresServer, schema: str
) -> None:
    app = create_app(postgres.dsn, projector_name="nobody", schema=schema)
    async with running(app) as client:
        assert (await client.get("/health")).status_code == 200

        await asyncio.to_thread(postgres.stop)
        paths = ["/health", "/runs", "/runs/some-run", "/artifacts", "/artifacts/a/versions"]
        paths += ["/artifacts/a/versions/latest", "/artifact-versions/x", "/runs?min_seq=7"]
        for path in paths:
            response, took = await timed_get(client, path)
            assert_unavailable(response, postgres, "cannot be reached")
            assert took < PROMPT_S, path  # refused at once, not after a connect timeout

        await asyncio.to_thread(postgres.start)
        for path in ("/health", "/runs", "/artifacts"):
            assert (await client.get(path)).status_code == 200, path  # the same app, no restart


@pytest.mark.parametrize("cut", ["pg_terminate_backend", "SIGKILL"])
async def test_a_connection_lost_mid_query_is_503_and_the_api_recovers(
    postgres: PostgresServer, schema: str, cut: str
) -> None:
    app = create_app(postgres.dsn, projector_name="nobody", schema=schema)
    async with running(app) as client:
        assert (await client.get("/health")).status_code == 200
        if (
            cut == "SIGKILL"
        ):  # fast=True commits asynchronously: flush, or the crash loses the schema
            await _execute(postgres.dsn, "CHECKPOINT")
        async with locked(postgres.dsn, schema, "artifact_versions") as locker:
            pending = asyncio.create_task(client.get("/artifacts/a/versions/latest"))
            pid = await blocked_backend(locker)
            if cut == "SIGKILL":  # the socket just closes; Postgres then restarts every backend
                os.kill(pid, signal.SIGKILL)
            else:  # FATAL 57P01 to that one backend, as at a fast shutdown
                await locker.execute("SELECT pg_terminate_backend($1)", pid)
            assert_unavailable(await pending, postgres)

        # After a crash Postgres recovers on its own; meanwhile every answer is a clean 503.
        deadline = time.monotonic() + 30
        while (response := await client.get("/health")).status_code != 200:
            assert_unavailable(response, postgres)
            assert time.monotonic() < deadline, "the API never answered 200 again"
            await asyncio.sleep(0.1)
        assert (await client.get("/runs")).status_code == 200


async def test_a_slow_query_times_out_and_no_request_stalls_the_others(
    postgres: PostgresServer, schema: str
) -> None:
    limits = DatabaseLimits(statement_timeout=1.5)
    app = create_app(
        postgres.dsn, projector_name="nobody", schema=schema, limits=limits, min_seq_timeout=1.5
    )
    async with running(app) as client:
        async with locked(postgres.dsn, schema, "artifact_versions") as locker:
            slow = asyncio.create_task(client.get("/artifacts/a/versions/latest"))
            behind = asyncio.create_task(client.get("/runs", params={"min_seq": MAX_POSITION}))
            await blocked_backend(locker)
            for path in ("/health", "/runs?include_steps=false", "/runs/nope"):
                response, took = await timed_get(client, path)
                assert response.status_code in (200, 404), response.text
                assert took < PROMPT_S, path
            assert not slow.done() and not behind.done()

            assert_unavailable(await slow, postgres, "did not finish within 1.5s")
            response = await behind
            assert response.status_code == 503 and response.headers["Retry-After"] == "2"
            assert msgspec.json.decode(response.content, type=ErrorBody).error == "projector_behind"


async def test_a_pool_with_no_free_connection_answers_503_in_time(
    postgres: PostgresServer, schema: str
) -> None:
    limits = DatabaseLimits(pool_size=1, acquire_timeout=0.3, statement_timeout=10)
    app = create_app(postgres.dsn, projector_name="nobody", schema=schema, limits=limits)
    async with running(app) as client:
        async with locked(postgres.dsn, schema, "artifact_versions") as locker:
            holding = asyncio.create_task(client.get("/artifacts/a/versions/latest"))
            await blocked_backend(locker)  # it holds the pool's only connection
            response, took = await timed_get(client, "/runs")
            assert_unavailable(response, postgres, "no connection to it could be had within 0.3s")
            assert response.headers["Retry-After"] == "1"
            assert took < PROMPT_S
        assert (await holding).status_code == 404  # the lock is gone: it gets its answer
        assert (await client.get("/runs")).status_code == 200


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (asyncpg.CannotConnectNowError("the database system is starting up"), "starting up"),
        (asyncpg.CannotConnectNowError("the database system is shutting down"), "shutting down"),
        (asyncpg.AdminShutdownError("terminating connection"), "shutting down"),
        (asyncpg.CrashShutdownError("terminating connection"), "recovering"),
        (asyncpg.TooManyConnectionsError("sorry, too many clients already"), "connection slots"),
        (ConnectionResetError(104, "Connection reset by peer"), "connection to it was lost"),
    ],
)
async def test_faults_hard_to_provoke_on_a_real_server_are_503_too(
    postgres: PostgresServer, schema: str, fault: Exception, reason: str
) -> None:
    # A real server shows these only in windows too short to hit; raise what asyncpg raises.
    read_models = await ReadModelPool.open(postgres.dsn, schema, DatabaseLimits())
    try:
        with pytest.raises(DatabaseUnavailableError) as raised:
            async with read_models.connection():
                raise fault
        assert reason in raised.value.message and raised.value.retry_after == 5
        with pytest.raises(KeyError):  # a bug is not a database fault: it goes on unchanged
            async with read_models.connection():
                raise KeyError("x")
    finally:
        await read_models.close()


async def test_an_unexpected_error_is_500_with_an_id_the_log_also_has(
    postgres: PostgresServer, schema: str
) -> None:
    app = create_app(postgres.dsn, projector_name="nobody", schema=schema)
    async with running(app) as client:
        await _execute(postgres.dsn, f"DROP TABLE {schema}.pipeline_runs CASCADE")  # a bug
        with capture_logs() as logs:
            response = await client.get("/runs")
    assert response.status_code == 500
    body = msgspec.json.decode(response.content, type=ErrorBody)
    assert body.error == "internal"
    for internal in ("pipeline_runs", "Undefined", "Error", "relation", str(postgres.port)):
        assert internal not in body.message
    [logged] = [e for e in logs if e["event"] == "api.internal_error"]
    assert f"(error id {logged['error_id']})" in body.message
    assert logged["path"] == "'/runs'"
    # the exception as plain text (no exc_info: an unconfigured renderer would show locals)
    assert logged["traceback"].startswith("Traceback") and "exc_info" not in logged


async def test_the_client_says_the_database_is_down_and_to_retry(
    postgres: PostgresServer, schema: str
) -> None:
    port, stop = free_port(), asyncio.Event()
    app = create_app(postgres.dsn, projector_name="nobody", schema=schema)
    server = asyncio.create_task(serve_api(app, "127.0.0.1", port, stop))
    try:
        with Client(f"http://127.0.0.1:{port}") as client:
            for _ in range(200):
                with contextlib.suppress(StackUnavailableError):
                    await asyncio.to_thread(client.list_artifacts)
                    break
                await asyncio.sleep(0.05)
            await asyncio.to_thread(postgres.stop)
            with pytest.raises(ServiceUnavailableError) as raised:
                await asyncio.to_thread(client.list_pipeline_runs)
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)
    error = raised.value
    assert isinstance(error, StackUnavailableError) and isinstance(error, ApiError)
    assert error.retry_after == 5
    assert f"The Cairn query API at http://127.0.0.1:{port} cannot answer /runs now: " in str(error)
    assert "The read-model database is unavailable" in str(error) and "Retry in 5s" in str(error)
