"""The in-process runner: orchestrates a pipeline run in this process.

It composes the pipeline (calling its function records step invocations), orders
the invocations, publishes run.started, hands each invocation to a
:class:`cairn.executor.StepExecutor` with the values of its inputs, and publishes
run.finished: completed, or failed with the failing step, whose own exception
is then raised. Outputs pass to downstream steps in memory. The run it returns
is built from the same facts as the events, so it agrees with what the query
API answers later.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from cairn_events import RunFinished, RunOutcome, RunStarted, RunStatus, new_id, utcnow

from .artifact_functions import save_external
from .composition import Composition, ExternalInput, OutputHandle, composing, end_composing
from .executor import (
    ExecutedStep,
    ReusedOutput,
    RunContext,
    StepExecutor,
    StepInput,
    StepOutput,
    StepTracker,
)
from .failures import StepFailure, error_summary
from .models import PipelineRun, RunConfig
from .naming import check_run_name, resolve_name, standard_substitutions
from .progress import say
from .tracking import get_tracker
from .validation import json_parameters

if TYPE_CHECKING:
    from .caching import RunCache
    from .composition import Invocation
    from .runner import PipelineDefinition


class RunTracker(StepTracker, Protocol):
    """What orchestrating a run needs of the tracker: the steps' needs, and flushing."""

    def flush(self) -> int:
        """Wait (bounded) until NATS has every event; the stream sequence of the last."""
        ...


class InProcessRunner:
    """Runs a pipeline's steps one after another in this process, in dependency order.

    ``tracker`` is where events and artifacts go; by default this process's tracker
    (``cairn.tracking.get_tracker()``), connected on the first run.
    """

    def __init__(self, tracker: RunTracker | None = None) -> None:
        self._tracker = tracker

    def run(self, pipeline: PipelineDefinition, parameters: dict[str, Any]) -> PipelineRun:
        """Run ``pipeline`` with ``parameters`` here, now; raise the failing step's exception."""
        tracker = self._tracker if self._tracker is not None else get_tracker()
        orchestration = _Orchestration(pipeline, parameters, tracker)
        return orchestration.run(compose(pipeline, parameters))  # composing records nothing


def compose(pipeline: PipelineDefinition, parameters: dict[str, Any]) -> Composition:
    """The invocations ``pipeline``'s function makes on ``parameters``, ``after=`` resolved."""
    composition = Composition(pipeline.name)
    token = composing(composition)
    try:
        pipeline.func(**parameters)
    finally:
        end_composing(token)
    composition.order()  # unknown or cyclic after= fails here
    return composition


class _Orchestration:
    """One run of a pipeline: its identity, its events, and what its steps produced."""

    def __init__(
        self, pipeline: PipelineDefinition, parameters: dict[str, Any], tracker: RunTracker
    ) -> None:
        self.pipeline = pipeline
        self.tracker = tracker
        self.json_parameters = json_parameters(parameters, owner=f"pipeline '{pipeline.name}'")
        self.started_at = utcnow()
        substitutions = {**standard_substitutions(self.started_at), **pipeline.substitutions}
        self.context = RunContext(
            pipeline_name=pipeline.name,
            run_id=new_id(),
            run_name=_run_name(pipeline, substitutions),
            substitutions=substitutions,
        )
        self.produced: dict[tuple[str, str], StepOutput] = {}
        self.executed: dict[str, ExecutedStep] = {}

    def run(self, composition: Composition) -> PipelineRun:
        order = composition.order()
        context = self.context
        cache = self.run_cache(order)  # before anything is sent: its one lookup goes first
        self.tracker.publish(
            RunStarted(
                run_id=context.run_id,
                run_name=context.run_name,
                pipeline_name=self.pipeline.name,
                started_at=self.started_at,
                parameters=self.json_parameters,
                substitutions=context.substitutions,
                enable_cache=self.pipeline.enable_cache,
                step_names=[invocation.id for invocation in order],
            )
        )
        say(f"Initiating a new run for the pipeline: {self.pipeline.name} ({context.run_name}).")
        if self.pipeline.enable_cache is False:
            say(f"Caching is disabled by default for {self.pipeline.name}.")
        executor = StepExecutor(self.tracker, context, cache)
        t0 = time.perf_counter()
        for invocation in order:
            try:
                executed = executor.execute(invocation, self.inputs_of(invocation))
            except StepFailure as failure:
                self.fail(failure, time.perf_counter() - t0)
                raise failure.error from None
            self.executed[invocation.id] = executed
            for output in executed.outputs:
                self.produced[(invocation.id, output.output_name)] = output
        duration = time.perf_counter() - t0
        cached = cache is not None and cache.all_hit()
        outcome = RunOutcome.CACHED if cached else RunOutcome.COMPLETED
        self.tracker.publish(
            RunFinished(run_id=context.run_id, status=outcome, duration_s=duration)
        )
        if cached:
            say(f"All steps of pipeline run {context.run_name} were cached.")
        say(f"Pipeline run {context.run_name} has finished in {duration:.3f}s.")
        self.tracker.flush()
        return self.result(duration, RunStatus(outcome))

    def run_cache(self, order: list[Invocation]) -> RunCache | None:
        """The run's cache, its steps planned and their entries asked for at once; None if
        the tracker has no cache to ask."""
        backend = self.tracker.cache_backend()
        if backend is None:
            return None
        from .caching import RunCache

        cache = RunCache(
            backend,
            pipeline_name=self.pipeline.name,
            run_id=self.context.run_id,
            run_name=self.context.run_name,
            enable_cache=self.pipeline.enable_cache,
            policy=self.pipeline.cache_policy,
            substitutions=self.context.substitutions,
            flush_timeout=self.tracker.flush_timeout,
        )
        cache.plan(order)
        cache.prefetch()
        return cache

    def inputs_of(self, invocation: Invocation) -> dict[str, StepInput]:
        """The artifacts ``invocation`` reads, by argument: upstream outputs, and versions
        from outside the pipeline, loaded when the step uses them.

        An ExternalArtifact is saved the first time a step needs it (once per object, then
        reused); if that fails, the step fails. The run keeps each outside version (under
        the key ``("", id)``, which no step has) so the run it returns shows them.
        """
        inputs: dict[str, StepInput] = {}
        for name, value in invocation.arguments.items():
            if isinstance(value, OutputHandle):
                inputs[name] = self.produced[(value.invocation_id, value.key)].as_input()
            elif isinstance(value, ExternalInput):
                if value.artifact is not None:
                    try:
                        version = save_external(value.artifact, self.tracker)
                    except Exception as error:
                        raise StepFailure(invocation.id, error) from error
                else:
                    assert value.version is not None
                    version = value.version
                outside = self.produced.setdefault(
                    ("", version.id), ReusedOutput(version, version.name, version.name)
                )
                inputs[name] = outside.as_input()
        return inputs

    def fail(self, failure: StepFailure, duration: float) -> None:
        """Record the run as failed by ``failure``'s step, and wait for NATS to have it."""
        self.tracker.publish(
            RunFinished(
                run_id=self.context.run_id,
                status=RunOutcome.FAILED,
                duration_s=duration,
                error=error_summary(failure.error),
                failed_step=failure.step_name,
            )
        )
        self.tracker.flush()

    def result(self, duration: float, status: RunStatus) -> PipelineRun:
        """The finished run, with each step's inputs and outputs as artifact versions."""
        versions = {p.artifact_version_id: p.version() for p in self.produced.values()}
        steps = {}
        for name, executed in self.executed.items():
            step_run = executed.step_run
            step_run.outputs = {p.key: versions[p.artifact_version_id] for p in executed.outputs}
            step_run.inputs = {
                k: versions[i] if i in versions else executed.loaded[i]
                for k, i in executed.inputs.items()
            }
            steps[name] = step_run
        return PipelineRun(
            id=self.context.run_id,
            name=self.context.run_name,
            pipeline_name=self.pipeline.name,
            status=status,
            config=RunConfig(
                substitutions=self.context.substitutions,
                parameters=self.json_parameters,
                enable_cache=self.pipeline.enable_cache,
            ),
            steps=steps,
            started_at=self.started_at,
            duration_s=duration,
        )


def _run_name(pipeline: PipelineDefinition, substitutions: dict[str, str]) -> str:
    """The run's name: ``run_name`` resolved, or ``{pipeline}-{date}-{time}``; checked."""
    if pipeline.run_name is None:
        name = f"{pipeline.name}-{substitutions['date']}-{substitutions['time']}"
    else:
        name = resolve_name(pipeline.run_name, substitutions, step="(run name)", output="run_name")
    return check_run_name(name, pipeline=pipeline.name)
