"""The step executor: runs one invocation of a step and records what it did.

Its stages, in order, are methods of :class:`StepExecutor`:

1. ``start``: bind the arguments (upstream values and parameters), publish step.started;
2. ``coerce_inputs``: validate and coerce the upstream values (pydantic, lax, as ZenML);
3. ``output_names``: resolve and check the artifact name, version and tags of each output,
   so a bad one fails the step before its code runs;
4. ``call``: call the step's function, with ``get_step_context()`` set;
5. ``split_outputs``: split the return value into outputs and check their types (strict);
6. ``store_outputs``: materialize each output and claim its version;
7. ``finish`` (step.finished) or ``fail`` (step.failed, then :class:`StepFailure`).

A cache lookup is one more stage between 3 and 4. The executor gets the tracker
(or anything with its :class:`StepTracker` methods) in its constructor and never
the process's global one, and everything else in arguments: the invocation, the
values of its inputs and the run's :class:`RunContext`. It keeps no state between
steps and returns what the step produced, so a worker process (a Dask runner,
later) can run one step the way the in-process runner does.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from cairn_events import (
    ArtifactMaterialized,
    Event,
    StepFailed,
    StepFinished,
    StepStarted,
    StepStatus,
    label_problem,
    new_id,
)

from .composition import OutputHandle
from .context import StepContext, reset_step_context, set_step_context
from .errors import ArtifactNameError, CairnError, StepTypeError
from .failures import StepFailure, error_message, traceback_text
from .models import StepConfig, StepRun
from .naming import check_artifact_name, requested_version, resolve_name, shown
from .outputs import save_outputs
from .progress import say
from .validation import check_type

if TYPE_CHECKING:
    from .artifact_stores import ArtifactStore
    from .composition import Invocation
    from .naming import OutputSpec


class StepTracker(Protocol):
    """What executing a step needs of the tracker (``cairn.tracking.Tracker`` is one)."""

    store: ArtifactStore
    #: How long an explicit version waits for its claim before it reads "pending".
    flush_timeout: float

    def publish(self, event: Event) -> None: ...

    def claim_version(
        self, template: ArtifactMaterialized, requested: str | None
    ) -> Future[ArtifactMaterialized]: ...


class RunContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a step needs to know of the run it is part of."""

    pipeline_name: str
    run_id: str
    run_name: str
    #: The run's substitutions (``date``, ``time`` and the pipeline's); a step's go over them.
    substitutions: dict[str, str]


class StepInput(msgspec.Struct, frozen=True):
    """An upstream output handed to a step: its value and the artifact version holding it."""

    value: Any
    artifact_version_id: str


class ProducedOutput(msgspec.Struct):
    """A stored output: its value (for downstream steps) and its pending version claim."""

    value: Any
    #: The key the run shows it under: its artifact name if named, else output / output_N.
    key: str
    claim: Future[ArtifactMaterialized]
    template: ArtifactMaterialized

    @property
    def artifact_version_id(self) -> str:
        return self.template.artifact_version_id

    @property
    def output_name(self) -> str:
        """The output's key in its step (``output``, ``output_N`` or its name template)."""
        return self.template.output_name or self.key

    def as_input(self) -> StepInput:
        return StepInput(self.value, self.template.artifact_version_id)

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


class OutputTarget(msgspec.Struct, frozen=True):
    """Where an output goes: its artifact name and the version it asks for (None: next)."""

    name: str
    requested: str | None


class ExecutedStep(msgspec.Struct):
    """What executing a step produced: its record, its outputs and the versions it read."""

    step_run: StepRun
    outputs: list[ProducedOutput]
    #: The artifact version id each upstream input was read from, by argument.
    inputs: dict[str, str]


class _Attempt(msgspec.Struct):
    """One execution of an invocation, from step.started on."""

    invocation: Invocation
    step_run_id: str
    substitutions: dict[str, str]
    kwargs: dict[str, Any]
    inputs: dict[str, str]
    started: float = 0.0


class StepExecutor:
    """Executes step invocations of one run, publishing through ``tracker``."""

    def __init__(self, tracker: StepTracker, run: RunContext) -> None:
        self.tracker = tracker
        self.run = run

    def execute(self, invocation: Invocation, inputs: Mapping[str, StepInput]) -> ExecutedStep:
        """Run ``invocation`` on ``inputs`` (the upstream values it reads, by argument).

        Raises :class:`StepFailure` carrying the step's own exception if it fails.
        """
        attempt = self.start(invocation, inputs)
        token = set_step_context(self.step_context(attempt))
        try:
            kwargs = self.coerce_inputs(attempt)
            targets = self.output_names(attempt)  # bad names fail before the work
            result = self.call(attempt, kwargs)
            values = self.split_outputs(attempt, result)
            outputs = self.store_outputs(attempt, targets, values)
        except BaseException as error:  # the run fails with the step, whatever it raised
            self.fail(attempt, error)
            raise StepFailure(invocation.id, error) from error
        finally:
            reset_step_context(token)
        return self.finish(attempt, outputs)

    # -- stages ------------------------------------------------------------------------

    def start(self, invocation: Invocation, inputs: Mapping[str, StepInput]) -> _Attempt:
        """Bind the call's arguments and publish step.started."""
        step = invocation.step
        kwargs: dict[str, Any] = {}
        read: dict[str, str] = {}
        for name, value in invocation.arguments.items():
            given = inputs.get(name)
            if given is None:
                if isinstance(value, OutputHandle):
                    raise CairnError(
                        f"Step '{invocation.id}' reads {value!r} as argument '{name}', but the "
                        "runner handed it no value for it; pass the upstream output in inputs"
                    )
                kwargs[name] = value  # a parameter, coerced when the pipeline was composed
            else:
                kwargs[name] = given.value
                read[name] = given.artifact_version_id
        attempt = _Attempt(
            invocation=invocation,
            step_run_id=new_id(),
            substitutions={**self.run.substitutions, **step.substitutions},
            kwargs=kwargs,
            inputs=read,
        )
        self.tracker.publish(
            StepStarted(
                run_id=self.run.run_id,
                step_run_id=attempt.step_run_id,
                step_name=invocation.id,
                function=step.source,
                parameters=invocation.parameters,
                inputs=read,
                substitutions=attempt.substitutions,
                enable_cache=step.enable_cache,
                upstream_steps=invocation.upstream,
            )
        )
        say(f"Step {invocation.id} has started.")
        attempt.started = time.perf_counter()
        return attempt

    def step_context(self, attempt: _Attempt) -> StepContext:
        """What ``get_step_context()`` answers while the step runs."""
        return StepContext(
            pipeline_name=self.run.pipeline_name,
            run_id=self.run.run_id,
            run_name=self.run.run_name,
            step_name=attempt.invocation.id,
            step_run_id=attempt.step_run_id,
            substitutions=attempt.substitutions,
        )

    def coerce_inputs(self, attempt: _Attempt) -> dict[str, Any]:
        """The arguments with each upstream value coerced to its annotation (pydantic, lax)."""
        invocation = attempt.invocation
        kwargs = attempt.kwargs
        for name in attempt.inputs:
            kwargs[name] = invocation.step.coerce(
                name, kwargs[name], invocation_id=invocation.id, what=f"input '{name}'"
            )
        return kwargs

    def output_names(self, attempt: _Attempt) -> dict[str, OutputTarget]:
        """The artifact name and requested version of each output, resolved and checked."""
        invocation = attempt.invocation
        targets: dict[str, OutputTarget] = {}
        names: set[str] = set()
        for spec in invocation.step.outputs:
            if spec.name_template is not None:
                name = resolve_name(
                    spec.name_template, attempt.substitutions, step=invocation.id, output=spec.key
                )
            else:
                name = f"{self.run.pipeline_name}::{invocation.id}::{spec.key}"
            check_artifact_name(name, step=invocation.id, output=spec.key)
            config = spec.config
            requested = requested_version(
                config.version if config else None, name, step=invocation.id, output=spec.key
            )
            for tag in config.tags if config else ():
                if (problem := label_problem(tag)) is not None:
                    raise ArtifactNameError(
                        f"Tag {shown(tag)} of output {shown(spec.key)} in step '{invocation.id}' "
                        f"{problem}; tags follow the rules of artifact names"
                    )
            if name in names:
                raise ArtifactNameError(
                    f"Step '{invocation.id}' gives two outputs the artifact name '{name}'; "
                    "give each output its own name"
                )
            names.add(name)
            targets[spec.key] = OutputTarget(name, requested)
        return targets

    def call(self, attempt: _Attempt, kwargs: dict[str, Any]) -> Any:
        """Call the step's function: the step's own work."""
        return attempt.invocation.step.func(**kwargs)

    def split_outputs(self, attempt: _Attempt, result: Any) -> list[Any]:
        """The step's return value as one value per declared output, each type-checked."""
        invocation = attempt.invocation
        specs = invocation.step.outputs
        values = _split(invocation.id, specs, result)
        for spec, value in zip(specs, values, strict=True):
            check_type(value, spec.annotation, step=invocation.id, what=f"output '{spec.key}'")
        return values

    def store_outputs(
        self, attempt: _Attempt, targets: dict[str, OutputTarget], values: list[Any]
    ) -> list[ProducedOutput]:
        """Materialize each output and claim its version.

        An explicit version waits (at most ``flush_timeout``) for its claim, so one that
        is taken fails the step now; while NATS is away it reads "pending" until it is back.
        """
        invocation = attempt.invocation
        specs = invocation.step.outputs
        names = {key: target.name for key, target in targets.items()}
        templates = save_outputs(
            self.tracker.store,
            invocation.step,
            attempt.step_run_id,
            self.run.run_id,
            specs,
            values,
            names,
        )
        produced = []
        for spec, value, template in zip(specs, values, templates, strict=True):
            requested = targets[spec.key].requested
            claim = self.tracker.claim_version(template, requested)
            if requested is not None:
                with contextlib.suppress(TimeoutError):
                    claim.result(timeout=self.tracker.flush_timeout)
            key = names[spec.key] if spec.is_named else spec.key
            produced.append(ProducedOutput(value, key, claim, template))
        return produced

    def finish(self, attempt: _Attempt, outputs: list[ProducedOutput]) -> ExecutedStep:
        """Publish step.finished; the step's record, its outputs and what it read."""
        invocation = attempt.invocation
        step = invocation.step
        duration = time.perf_counter() - attempt.started
        self.tracker.publish(
            StepFinished(
                run_id=self.run.run_id,
                step_run_id=attempt.step_run_id,
                step_name=invocation.id,
                duration_s=duration,
                outputs={p.key: p.artifact_version_id for p in outputs},
            )
        )
        say(f"Step {invocation.id} has finished in {duration:.3f}s.")
        step_run = StepRun(
            id=attempt.step_run_id,
            name=invocation.id,
            run_id=self.run.run_id,
            status=StepStatus.COMPLETED,
            function=step.source,
            config=StepConfig(
                substitutions=attempt.substitutions,
                enable_cache=step.enable_cache,
                parameters=invocation.parameters,
            ),
            duration_s=duration,
        )
        return ExecutedStep(step_run, outputs, attempt.inputs)

    def fail(self, attempt: _Attempt, error: BaseException) -> None:
        """Publish step.failed for ``error``."""
        invocation = attempt.invocation
        duration = time.perf_counter() - attempt.started
        self.tracker.publish(
            StepFailed(
                run_id=self.run.run_id,
                step_run_id=attempt.step_run_id,
                step_name=invocation.id,
                duration_s=duration,
                error_type=type(error).__qualname__,
                error_message=error_message(error),
                traceback=traceback_text(error),
            )
        )
        say(f"Step {invocation.id} failed after {duration:.3f}s: {type(error).__name__}: {error}")


def _split(step_name: str, specs: list[OutputSpec], result: Any) -> list[Any]:
    """``result`` as one value per output: as it is for one, unpacked for several."""
    if len(specs) == 0:
        if result is not None:
            raise StepTypeError(
                step_name,
                "return value",
                "None, as the step declares no outputs (-> None)",
                type(result).__qualname__,
                "return nothing, or annotate what the step returns, e.g. -> int",
            )
        return []
    if len(specs) == 1:
        return [result]
    if not isinstance(result, (tuple, list)) or len(result) != len(specs):
        got = (
            f"{len(result)} values"
            if isinstance(result, (tuple, list))
            else f"one {type(result).__qualname__}"
        )
        raise StepTypeError(
            step_name,
            "return value",
            f"{len(specs)} outputs ({', '.join(s.key for s in specs)})",
            got,
        )
    return list(result)
