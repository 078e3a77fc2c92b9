"""The local stack's secrets stay secret from the other users of the machine.

The attacks run as an unprivileged OS user (`nobody`, through runuser) against
one stack locked with an API token and NATS credentials, shared by the module.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from test_local_stack import bare_environment, cairn, read_record


class LockedStack(msgspec.Struct, kw_only=True):
    env: dict[str, str]
    home: Path
    token: str
    nats_password: str
    pg_password: str
    record: dict[str, Any]

    @property
    def secrets(self) -> list[str]:
        return [self.token, self.nats_password, self.pg_password]


def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a command as `nobody` (skips the test where that cannot be done)."""
    if os.geteuid() != 0:
        pytest.skip("running a command as another OS user needs root")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("this machine has no 'nobody' user to attack the stack as")
    if shutil.which("runuser") is None:
        pytest.skip("runuser is not installed")
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", *args], capture_output=True, text=True, timeout=30
    )


def let_everyone_traverse_to(path: Path) -> None:
    """o+x on path's ancestors, so CAIRN_HOME's own modes are what keep others out."""
    for folder in path.parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(folder, mode | stat.S_IXOTH)


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LockedStack]:
    base = tmp_path_factory.mktemp("secrets")
    home = base / "home"
    let_everyone_traverse_to(home)
    token, nats_password = f"tok-{secrets.token_hex(8)}", f"natspw-{secrets.token_hex(8)}"
    password_file = base / "nats-password"
    password_file.write_text(nats_password + "\n")
    password_file.chmod(0o600)
    env = bare_environment(home)
    try:
        up = cairn(
            "up",
            "--nats-user",
            "cairn",
            "--nats-password-file",
            str(password_file),
            env={**env, "CAIRN_API_TOKEN": token},
        )
        assert up.returncode == 0, up.stderr
        assert token not in up.stdout and nats_password not in up.stdout
        pg_password = (home / "postgres.password").read_text().strip()
        assert pg_password not in up.stdout
        yield LockedStack(
            env=env,
            home=home,
            token=token,
            nats_password=nats_password,
            pg_password=pg_password,
            record=read_record(env),
        )
    finally:
        cairn("down", env=env)


def test_no_secret_is_on_a_command_line(locked: LockedStack) -> None:
    ps = as_nobody("ps", "-ww", "-eo", "args")  # -ww: whole command lines, however long
    assert ps.returncode == 0, ps.stderr
    assert "nats-server.conf" in ps.stdout and "cairn_services.serve" in ps.stdout
    for secret in locked.secrets:
        assert secret not in ps.stdout


def test_other_users_can_read_none_of_the_stack_files(locked: LockedStack) -> None:
    home = locked.home
    logs = home / "logs"
    private = [
        logs / "services.log",
        logs / "nats.log",
        logs / "postgres.log",
        home / "stack.json",
        home / "nats" / "nats-server.conf",
        home / "postgres.password",
        Path(f"/proc/{locked.record['pids']['services']}/environ"),
    ]
    for path in private:
        assert path.exists(), path
        if not path.is_relative_to("/proc"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        read = as_nobody("cat", str(path))
        assert read.returncode != 0 and "Permission denied" in read.stderr, path
    assert stat.S_IMODE(home.stat().st_mode) in (0o700, 0o710)
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    assert as_nobody("ls", str(home)).returncode != 0


def test_postgres_wants_the_password_from_other_users(locked: LockedStack) -> None:
    port = locked.record["database_url"].rsplit(":", 1)[1].split("/")[0]
    tcp = as_nobody("/usr/bin/psql", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-w")
    assert tcp.returncode != 0 and "password" in tcp.stderr, tcp.stderr
    socket_dir = str(locked.home / "postgres")
    unix = as_nobody("/usr/bin/psql", "-h", socket_dir, "-p", port, "-U", "postgres", "-w")
    assert unix.returncode != 0, unix.stderr


def test_an_internal_error_does_not_log_the_token(locked: LockedStack) -> None:
    api, dsn = locked.record["api_url"], locked.record["database_url"]

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    headers = {"Authorization": f"Bearer {locked.token}", "X-Echo": locked.token}
    asyncio.run(execute("ALTER TABLE pipeline_runs RENAME TO pipeline_runs_away"))
    try:
        assert httpx.get(f"{api}/runs", headers=headers, timeout=10).status_code == 500
    finally:
        asyncio.run(execute("ALTER TABLE pipeline_runs_away RENAME TO pipeline_runs"))
    log = (locked.home / "logs" / "services.log").read_text()
    assert "api.internal_error" in log and "Traceback" in log
    assert "\x1b[" not in log  # plain text, no colour codes
    for secret in locked.secrets:
        assert secret not in log


def test_status_shows_no_secret(locked: LockedStack) -> None:
    status = cairn("status", env=locked.env)
    assert status.returncode == 0, status.stdout
    assert "***@" in status.stdout
    for secret in locked.secrets:
        assert secret not in status.stdout


def test_asking_a_running_stack_for_other_credentials_is_refused(locked: LockedStack) -> None:
    same = cairn("up", env={**locked.env, "CAIRN_API_TOKEN": locked.token})
    assert same.returncode == 0 and "already running" in same.stdout
    other = cairn("up", env={**locked.env, "CAIRN_API_TOKEN": "another-token"})
    assert other.returncode == 1
    message = " ".join(other.stdout.split())
    assert "the API token would change" in message and "Stop it with `cairn down`" in message
    assert read_record(locked.env)["api_token"] == locked.token


@pytest.mark.parametrize(
    ("option", "instead"),
    [
        ("--api-token", ["CAIRN_API_TOKEN=...", "--api-token-file PATH"]),
        ("--nats-password", ["CAIRN_NATS_PASSWORD=...", "--nats-password-file PATH"]),
    ],
)
def test_a_secret_as_a_command_line_value_is_refused(
    tmp_path: Path, option: str, instead: list[str]
) -> None:
    env = bare_environment(tmp_path / "home")
    try:
        refused = cairn("up", "--nats-user", "u", option, "s3cret", env=env)
    finally:
        cairn("down", env=env)  # should there be a stack to stop, the test has failed anyway
    assert refused.returncode == 1
    message = " ".join(refused.stdout.split())
    assert "ps -eo args" in message and all(way in message for way in instead), message
    assert not (tmp_path / "home" / "stack.json").exists()


def test_the_service_log_masks_secrets_wherever_they_appear() -> None:
    script = """
import sys, structlog
from cairn_services.logs import configure_logging
configure_logging(sys.stdout, secrets=["s3cr3t-token", None, "p@ss word"])
log = structlog.get_logger("t")
log.info("x.field", url="nats://u:p%40ss%20word@h:1", token="s3cr3t-token")
try:
    raise RuntimeError("Bearer s3cr3t-token refused")
except RuntimeError:
    log.exception("x.failed")
import logging
logging.getLogger("uvicorn.error").error("header p@ss word")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "s3cr3t-token" not in out and "p@ss word" not in out and "p%40ss%20word" not in out
    assert out.count("***") == 4 and "Traceback" in out and "header ***" in out
