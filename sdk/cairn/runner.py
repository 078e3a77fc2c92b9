"""What a runner is: it takes a pipeline and its parameters and returns the finished run.

Calling a pipeline asks its runner (``@pipeline(runner=...)`` or
``.with_options(runner=...)``; the in-process :class:`cairn.orchestrator.InProcessRunner`
by default) to run it. A runner orchestrates (composes the pipeline, orders its
steps, publishes the run's events, handles failure) and hands each step to a
:class:`cairn.executor.StepExecutor`; a distributed runner does the same with
executors on its workers.

This module only declares shapes, so pipelines can name a runner without
importing one (and no runner imports the pipelines).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .models import PipelineRun


class PipelineDefinition(Protocol):
    """What a runner reads of a pipeline (``cairn.Pipeline`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def func(self) -> Callable[..., Any]: ...
    @property
    def enable_cache(self) -> bool | None: ...
    @property
    def substitutions(self) -> dict[str, str]: ...
    @property
    def run_name(self) -> str | None: ...


class Runner(Protocol):
    """Runs a pipeline; raises the exception of the step that failed it."""

    def run(self, pipeline: PipelineDefinition, parameters: dict[str, Any]) -> PipelineRun:
        """Run ``pipeline`` with ``parameters`` (by name, coerced) and return the run."""
        ...
