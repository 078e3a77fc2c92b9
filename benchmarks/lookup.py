"""Latency of ``Client().get_artifact_version(name)`` (latest) and by version, over HTTP.

    python benchmarks/lookup.py [--versions 200] [--lookups 500]

Starts its own nats-server, Postgres, projector and API (or uses $CAIRN_BENCH_*),
records versions of one name through real pipeline runs, then times lookups.
Printed next to the target (5 ms) and ZenML 0.98's 7-10 ms measured here.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from typing import Annotated

sys.path.insert(0, os.path.dirname(__file__))
from _servers import bench_nats, bench_postgres  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--lookups", type=int, default=500)
    args = parser.parse_args()
    from cairn_services.stack.in_thread import ServicesThread

    with (
        bench_nats() as nats_url,
        bench_postgres() as database_url,
        tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp,
        ServicesThread(nats_url, database_url) as services,
    ):
        os.environ.update(
            CAIRN_NATS_URL=nats_url,
            CAIRN_API_URL=services.api_url,
            CAIRN_ARTIFACT_STORE=os.path.join(tmp, "store"),
            CAIRN_HOME=os.path.join(tmp, "home"),
        )
        from cairn import Client, pipeline, step

        @step
        def emit(i: int) -> Annotated[int, "bench_lookup"]:
            return i

        @pipeline
        def writer(i: int) -> None:
            emit(i)

        with contextlib.redirect_stdout(io.StringIO()):
            for i in range(args.versions):
                writer(i=i)
        client = Client()
        client.get_artifact_version("bench_lookup")  # warm the connection
        latest, by_version = [], []
        for i in range(args.lookups):
            t0 = time.perf_counter()
            client.get_artifact_version("bench_lookup")
            latest.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            client.get_artifact_version("bench_lookup", str(i % args.versions + 1))
            by_version.append(time.perf_counter() - t0)
        from cairn.tracking import reset_tracker

        reset_tracker()

    def ms(samples: list[float]) -> str:
        ordered = sorted(samples)
        return f"median {statistics.median(samples) * 1000:6.2f} ms  p95 {ordered[int(0.95 * len(ordered))] * 1000:6.2f} ms"

    print(
        f"get_artifact_version over HTTP, {args.versions} versions of one name, {args.lookups} lookups each"
    )
    print(f"  latest            : {ms(latest)}")
    print(f"  by version        : {ms(by_version)}")
    print("  target            : 5.00 ms")
    print("  ZenML 0.98 (here) : 7-10 ms")


if __name__ == "__main__":
    main()
