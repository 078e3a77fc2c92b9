"""A fully cached run: a 20-step chain served from cache vs. the same functions called plainly.

    python benchmarks/cached_run.py [--steps 20] [--runs 30]

Starts its own nats-server and Postgres (or uses $CAIRN_BENCH_*), and the projector and
query API in a process of their own, as ``cairn up`` runs them.
The first run computes every step and records its entries; each later run finds every
step in the cache and serves it, alternating two ways: from this process's memory of the
entries it recorded (the same pipeline run again here: no lookup), and from the query API
(memory forgotten first, as another process finds them: one lookup for the whole run,
before any step runs).
Prints the cost per cached step (run time minus the plain calls, divided by steps) next
to the target (0.5 ms) and ZenML 0.98's 52-61 ms per cached step measured here.
Step progress lines go to /dev/null so the terminal's speed is not measured.
"""

from __future__ import annotations

import argparse
import contextlib
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

        from cairn.caching import forget_remembered_entries

        modes = {"this process's entries": [], "entries from the query API": []}
        untracked: list[float] = []
        statuses = set()
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            chain()  # computes every step and records its entries
            for _ in range(args.runs):
                for mode, times in modes.items():
                    if mode == "entries from the query API":
                        forget_remembered_entries()  # as another process finds them
                    t0 = time.perf_counter()
                    run = chain()
                    times.append(time.perf_counter() - t0)
                    statuses.add(str(run.status))
                t0 = time.perf_counter()
                plain()
                untracked.append(time.perf_counter() - t0)

    if statuses != {"cached"}:
        raise SystemExit(f"expected every measured run to be fully cached; got {statuses}")
    print(f"{args.steps}-step chain, fully cached, {args.runs} runs each, alternating (median)")
    for mode, times in modes.items():
        per_step = [(c - u) / args.steps * 1000 for c, u in zip(times, untracked, strict=True)]
        print(
            f"  cost per cached step, {mode:26}: {statistics.median(per_step):6.3f} ms"
            f"   (p90 {sorted(per_step)[int(0.9 * len(per_step))]:.3f} ms; whole run "
            f"{statistics.median(times) * 1000:.2f} ms)"
        )
    print("  target                                            :  0.500 ms")
    print("  ZenML 0.98 (measured here)                        :  52-61 ms")
    print(
        f"  plain calls, whole chain                          : {statistics.median(untracked) * 1e6:6.1f} us"
    )


if __name__ == "__main__":
    main()
