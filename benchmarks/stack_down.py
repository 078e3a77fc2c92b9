"""How long ``cairn down`` takes on an idle local stack (and ``cairn up`` before it).

    python benchmarks/stack_down.py [--rounds 5] [--run-pipeline]

Each round starts the local stack with ``cairn up`` in a fresh temp CAIRN_HOME
(optionally runs a one-step pipeline on it, so the services have work behind
them), then times ``cairn down``: the whole command, as a user waits for it,
interpreter start included. Printed next to the 6.6 s ``cairn down`` took
before issue 9 and the target of about a second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BEFORE_S = 6.6
TARGET_S = 1.0
#: Generous bounds: a stack that does not come up or go down in this long is a failure.
UP_TIMEOUT_S = 120.0
DOWN_TIMEOUT_S = 60.0

PIPELINE = """
from typing import Annotated
from cairn import pipeline, step

@step
def answer() -> Annotated[int, "bench_down_answer"]:
    return 42

@pipeline
def bench_down() -> None:
    answer()

bench_down()
"""


def _cairn(*args: str, env: dict[str, str], timeout: float) -> float:
    """Run ``cairn ARGS``; its wall time in seconds. Exits with its output if it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cairn_services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(
            f"`cairn {' '.join(args)}` failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return elapsed


def one_round(run_pipeline: bool) -> tuple[float, float]:
    """(seconds of `cairn up`, seconds of `cairn down`) on a fresh CAIRN_HOME."""
    with tempfile.TemporaryDirectory(prefix="cairn-bench-down-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        env["CAIRN_HOME"] = str(Path(tmp) / "home")
        up = _cairn("up", "--quiet", env=env, timeout=UP_TIMEOUT_S)
        try:
            if run_pipeline:
                subprocess.run(
                    [sys.executable, "-c", PIPELINE],
                    env=env,
                    check=True,
                    capture_output=True,
                    timeout=UP_TIMEOUT_S,
                )
        finally:
            down = _cairn("down", env=env, timeout=DOWN_TIMEOUT_S)
        return up, down


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--run-pipeline", action="store_true", help="Run a one-step pipeline before each down."
    )
    args = parser.parse_args()
    ups, downs = [], []
    for n in range(1, args.rounds + 1):
        up, down = one_round(args.run_pipeline)
        ups.append(up)
        downs.append(down)
        print(f"round {n}: cairn up {up:.2f} s, cairn down {down:.2f} s")
    print(
        f"\ncairn up:   median {statistics.median(ups):.2f} s (max {max(ups):.2f} s)\n"
        f"cairn down: median {statistics.median(downs):.2f} s (max {max(downs):.2f} s); "
        f"before: {BEFORE_S} s, target: about {TARGET_S:.0f} s"
    )


if __name__ == "__main__":
    main()
