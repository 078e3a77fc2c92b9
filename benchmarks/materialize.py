"""Micro-benchmark: cost of storing one step output, against plain pickle.dump.

For an int, a str and a 1000x10 DataFrame, prints mean (and median) microseconds to
  - save it with its materializer into a fresh artifact uri (lookup included),
  - save + digest (what the step executor does per output),
  - pickle.dump it into a fresh file (the baseline).
Everything is written to a temporary directory (on the filesystem of --dir). The ratio is
mean save+digest over mean pickle.dump.

    python benchmarks/materialize.py [--iterations 2000] [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from cairn.artifact_stores import LocalArtifactStore
from cairn.materializers import materializer_for


def timings_us(operation: Callable[[int], None], iterations: int) -> tuple[float, float]:
    """(mean, median) microseconds of operation(i) over iterations, after a short warm-up."""
    for i in range(-min(50, iterations), 0):  # lazy imports and first-use caches
        operation(i)
    timings = []
    for i in range(iterations):
        start = time.perf_counter_ns()
        operation(i)
        timings.append(time.perf_counter_ns() - start)
    return statistics.fmean(timings) / 1000, statistics.median(timings) / 1000


def bench(label: str, value: Any, iterations: int, workdir: str) -> list[tuple[float, float]]:
    store = LocalArtifactStore(os.path.join(workdir, f"store-{label}"))
    # Version ids come from the step executor, so they are made outside the timed region.
    ids = iter([str(uuid.uuid4()) for _ in range(2 * (iterations + 50))])
    data_type = type(value)

    def save(i: int, digest: bool = False) -> None:
        uri = store.artifact_uri("output", next(ids))
        materializer_for(data_type)(uri, store).save(value)
        if digest:
            store.digest(uri)

    pickle_dir = os.path.join(workdir, f"pickle-{label}")
    os.makedirs(pickle_dir)

    def dump(i: int) -> None:
        with open(os.path.join(pickle_dir, f"{i + 100}.pkl"), "wb") as file:
            pickle.dump(value, file, protocol=pickle.HIGHEST_PROTOCOL)

    return [
        timings_us(save, iterations),
        timings_us(lambda i: save(i, digest=True), iterations),
        timings_us(dump, iterations),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--dir", default=None, help="parent of the temporary directory")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(
        np.random.default_rng(0).random((1000, 10)), columns=[f"c{i}" for i in range(10)]
    )
    cases: list[tuple[str, Any, int]] = [
        ("int", 42, args.iterations),
        ("str", "a short string output", args.iterations),
        ("DataFrame 1000x10", frame, max(args.iterations // 10, 20)),
    ]
    with tempfile.TemporaryDirectory(dir=args.dir) as workdir:
        print(f"temp dir: {workdir}   (µs per value: mean / median)")
        print(f"{'value':<20}{'save':>18}{'save+digest':>18}{'pickle.dump':>18}{'ratio':>8}")
        for label, value, iterations in cases:
            results = bench(label.split()[0], value, iterations, workdir)
            cells = "".join(f"{f'{mean:.1f} / {median:.1f}':>18}" for mean, median in results)
            print(f"{label:<20}{cells}{results[1][0] / results[2][0]:>8.2f}")


if __name__ == "__main__":
    main()
