"""The stack's service process (projector + API), started detached with its secrets in its
environment: a command line is readable by every local user, an environment is not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import structlog

from cairn_services.stack.errors import StackError
from cairn_services.stack.managed import open_private_log
from cairn_services.stack.parts import SERVICES_MODULE, api_healthy
from cairn_services.stack.ports import log_tail, terminate_pid

log = structlog.get_logger(__name__)

START_TIMEOUT = 30.0
#: What the service process reads from its environment (see cairn_services.serve).
_ITS_VARIABLES = ("CAIRN_NATS_URL", "CAIRN_DATABASE_URL", "CAIRN_API_TOKEN")
_NOT_ITS_VARIABLES = ("CAIRN_NATS_PASSWORD", "CAIRN_API_URL")


def start_services(
    *,
    nats_url: str,
    database_url: str,
    api_port: int,
    api_token: str | None,
    log_file: Path,
    timeout: float = START_TIMEOUT,
) -> int:
    """Start ``python -m cairn_services.serve`` detached; return its pid once /health answers.

    On failure the process is ended and StackError carries the end of its log.
    """
    env = {k: v for k, v in os.environ.items() if k not in _ITS_VARIABLES + _NOT_ITS_VARIABLES}
    env.update(CAIRN_NATS_URL=nats_url, CAIRN_DATABASE_URL=database_url)
    if api_token:
        env["CAIRN_API_TOKEN"] = api_token
    api_url = f"http://127.0.0.1:{api_port}"
    with open_private_log(log_file) as out:
        service = subprocess.Popen(
            [sys.executable, "-m", SERVICES_MODULE, "--port", str(api_port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while not api_healthy(api_url):
        exited = service.poll() is not None
        if exited or time.monotonic() > deadline:
            terminate_pid(service.pid, [signal.SIGTERM], timeout=10)
            what = "exited" if exited else f"did not answer {api_url}/health within {timeout:.0f} s"
            raise StackError(
                f"The Cairn services (projector + API) {what}. Last lines of {log_file}:\n"
                f"{log_tail(log_file)}"
            )
        time.sleep(0.1)
    log.info("services.started", api=api_url, pid=service.pid)
    return service.pid
