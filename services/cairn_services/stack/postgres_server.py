"""One managed Postgres cluster (initdb on first start), listening on a local TCP port."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import structlog

from cairn_services.stack.errors import StackError
from cairn_services.stack.managed import ManagedServer, open_private_log, write_private_file
from cairn_services.stack.pg_auth import (
    PG_HBA,
    new_password,
    read_password,
    save_password,
    scram_sha256_verifier,
)
from cairn_services.stack.pg_binaries import (
    find_postgres_bin_dir,
    grant_read_tree,
    grant_traverse,
    server_user,
)
from cairn_services.stack.ports import (
    connect_host,
    log_tail,
    start_with_port_retry,
    terminate_pid,
)

log = structlog.get_logger(__name__)

_SOCKET_PATH_MAX = 107


class PostgresServer(ManagedServer):
    """A Postgres cluster in `data_dir` (initdb'd on first start) with database `database`.

    After `start()` returns, `dsn` accepts connections as user `postgres` with the
    cluster's password (scram-sha-256 on TCP; trust only on the unix socket, in a
    directory only the server's OS user may enter). The password is generated on the
    first start and kept in `password_file` (0600, beside the data dir); every start
    rewrites pg_hba.conf and sets it, so a cluster made with trust auth is secured too.
    The port (picked free when not given) is kept, so `stop()` then `start()` brings the
    same cluster back at the same DSN. `fast=True` turns off fsync: for tests only.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_file: Path | None = None,
        database: str = "cairn",
        fast: bool = False,
        detach: bool = False,
        startup_timeout: float = 30.0,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.host = host
        self.port = port
        self.log_file = (
            Path(log_file) if log_file else self.data_dir.with_name(f"{self.data_dir.name}.log")
        )
        self.password_file = self.data_dir.with_name(f"{self.data_dir.name}.password")
        self.password: str | None = None
        self.database = database
        self.fast = fast
        self.detach = detach
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._bin = Path()
        self._as: dict[str, Any] = {}
        self._tmp_socket_dir: Path | None = None

    @property
    def dsn(self) -> str:
        """postgresql://postgres:<password>@host:port/<database> (known after the first start)."""
        if self.port is None or self.password is None:
            raise StackError("PostgresServer has no port and password yet: call start() first.")
        auth = f"postgres:{quote(self.password, safe='')}"
        return f"postgresql://{auth}@{connect_host(self.host)}:{self.port}/{self.database}"

    def start(self) -> Self:
        """initdb if needed, start the server, wait until ready, create the database if missing."""
        if self.running:
            return self
        started = time.monotonic()
        self._prepare()
        deadline = started + self.startup_timeout
        self.port = start_with_port_retry(
            lambda port: self._launch(port, deadline), self.host, self.port, "Postgres"
        )
        stored = read_password(self.password_file)
        password = self.password or stored or new_password()
        # Through psql's stdin over the socket: never in an argv other users can read.
        self._run(
            [self._bin / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *self._conn_args()],
            input=f"ALTER ROLE postgres PASSWORD '{scram_sha256_verifier(password)}';\n"
            f"SELECT 'CREATE DATABASE \"{self.database}\"' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{self.database}')\\gexec\n",
        )
        if password != stored:
            save_password(self.password_file, password)
        self.password = password
        if not self.detach:
            atexit.register(self.stop)
        log.info(
            "postgres_server.started",
            port=self.port,
            pid=self.pid,
            data_dir=str(self.data_dir),
            seconds=round(time.monotonic() - started, 3),
        )
        return self

    def _prepare(self) -> None:
        """Find binaries, settle which user runs them and what it may touch, initdb if needed."""
        self._bin, is_wheel = find_postgres_bin_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.data_dir, 0o700)  # it holds the socket that trusts whoever reaches it
        open_private_log(self.log_file).close()
        owner: tuple[int, int] | None = None
        user = server_user()
        if user is not None:
            owner = (user.pw_uid, user.pw_gid)
            self._as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            if self.data_dir.stat().st_uid != user.pw_uid:
                for p in [self.data_dir, *self.data_dir.rglob("*")]:
                    os.chown(p, *owner)
            os.chown(self.log_file, *owner)
            grant_traverse(self.data_dir, user)
            grant_traverse(self._bin, user)
            if is_wheel:
                grant_read_tree(self._bin.parent)
        if not (self.data_dir / "PG_VERSION").exists():
            args = ["-D", str(self.data_dir), "-U", "postgres", "--locale=C", "--encoding=UTF8"]
            args += ["--auth-local=trust", "--auth-host=scram-sha-256", "--no-instructions"]
            args += ["--no-sync"] if self.fast else []
            self._run([self._bin / "initdb", *args], as_server=True)
            log.info("postgres_server.initdb_done", data_dir=str(self.data_dir))
        write_private_file(self.data_dir / "pg_hba.conf", PG_HBA, owner=owner)

    def _socket_dir(self) -> Path:
        if len(str(self.data_dir / ".s.PGSQL.65535.lock")) <= _SOCKET_PATH_MAX:
            return self.data_dir
        # A long data dir would exceed the unix socket path limit: use a short temp dir.
        if self._tmp_socket_dir is None:
            self._tmp_socket_dir = Path(tempfile.mkdtemp(prefix="cairn-pg-"))
            if self._as:
                os.chown(self._tmp_socket_dir, self._as["user"], self._as["group"])
        return self._tmp_socket_dir

    def _launch(self, port: int, deadline: float) -> None:
        self.port = port
        settings = ["max_connections=200"]
        if self.fast:
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        cmd = [str(self._bin / "postgres"), "-D", str(self.data_dir), "-p", str(port)]
        cmd += ["-h", self.host, "-k", str(self._socket_dir())]
        for setting in settings:
            cmd += ["-c", setting]
        with open_private_log(self.log_file) as log_fh:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                cwd="/",
                start_new_session=self.detach,
                **self._as,
            )
        while not self._postmaster_ready(self._proc.pid):
            if self._proc.poll() is not None or time.monotonic() >= deadline:
                self.stop()
                raise StackError(
                    f"Postgres did not start on port {self.port} (data dir "
                    f"{self.data_dir}). Last lines of {self.log_file}:\n"
                    f"{log_tail(self.log_file)}"
                )
            time.sleep(0.02)

    def _postmaster_ready(self, pid: int) -> bool:
        """True once postmaster.pid is ours and says "ready" (Postgres >= 10 writes that).

        Unlike pg_isready this can't be fooled by another server that took the port.
        """
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, UnicodeDecodeError):
            return False
        return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"

    def _conn_args(self) -> list[str]:
        """psql's arguments for the unix socket, where the postgres role needs no password."""
        socket_dir, port = str(self._socket_dir()), str(self.port)
        return ["-h", socket_dir, "-p", port, "-U", "postgres", "-d", "postgres"]

    def _run(self, cmd: list[Any], *, as_server: bool = False, input: str | None = None) -> None:
        """Run a Postgres tool; on failure raise StackError carrying its output."""
        result = subprocess.run(
            [str(c) for c in cmd],
            check=False,
            input=input,
            capture_output=True,
            text=True,
            cwd="/",
            **(self._as if as_server else {}),
        )
        if result.returncode != 0:
            raise StackError(
                f"{Path(str(cmd[0])).name} failed (exit {result.returncode}) for "
                f"{self.data_dir}:\n{(result.stdout + result.stderr).strip()}"
            )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop with `pg_ctl stop -m fast`, falling back to signals. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        if proc.poll() is None:
            try:
                cmd = [self._bin / "pg_ctl", "stop", "-D", self.data_dir, "--mode=fast", "-w"]
                self._run([*cmd, f"--timeout={int(timeout)}"], as_server=True)
            except StackError as exc:
                log.warning("postgres_server.pg_ctl_failed", error=str(exc))
                terminate_pid(proc.pid, [signal.SIGINT, signal.SIGQUIT], timeout)
        proc.wait(timeout)
        if self._tmp_socket_dir is not None:
            shutil.rmtree(self._tmp_socket_dir, ignore_errors=True)
            self._tmp_socket_dir = None
        log.info("postgres_server.stopped", port=self.port, pid=proc.pid)

    @staticmethod
    def stop_pid(pid: int, timeout: float = 30.0) -> bool:
        """Stop a postmaster started elsewhere (SIGINT = fast shutdown). True if gone."""
        return terminate_pid(pid, [signal.SIGINT, signal.SIGQUIT], timeout)
