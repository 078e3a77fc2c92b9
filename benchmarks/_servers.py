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
