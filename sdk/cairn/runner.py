"""The in-process runner: executes a pipeline's steps in order in this process.

Every fact goes out as an event (run.started, step.started, artifact.materialized,
step.finished / step.failed, run.finished); outputs are passed to downstream
steps in memory and stored through their materializers.
"""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from concurrent.futures import Future
from typing import Any

import msgspec
from cairn_events import (
    ArtifactMaterialized,
    RunFinished,
    RunStarted,
    StepFailed,
    StepFinished,
    StepStarted,
    label_problem,
    new_id,
    utcnow,
)

from .composition import Composition, Invocation, OutputHandle, composing, end_composing
from .context import StepContext, reset_step_context, set_step_context
from .errors import ArtifactNameError, ArtifactVersionError, StepTypeError
from .models import ArtifactVersion, PipelineRun, RunConfig, StepConfig, StepRun
from .naming import (
    OutputSpec,
    check_artifact_name,
    check_run_name,
    requested_version,
    resolve_name,
    shown,
    standard_substitutions,
)
from .outputs import save_outputs
from .pipelines import Pipeline
from .tracking import Tracker, get_tracker
from .validation import check_type, json_parameters

#: What a failed step's event keeps of its error and traceback (events stay far below 1 MB).
_MAX_ERROR_CHARS = 8_000
_MAX_TRACEBACK_CHARS = 64_000


class _Produced(msgspec.Struct):
    """An output held in memory for downstream steps, with its pending version claim."""

    value: Any
    key: str
    claim: Future[ArtifactMaterialized]
    template: ArtifactMaterialized

    @property
    def artifact_version_id(self) -> str:
        return self.template.artifact_version_id

    def stored(self) -> ArtifactMaterialized:
        """The claimed version.

        While NATS is away (the claim waits in the spool) the version reads "pending";
        if NATS refused the claim (it is quarantined) it reads "refused".
        """
        if not self.claim.done():
            return msgspec.structs.replace(self.template, version="pending")
        if self.claim.exception() is not None:
            return msgspec.structs.replace(self.template, version="refused")
        return self.claim.result()


class _StepFailure(Exception):
    def __init__(self, step_name: str, error: BaseException) -> None:
        self.step_name, self.error = step_name, error


class _RunExecution:
    def __init__(self, pipeline: Pipeline, parameters: dict[str, Any], tracker: Tracker) -> None:
        self.pipeline = pipeline
        self.tracker = tracker
        self.parameters = parameters
        self.json_parameters = json_parameters(parameters, owner=f"pipeline '{pipeline.name}'")
        self.run_id = new_id()
        self.started_at = utcnow()
        self.substitutions = {**standard_substitutions(self.started_at), **pipeline.substitutions}
        self.run_name = self._run_name()
        self.produced: dict[tuple[str, str], _Produced] = {}
        self.step_runs: dict[str, StepRun] = {}
        self.step_outputs: dict[str, list[_Produced]] = {}
        self.step_inputs: dict[str, dict[str, str]] = {}

    def _run_name(self) -> str:
        template = self.pipeline.run_name
        if template is None:
            name = f"{self.pipeline.name}-{self.substitutions['date']}-{self.substitutions['time']}"
        else:
            name = resolve_name(template, self.substitutions, step="(run name)", output="run_name")
        return check_run_name(name, pipeline=self.pipeline.name)

    def compose(self) -> Composition:
        composition = Composition(self.pipeline.name)
        token = composing(composition)
        try:
            self.pipeline.func(**self.parameters)
        finally:
            end_composing(token)
        composition.order()  # after= is resolved: fail before anything is recorded
        return composition

    def run(self) -> PipelineRun:
        composition = self.compose()
        order = composition.order()
        self.tracker.publish(
            RunStarted(
                run_id=self.run_id,
                run_name=self.run_name,
                pipeline_name=self.pipeline.name,
                started_at=self.started_at,
                parameters=self.json_parameters,
                substitutions=self.substitutions,
                enable_cache=self.pipeline.enable_cache,
                step_names=[inv.id for inv in order],
            )
        )
        _say(f"Initiating a new run for the pipeline: {self.pipeline.name} ({self.run_name}).")
        t0 = time.perf_counter()
        for invocation in order:
            try:
                self.execute(invocation)
            except _StepFailure as failure:
                error = failure.error
                self.tracker.publish(
                    RunFinished(
                        run_id=self.run_id,
                        status="failed",
                        duration_s=time.perf_counter() - t0,
                        error=_recordable(f"{type(error).__name__}: {error}", _MAX_ERROR_CHARS),
                        failed_step=failure.step_name,
                    )
                )
                self.tracker.flush()
                raise error from None
        duration = time.perf_counter() - t0
        self.tracker.publish(
            RunFinished(run_id=self.run_id, status="completed", duration_s=duration)
        )
        _say(f"Pipeline run {self.run_name} has finished in {duration:.3f}s.")
        self.tracker.flush()
        return self.result(duration)

    def execute(self, invocation: Invocation) -> None:
        step = invocation.step
        step_run_id = new_id()
        substitutions = {**self.substitutions, **step.substitutions}
        kwargs: dict[str, Any] = {}
        inputs: dict[str, str] = {}
        parameters = invocation.parameters
        for name, value in invocation.arguments.items():
            if isinstance(value, OutputHandle):
                produced = self.produced[(value.invocation_id, value.key)]
                kwargs[name] = produced.value
                inputs[name] = produced.artifact_version_id
            else:
                kwargs[name] = value  # a parameter, coerced when the pipeline was composed
        self.tracker.publish(
            StepStarted(
                run_id=self.run_id,
                step_run_id=step_run_id,
                step_name=invocation.id,
                function=step.source,
                parameters=parameters,
                inputs=inputs,
                substitutions=substitutions,
                enable_cache=step.enable_cache,
                upstream_steps=invocation.upstream,
            )
        )
        _say(f"Step {invocation.id} has started.")
        t0 = time.perf_counter()
        token = set_step_context(
            StepContext(
                pipeline_name=self.pipeline.name,
                run_id=self.run_id,
                run_name=self.run_name,
                step_name=invocation.id,
                step_run_id=step_run_id,
                substitutions=substitutions,
            )
        )
        try:
            for name in inputs:
                kwargs[name] = step.coerce(
                    name, kwargs[name], invocation_id=invocation.id, what=f"input '{name}'"
                )
            names = self.output_names(invocation, substitutions)  # bad names fail before the work
            result = step.func(**kwargs)
            outputs = self.store_outputs(invocation, step_run_id, names, result)
        except BaseException as error:  # the run fails with the step, whatever it raised
            duration = time.perf_counter() - t0
            self.tracker.publish(
                StepFailed(
                    run_id=self.run_id,
                    step_run_id=step_run_id,
                    step_name=invocation.id,
                    duration_s=duration,
                    error_type=type(error).__qualname__,
                    error_message=_recordable(str(error), _MAX_ERROR_CHARS),
                    traceback=_recordable(
                        "".join(traceback.format_exception(error)), _MAX_TRACEBACK_CHARS
                    ),
                )
            )
            _say(
                f"Step {invocation.id} failed after {duration:.3f}s: {type(error).__name__}: {error}"
            )
            raise _StepFailure(invocation.id, error) from error
        finally:
            reset_step_context(token)
        duration = time.perf_counter() - t0
        self.tracker.publish(
            StepFinished(
                run_id=self.run_id,
                step_run_id=step_run_id,
                step_name=invocation.id,
                duration_s=duration,
                outputs={p.key: p.artifact_version_id for p in outputs},
            )
        )
        _say(f"Step {invocation.id} has finished in {duration:.3f}s.")
        self.step_outputs[invocation.id] = outputs
        self.step_runs[invocation.id] = StepRun(
            id=step_run_id,
            name=invocation.id,
            run_id=self.run_id,
            status="completed",
            function=step.source,
            config=StepConfig(
                substitutions=substitutions, enable_cache=step.enable_cache, parameters=parameters
            ),
            duration_s=duration,
        )
        self.step_inputs[invocation.id] = inputs

    def output_names(self, invocation: Invocation, substitutions: dict[str, str]) -> dict[str, str]:
        """The artifact name of each output of ``invocation``, resolved and checked."""
        names: dict[str, str] = {}
        for spec in invocation.step.outputs:
            if spec.name_template is not None:
                name = resolve_name(
                    spec.name_template, substitutions, step=invocation.id, output=spec.key
                )
            else:
                name = f"{self.pipeline.name}::{invocation.id}::{spec.key}"
            check_artifact_name(name, step=invocation.id, output=spec.key)
            try:
                requested_version(spec.config.version if spec.config else None, name)
            except ArtifactVersionError as exc:
                raise ArtifactVersionError(
                    f"Output {shown(spec.key)} of step '{invocation.id}': {exc}"
                ) from None
            for tag in spec.config.tags if spec.config else ():
                if (problem := label_problem(tag)) is not None:
                    raise ArtifactNameError(
                        f"Tag {shown(tag)} of output {shown(spec.key)} in step '{invocation.id}' "
                        f"{problem}; tags follow the rules of artifact names"
                    )
            if name in names.values():
                raise ArtifactNameError(
                    f"Step '{invocation.id}' gives two outputs the artifact name '{name}'; "
                    "give each output its own name"
                )
            names[spec.key] = name
        return names

    def store_outputs(
        self, invocation: Invocation, step_run_id: str, names: dict[str, str], result: Any
    ) -> list[_Produced]:
        specs = invocation.step.outputs
        values = _split_outputs(invocation.id, specs, result)
        for spec, value in zip(specs, values, strict=True):
            check_type(value, spec.annotation, step=invocation.id, what=f"output '{spec.key}'")
        saved = save_outputs(
            self.tracker.store, invocation.step, step_run_id, self.run_id, specs, values, names
        )
        produced = []
        for spec, value, (template, requested) in zip(specs, values, saved, strict=True):
            claim = self.tracker.claim_version(template, requested)
            if requested is not None:  # an explicit version that is taken fails the step now
                # while NATS is away the version reads "pending" until it is back
                with contextlib.suppress(TimeoutError):
                    claim.result(timeout=self.tracker.flush_timeout)
            key = names[spec.key] if spec.is_named else spec.key
            item = _Produced(value, key, claim, template)
            self.produced[(invocation.id, spec.key)] = item
            produced.append(item)
        return produced

    def result(self, duration: float) -> PipelineRun:
        versions = {
            p.artifact_version_id: _artifact_version(p.stored()) for p in self.produced.values()
        }
        for name, step_run in self.step_runs.items():
            step_run.outputs = {
                p.key: versions[p.artifact_version_id] for p in self.step_outputs[name]
            }
            step_run.inputs = {k: versions[i] for k, i in self.step_inputs[name].items()}
        return PipelineRun(
            id=self.run_id,
            name=self.run_name,
            pipeline_name=self.pipeline.name,
            status="completed",
            config=RunConfig(
                substitutions=self.substitutions,
                parameters=self.json_parameters,
                enable_cache=self.pipeline.enable_cache,
            ),
            steps=self.step_runs,
            started_at=self.started_at,
            duration_s=duration,
        )


def _split_outputs(step_name: str, specs: list[OutputSpec], result: Any) -> list[Any]:
    if len(specs) == 0:
        if result is not None:
            raise StepTypeError(
                step_name,
                "return value",
                "None, as the step declares no outputs (-> None)",
                _type_name(result),
                "return nothing, or annotate what the step returns, e.g. -> int",
            )
        return []
    if len(specs) == 1:
        return [result]
    if not isinstance(result, (tuple, list)) or len(result) != len(specs):
        got = f"{len(result)} values" if isinstance(result, (tuple, list)) else _kind(result)
        raise StepTypeError(
            step_name,
            "return value",
            f"{len(specs)} outputs ({', '.join(s.key for s in specs)})",
            got,
        )
    return list(result)


def _kind(value: Any) -> str:
    return f"one {_type_name(value)}"


def _type_name(value: Any) -> str:
    return type(value).__qualname__


def _artifact_version(event: ArtifactMaterialized) -> ArtifactVersion:
    return ArtifactVersion(
        id=event.artifact_version_id,
        name=event.name,
        version=event.version,
        uri=event.uri,
        type=event.artifact_type,
        data_type=event.data_type,
        materializer=event.materializer,
        content_hash=event.content_hash,
        size=event.size,
        created_at=event.occurred_at,
        tags=list(event.tags),
        producer_run_id=event.producer_run_id,
        producer_step_run_id=event.producer_step_run_id,
        output_name=event.output_name,
        visualizations=dict(event.visualizations),
    )


def _recordable(text: str, limit: int) -> str:
    """``text`` as an event can hold it: NUL (Postgres refuses it) escaped, at most ``limit``."""
    text = text.replace("\x00", "\\x00")
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}\n... ({len(text):,} characters in all) ...\n{text[-limit // 2 :]}"


def _say(line: str) -> None:
    """Print a progress line; a closed or broken stdout (``| head``) must not stop the run."""
    with contextlib.suppress(OSError, ValueError):  # BrokenPipeError, or a closed file
        sys.stdout.write(line + "\n")


def run_pipeline(pipeline: Pipeline, parameters: dict[str, Any]) -> PipelineRun:
    """Run ``pipeline`` with ``parameters`` here, now; raise the failing step's exception."""
    return _RunExecution(pipeline, parameters, get_tracker()).run()
