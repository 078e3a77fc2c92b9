"""How long ``import cairn`` takes in a fresh interpreter (median of several).

    python benchmarks/import_time.py [--runs 15]

Printed next to the target (0.3 s) and ZenML 0.98's ``import zenml`` (about 2 s here),
and next to a bare interpreter start so the difference is what cairn costs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(code: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    bare = timed("pass", runs)
    cairn = timed("import cairn", runs)
    print(f"fresh interpreter, median of {runs}")
    print(f"  python -c pass          : {bare * 1000:7.1f} ms")
    print(
        f"  python -c 'import cairn': {cairn * 1000:7.1f} ms  (cairn itself: {(cairn - bare) * 1000:.1f} ms)"
    )
    print("  target                  :   300.0 ms")
    print("  import zenml (0.98, here): ~2000.0 ms")


if __name__ == "__main__":
    main()
