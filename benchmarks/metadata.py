"""log_artifact_metadata calls per second from one process, one key per call, committed.

    python benchmarks/metadata.py [--calls 20000] [--rounds 3]

Starts its own nats-server and Postgres (or uses $CAIRN_BENCH_*), and the projector and
query API in a process of their own, as ``cairn up`` runs them. Saves one artifact, then
calls ``log_artifact_metadata({"step_<i>": i}, artifact_name=...)`` (outside a step, by
name: its latest version) as fast as one thread can, and stops the clock when Postgres
holds every value (the read model's newest value of the last key and the history's row
count are read back). Printed beside: the calls-only rate (the calling thread's own cost,
before the bus and the projector), the target (10,000/s) and ZenML 0.98's 143 calls/s
measured on this machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _servers import bench_stack  # noqa: E402

ZENML_CALLS_PER_S = 143
TARGET_CALLS_PER_S = 10_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with bench_stack():
        import cairn
        from cairn import Client, log_artifact_metadata

        committed: list[float] = []
        calling: list[float] = []
        for round_ in range(args.rounds):
            name = f"bench_metadata_{round_}"
            version = cairn.save_artifact(round_, name)
            log_artifact_metadata({"warm": 0}, artifact_name=name)  # the name is watched
            client = Client()
            client.get_artifact_version(version.id)
            t0 = time.perf_counter()
            for i in range(args.calls):
                log_artifact_metadata({f"step_{i}": i}, artifact_name=name)
            called = time.perf_counter() - t0
            last = f"step_{args.calls - 1}"
            found = client.get_artifact_version(version.id)  # waits for every call's event
            elapsed = time.perf_counter() - t0
            if found.run_metadata[last].value != args.calls - 1:
                raise SystemExit(f"the last value did not arrive: {found.run_metadata.get(last)}")
            history = client.get_metadata_history(found)
            logged = sum(1 for entry in history if entry.key.startswith("step_"))
            if logged != args.calls:
                raise SystemExit(f"Postgres holds {logged} of {args.calls} values")
            committed.append(args.calls / elapsed)
            calling.append(args.calls / called)
        from cairn.tracking import reset_tracker

        reset_tracker()  # before the servers stop

    print(f"log_artifact_metadata by name, one key per call, {args.calls} calls x {args.rounds}")
    print(
        f"  committed in Postgres : {statistics.median(committed):>9,.0f} calls/s "
        f"(rounds {', '.join(f'{c:,.0f}' for c in committed)})"
    )
    print(f"  calling thread alone  : {statistics.median(calling):>9,.0f} calls/s")
    print(f"  target                : {TARGET_CALLS_PER_S:>9,} calls/s")
    print(f"  ZenML 0.98 (measured) : {ZENML_CALLS_PER_S:>9,} calls/s")


if __name__ == "__main__":
    main()
