"""What a runner is: it takes a pipeline and its parameters and returns the finished run.

Calling a pipeline asks its runner (``@pipeline(runner=...)`` or
``.with_options(runner=...)``; the in-process :class:`cairn.orchestrator.InProcessRunner`
by default) to run it. A runner orchestrates (composes the pipeline, orders its
steps, publishes the run's events, handles failure) and hands each step to a
:class:`cairn.executor.StepExecutor`; a distributed runner does the same with
executors on its workers.

This module declares those shapes and holds a pipeline to them: a runner is checked
when it is given (:func:`checked_runner`), and what it returns when the pipeline is
called (:func:`finished_run`), so a careless runner fails with what to pass instead of
an ``AttributeError`` deep in a call. It imports no runner, so pipelines can name one
without importing it (and no runner imports the pipelines).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol, cast

from .errors import StepDefinitionError
from .models import PipelineRun

#: What every runner error says a runner must be.
_WHAT_A_RUNNER_IS = (
    "a runner is an instance with a run(pipeline, parameters) method returning the "
    "finished cairn.PipelineRun, e.g. cairn.orchestrator.InProcessRunner()"
)


class PipelineDefinition(Protocol):
    """What a runner reads of a pipeline (``cairn.Pipeline`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def func(self) -> Callable[..., Any]: ...
    @property
    def enable_cache(self) -> bool | None: ...
    @property
    def cache_policy(self) -> Any: ...
    @property
    def substitutions(self) -> dict[str, str]: ...
    @property
    def run_name(self) -> str | None: ...


class Runner(Protocol):
    """Runs a pipeline; raises the exception of the step that failed it."""

    def run(self, pipeline: PipelineDefinition, parameters: dict[str, Any]) -> PipelineRun:
        """Run ``pipeline`` with ``parameters`` (by name, coerced) and return the run."""
        ...


def checked_runner(runner: object, *, pipeline: str) -> Runner:
    """``runner`` if it can run pipeline ``pipeline``; else StepDefinitionError saying why.

    Checked where it is given (``@pipeline(runner=...)``, ``.with_options(runner=...)``):
    a class instead of an instance, something with no callable ``run``, or a ``run``
    that cannot take ``(pipeline, parameters)``.
    """
    if isinstance(runner, type):
        name = runner.__qualname__
        problem = f"the class {name} itself; pass an instance, {name}()"
    else:
        run = getattr(runner, "run", None)
        given = _described(runner)
        if run is None:
            problem = f"{given}, which has no run() method"
        elif not callable(run):
            problem = f"{given}, whose run is a {type(run).__qualname__}, not a method"
        elif (signature := _unfit_signature(run)) is not None:
            problem = f"{given}, whose run{signature} cannot be called as run(pipeline, parameters)"
        else:
            return cast("Runner", runner)
    raise StepDefinitionError(f"Pipeline '{pipeline}': runner= got {problem}; {_WHAT_A_RUNNER_IS}.")


def finished_run(result: object, *, runner: Runner, pipeline: str) -> PipelineRun:
    """``result`` of ``runner.run`` if it is the finished run; else StepDefinitionError.

    A runner returning None (or anything but a PipelineRun) would make calling the
    pipeline return it silently.
    """
    if isinstance(result, PipelineRun):
        return result
    kind = type(runner).__qualname__
    raise StepDefinitionError(
        f"Pipeline '{pipeline}': its runner {kind} returned {_described(result)} instead of "
        f"a PipelineRun; {kind}.run(pipeline, parameters) must return the finished run, a "
        "cairn.PipelineRun."
    )


def _unfit_signature(run: Callable[..., Any]) -> str | None:
    """``run``'s signature if it cannot be called with two positional arguments, else None."""
    try:
        signature = inspect.signature(run)
    except (TypeError, ValueError):  # no signature to read (some builtins): let it be tried
        return None
    try:
        signature.bind(None, {})
    except TypeError:
        return str(signature.replace(return_annotation=inspect.Signature.empty))
    return None


def _described(value: object) -> str:
    """``value`` for a message: its repr (cut to 80 characters) and type, or "a T instance"."""
    kind = type(value).__qualname__
    if type(value).__repr__ is object.__repr__:  # "<module.T object at 0x...>" says no more
        return f"a {kind} instance"
    text = repr(value)
    return f"{text if len(text) <= 80 else text[:77] + '...'} ({kind})"
