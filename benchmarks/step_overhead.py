"""Tracking overhead per step: a 20-step chain run as a pipeline vs. called plainly.

    python benchmarks/step_overhead.py [--steps 20] [--runs 30]

Prints the per-step overhead (pipeline time minus plain calls, divided by
steps) next to the target (2 ms) and ZenML 0.98's 86-135 ms measured here.
Step progress lines go to /dev/null so the terminal's speed is not measured.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _servers import bench_nats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    with bench_nats() as nats_url, tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
        os.environ.update(
            CAIRN_NATS_URL=nats_url,
            CAIRN_ARTIFACT_STORE=os.path.join(tmp, "store"),
            CAIRN_HOME=os.path.join(tmp, "home"),
        )
        from cairn import pipeline, step

        @step
        def increment(x: int) -> int:
            return x + 1

        @pipeline
        def chain(start: int = 0) -> None:
            value = increment(start)
            for _ in range(args.steps - 1):
                value = increment(value)

        def plain() -> int:
            value = increment.func(0)
            for _ in range(args.steps - 1):
                value = increment.func(value)
            return value

        tracked, untracked = [], []
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            chain()  # warm up: connect, imports, first claims
            for _ in range(args.runs):
                t0 = time.perf_counter()
                chain()
                tracked.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                plain()
                untracked.append(time.perf_counter() - t0)

    per_step = [(t - u) / args.steps * 1000 for t, u in zip(tracked, untracked, strict=True)]
    print(
        f"{args.steps}-step chain, {args.runs} runs (median; includes run start/finish and the final flush)"
    )
    print(
        f"  cairn tracking overhead per step: {statistics.median(per_step):8.3f} ms"
        f"   (p90 {sorted(per_step)[int(0.9 * len(per_step))]:.3f} ms)"
    )
    print("  target                          :    2.000 ms")
    print("  ZenML 0.98 (measured here)      :   86-135 ms")
    print(f"  plain calls, whole chain        : {statistics.median(untracked) * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
