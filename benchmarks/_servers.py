"""Servers for benchmarks: the ones named by CAIRN_BENCH_* variables, or fresh local ones."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def bench_nats() -> Iterator[str]:
    """A NATS URL: $CAIRN_BENCH_NATS_URL, or a nats-server started in a temp dir."""
    if os.environ.get("CAIRN_BENCH_NATS_URL"):
        yield os.environ["CAIRN_BENCH_NATS_URL"]
        return
    from cairn_services.stack import NatsServer

    with (
        tempfile.TemporaryDirectory(prefix="cairn-bench-nats-") as tmp,
        NatsServer(Path(tmp)) as server,
    ):
        yield server.url


@contextlib.contextmanager
def bench_postgres() -> Iterator[str]:
    """A Postgres DSN: $CAIRN_BENCH_DATABASE_URL, or a cluster started in a temp dir."""
    if os.environ.get("CAIRN_BENCH_DATABASE_URL"):
        yield os.environ["CAIRN_BENCH_DATABASE_URL"]
        return
    from cairn_services.stack import PostgresServer

    with (
        tempfile.TemporaryDirectory(prefix="cairn-bench-pg-") as tmp,
        PostgresServer(Path(tmp) / "data") as server,
    ):
        yield server.dsn


@contextlib.contextmanager
def bench_services(nats_url: str, database_url: str) -> Iterator[str]:
    """The projector and query API in a process of their own (as ``cairn up`` runs them, so
    they do not share this process's interpreter lock); yields the API's URL."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "CAIRN_NATS_URL": nats_url, "CAIRN_DATABASE_URL": database_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "cairn_services.serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the service process did not answer in 30 s") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def bench_stack() -> Iterator[str]:
    """nats-server, Postgres, and the services in their own process, with this process's
    SDK pointed at them and its artifact store and CAIRN_HOME in a temp dir; yields the
    API's URL."""
    with (
        bench_nats() as nats_url,
        bench_postgres() as database_url,
        tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp,
        bench_services(nats_url, database_url) as api_url,
    ):
        os.environ.update(
            CAIRN_NATS_URL=nats_url,
            CAIRN_API_URL=api_url,
            CAIRN_ARTIFACT_STORE=os.path.join(tmp, "store"),
            CAIRN_HOME=os.path.join(tmp, "home"),
        )
        yield api_url
