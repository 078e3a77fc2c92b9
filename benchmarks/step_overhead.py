"""Tracking overhead per step: a 20-step chain run as a pipeline vs. called plainly.

    python benchmarks/step_overhead.py [--steps 20] [--runs 30]

Prints the per-step overhead (pipeline time minus plain calls, divided by steps) of two
kinds of runs that compute every step, side by side: with caching off, and with caching
on (the default) where every step misses (each run starts from a new value), so each step
also computes its cache key, leases it and records its entry. Beside them the target
(2 ms) and ZenML 0.98's 86-135 ms measured here. Starts its own nats-server and Postgres
(or uses $CAIRN_BENCH_*), and the projector and query API in a process of their own.
Step progress lines go to /dev/null so the terminal's speed is not measured.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _chain import chain_of  # noqa: E402
from _servers import bench_stack  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    with bench_stack():
        chain, plain = chain_of(args.steps)

        uncached = chain.with_options(enable_cache=False)
        # starts far apart: no step of one run has the input of a step of another, so all miss
        starts = itertools.count(1000, 1000)
        tracked: dict[str, list[float]] = {"caching off": [], "caching on, all miss": []}
        untracked = []
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            uncached()  # warm up: connect, imports, first claims
            chain(next(starts))
            for _ in range(args.runs):
                for label, runnable in (("caching off", uncached), ("caching on, all miss", chain)):
                    start = next(starts)
                    t0 = time.perf_counter()
                    runnable(start)
                    tracked[label].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                plain(0)
                untracked.append(time.perf_counter() - t0)

    print(
        f"{args.steps}-step chain, {args.runs} runs each, alternating (median; includes run "
        "start/finish and the final flush)"
    )
    for label, times in tracked.items():
        per_step = [(t - u) / args.steps * 1000 for t, u in zip(times, untracked, strict=True)]
        print(
            f"  tracking per step, {label:20}: {statistics.median(per_step):8.3f} ms"
            f"   (p90 {sorted(per_step)[int(0.9 * len(per_step))]:.3f} ms)"
        )
    print("  target                                  :    2.000 ms")
    print("  ZenML 0.98 (measured here)              :   86-135 ms")
    print(
        f"  plain calls, whole chain                : {statistics.median(untracked) * 1e6:8.1f} us"
    )


if __name__ == "__main__":
    main()
