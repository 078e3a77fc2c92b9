"""The pipeline the step benchmarks run: a chain of steps that each add one to a number."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def chain_of(steps: int) -> tuple[Any, Callable[[int], int]]:
    """A pipeline of ``steps`` increment steps from ``start``, and the same functions
    called plainly (what tracking is measured against). Import cairn only after the
    benchmark has pointed its environment at its servers."""
    from cairn import pipeline, step

    @step
    def increment(x: int) -> int:
        return x + 1

    @pipeline
    def chain(start: int = 0) -> None:
        value = increment(start)
        for _ in range(steps - 1):
            value = increment(value)

    def plain(start: int = 0) -> int:
        value = increment.func(start)
        for _ in range(steps - 1):
            value = increment.func(value)
        return value

    return chain, plain
