"""The step executor: runs one invocation of a step and records what it did.

Its stages, in order, are methods of :class:`StepExecutor`:

1. ``start``: bind the arguments (upstream inputs and parameters), publish step.started;
2. ``output_names``: resolve and check the artifact name, version and tags of each output,
   so a bad one fails the step before its code runs;
3. ``look_up_cache``: decide from the step's cache key (:mod:`cairn.caching`): a hit goes
   to ``serve_cached`` (cache.hit; no input is loaded, nothing is stored), a miss is
   recorded with why (cache.missed) and goes on;
4. ``coerce_inputs``: load and coerce the upstream values (pydantic, lax, as ZenML);
5. ``call``: call the step's function, with ``get_step_context()`` set;
6. ``split_outputs``: split the return value into outputs and check their types (strict);
7. ``store_outputs``: materialize each output and claim its version;
8. ``finish`` (step.finished, then its cache entry: cache.stored) or ``fail``
   (step.failed, its lease given back, then :class:`StepFailure`).

The executor gets the tracker
(or anything with its :class:`StepTracker` methods) in its constructor and never
the process's global one, and everything else in arguments: the invocation, the
values of its inputs and the run's :class:`RunContext`. It keeps no state between
steps and returns what the step produced, so a worker process (a Dask runner,
later) can run one step the way the in-process runner does.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from cairn_events import (
    ArtifactMaterialized,
    CacheHit,
    CacheMissed,
    Event,
    StepFailed,
    StepFinished,
    StepStarted,
    StepStatus,
    new_id,
)

from .caching import Hit, Miss, miss_explained
from .composition import ExternalInput, OutputHandle
from .context import RunningStep, StepContext, reset_step_context, set_step_context
from .errors import ArtifactNameError, ArtifactVersionError, CairnError, StepTypeError
from .failures import StepFailure, error_message, traceback_text
from .models import ArtifactVersion, StepConfig, StepRun
from .naming import check_artifact_name, check_tags, requested_version, resolve_name, shown
from .outputs import save_outputs
from .progress import say
from .validation import check_type

if TYPE_CHECKING:
    from .artifact_stores import ArtifactStore
    from .caching import CacheBackend, RunCache
    from .composition import Invocation
    from .naming import OutputSpec


class StepTracker(Protocol):
    """What executing a step needs of the tracker (``cairn.tracking.Tracker`` is one)."""

    store: ArtifactStore
    #: How long an explicit version waits for its claim before it reads "pending".
    flush_timeout: float

    def publish(self, event: Event) -> None: ...

    def hold_sending(self) -> None:
        """Keep the next events (a step served from cache) until released or flushed."""
        ...

    def release_sending(self) -> None: ...

    def claim_version(
        self, template: ArtifactMaterialized, requested: str | None
    ) -> Future[ArtifactMaterialized]: ...

    def cache_backend(self) -> CacheBackend | None:
        """Where the cache looks entries up and leases keys; None: no caching."""
        ...


class RunContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a step needs to know of the run it is part of."""

    pipeline_name: str
    run_id: str
    run_name: str
    #: The run's substitutions (``date``, ``time`` and the pipeline's); a step's go over them.
    substitutions: dict[str, str]


class StepInput:
    """An artifact version handed to a step: its id, its content hash and its value.

    The value is given, or loaded on first use by ``load`` (an upstream output served from
    cache, or an artifact version from an earlier run): a step served from cache in turn
    never loads its inputs.
    """

    __slots__ = ("_load", "_value", "artifact_version_id", "content_hash")

    def __init__(
        self,
        artifact_version_id: str,
        content_hash: str,
        *,
        value: Any = None,
        load: Callable[[], Any] | None = None,
    ) -> None:
        self.artifact_version_id = artifact_version_id
        self.content_hash = content_hash
        self._value = value
        self._load = load

    @property
    def value(self) -> Any:
        if self._load is not None:
            self._value, self._load = self._load(), None
        return self._value

    def __repr__(self) -> str:
        return f"<input {self.artifact_version_id} ({self.content_hash[:12]})>"


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
        template = self.template
        return StepInput(template.artifact_version_id, template.content_hash, value=self.value)

    def version(self) -> ArtifactVersion:
        """The stored version as the run shows it (see :meth:`stored`)."""
        return ArtifactVersion(**self.stored().record())

    def version_resolver(self, timeout: float) -> Callable[[], ArtifactVersion]:
        """What gives the claimed version later: waits at most ``timeout`` for the claim,
        raises if it was refused or is still pending then."""
        claim = self.claim

        def resolve() -> ArtifactVersion:
            return ArtifactVersion(**claim.result(timeout).record())

        return resolve

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


class ReusedOutput:
    """An output served from cache: a version an earlier step run stored, loaded on use."""

    __slots__ = ("_version", "key", "output_name")

    def __init__(self, version: ArtifactVersion, key: str, output_name: str) -> None:
        self._version = version
        #: The key the run shows it under: its artifact name if named, else output / output_N.
        self.key = key
        self.output_name = output_name

    @property
    def artifact_version_id(self) -> str:
        return self._version.id

    def as_input(self) -> StepInput:
        version = self._version
        return StepInput(version.id, version.content_hash, load=version.load)

    def version(self) -> ArtifactVersion:
        return self._version

    def version_resolver(self, timeout: float) -> Callable[[], ArtifactVersion]:
        return self.version


#: What a step's outputs are: stored now, or served from cache.
StepOutput = ProducedOutput | ReusedOutput


class OutputTarget(msgspec.Struct, frozen=True):
    """Where an output goes: its artifact name and the version it asks for (None: next)."""

    name: str
    requested: str | None


class ExecutedStep(msgspec.Struct):
    """What executing a step produced: its record, its outputs and the versions it read."""

    step_run: StepRun
    outputs: list[StepOutput]
    #: The artifact version id each input was read from, by argument (and, for what the
    #: step loaded itself with load_artifact, by the key step.finished gives it).
    inputs: dict[str, str]
    #: The versions the step loaded itself, by id: the run shows them as they were read.
    loaded: dict[str, ArtifactVersion] = msgspec.field(default_factory=dict)


class _Attempt(msgspec.Struct):
    """One execution of an invocation, from step.started on."""

    invocation: Invocation
    step_run_id: str
    substitutions: dict[str, str]
    kwargs: dict[str, Any]
    inputs: dict[str, str]
    started: float = 0.0
    #: What load_artifact / save_artifact inside the step record (set with its context).
    running: RunningStep | None = None


class StepExecutor:
    """Executes step invocations of one run, publishing through ``tracker``."""

    def __init__(
        self, tracker: StepTracker, run: RunContext, cache: RunCache | None = None
    ) -> None:
        self.tracker = tracker
        self.run = run
        #: The run's cache (:mod:`cairn.caching`); None: no step is served or recorded.
        self.cache = cache

    def execute(self, invocation: Invocation, inputs: Mapping[str, StepInput]) -> ExecutedStep:
        """Run ``invocation`` on ``inputs`` (the upstream values it reads, by argument).

        Raises :class:`StepFailure` carrying the step's own exception if it fails.
        """
        if self.cache is not None:  # a step served from cache sends its events with the next
            self.tracker.hold_sending()
        attempt = self.start(invocation, inputs)
        token = set_step_context(self.step_context(attempt))
        miss: Miss | None = None
        try:
            targets = self.output_names(attempt)  # bad names fail before the work
            decision = self.look_up_cache(attempt, inputs)
            if isinstance(decision, Hit):
                return self.serve_cached(attempt, decision)
            self.tracker.release_sending()
            miss = decision
            kwargs = self.coerce_inputs(attempt)
            result = self.call(attempt, kwargs)
            values = self.split_outputs(attempt, result)
            try:
                outputs = self.store_outputs(attempt, targets, values)
            except ArtifactVersionError as taken:
                if miss is None or miss.compared_run is None:
                    raise
                # e.g. its explicit version is taken by the entry whose data was lost
                raise ArtifactVersionError(
                    f"{taken} The step computed because its cache entry could not be used: "
                    f"{'; '.join(miss.reasons)}."
                ) from None
        except BaseException as error:  # the run fails with the step, whatever it raised
            self.tracker.release_sending()
            self.fail(attempt, error)
            if miss is not None and self.cache is not None:
                self.cache.failed(miss, attempt.step_run_id)
            raise StepFailure(invocation.id, error) from error
        finally:
            reset_step_context(token)
        executed = self.finish(attempt, outputs)
        if miss is not None and self.cache is not None:
            self.cache.computed(miss, executed, invocation.id)
            step_run = executed.step_run
            step_run.cache_key = miss.cache_key
            step_run.cache_miss_reasons = list(miss.reasons)
            step_run.cache_compared_run = miss.compared_run
        return executed

    # -- stages ------------------------------------------------------------------------

    def start(self, invocation: Invocation, inputs: Mapping[str, StepInput]) -> _Attempt:
        """Bind the call's arguments and publish step.started."""
        step = invocation.step
        kwargs: dict[str, Any] = {}
        read: dict[str, str] = {}
        for name, value in invocation.arguments.items():
            given = inputs.get(name)
            if given is None:
                if isinstance(value, (OutputHandle, ExternalInput)):
                    raise CairnError(
                        f"Step '{invocation.id}' reads {value!r} as argument '{name}', but the "
                        "runner handed it no value for it; pass that artifact in inputs"
                    )
                kwargs[name] = value  # a parameter, coerced when the pipeline was composed
            else:
                kwargs[name] = given  # its value is loaded when the step runs (coerce_inputs)
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
        """What ``get_step_context()`` answers while the step runs, with the hook through
        which load_artifact and save_artifact inside it record what they read and stored."""
        invocation = attempt.invocation
        attempt.running = RunningStep(
            self.tracker, self.run, invocation, attempt.step_run_id, attempt.substitutions
        )
        return StepContext(
            pipeline_name=self.run.pipeline_name,
            run_id=self.run.run_id,
            run_name=self.run.run_name,
            step_name=invocation.id,
            step_run_id=attempt.step_run_id,
            substitutions=attempt.substitutions,
            output_names=[spec.key for spec in invocation.step.outputs],
            _running=attempt.running,
        )

    def look_up_cache(
        self, attempt: _Attempt, inputs: Mapping[str, StepInput]
    ) -> Hit | Miss | None:
        """Whether the step is served from cache (a Hit), or computes (a Miss, saying why).

        None when the run has no cache. A miss is recorded (cache.missed) with its reasons,
        and its line names what changed against the newest earlier entry.
        """
        if self.cache is None:
            return None
        invocation = attempt.invocation
        try:
            decision = self.cache.decide(invocation, dict(inputs), attempt.step_run_id)
        except Exception as error:  # the step fails with it; why-not-cached says so
            self._record_miss(attempt, "", [f"its cache key could not be computed: {error}"])
            raise
        if isinstance(decision, Hit):
            return decision
        self._record_miss(
            attempt,
            decision.cache_key,
            decision.reasons,
            compared_with=decision.compared_with,
            compared_run=decision.compared_run,
        )
        if decision.compared_run is not None:
            say(
                f"Step {invocation.id} is not cached: {miss_explained(decision.reasons, decision.compared_run)}"
            )
        return decision

    def _record_miss(
        self,
        attempt: _Attempt,
        cache_key: str,
        reasons: list[str],
        *,
        compared_with: str | None = None,
        compared_run: str | None = None,
    ) -> None:
        self.tracker.publish(
            CacheMissed(
                run_id=self.run.run_id,
                step_run_id=attempt.step_run_id,
                step_name=attempt.invocation.id,
                cache_key=cache_key,
                reasons=reasons,
                compared_with=compared_with,
                compared_run=compared_run,
            )
        )

    def serve_cached(self, attempt: _Attempt, hit: Hit) -> ExecutedStep:
        """Publish cache.hit: the step run is cached, its outputs the entry's versions."""
        invocation = attempt.invocation
        if hit.reused is not None:  # the same key earlier in this run
            earlier: ExecutedStep = hit.reused
            outputs: list[StepOutput] = list(earlier.outputs)
            source_run_id, source_step_run_id = self.run.run_id, earlier.step_run.id
            source_run = self.run.run_name
        else:
            entry = hit.entry
            assert entry is not None
            outputs = []
            declared = {spec.key for spec in invocation.step.outputs}
            for spec in invocation.step.outputs:
                version = entry.outputs[spec.key]
                key = version.name if spec.is_named else spec.key
                outputs.append(ReusedOutput(version, key, spec.key))
            for key, version in entry.outputs.items():  # what it saved with save_artifact
                if key not in declared:
                    outputs.append(ReusedOutput(version, key, key))
            source_run_id, source_step_run_id = entry.run_id, entry.step_run_id
            source_run = entry.run_name or entry.run_id
        self.tracker.publish(
            CacheHit(
                run_id=self.run.run_id,
                step_run_id=attempt.step_run_id,
                step_name=invocation.id,
                cache_key=hit.cache_key,
                source_run_id=source_run_id,
                source_step_run_id=source_step_run_id,
                outputs={p.key: p.artifact_version_id for p in outputs},
            )
        )
        assert self.cache is not None
        self.cache.hit(hit)
        say(f"Using cached version of step {invocation.id} (from run {source_run}).")
        step_run = self._step_run(attempt, StepStatus.CACHED, 0.0)
        step_run.cache_key = hit.cache_key
        step_run.original_step_run_id = source_step_run_id
        return ExecutedStep(step_run, outputs, attempt.inputs)

    def coerce_inputs(self, attempt: _Attempt) -> dict[str, Any]:
        """The arguments with each upstream value coerced to its annotation (pydantic, lax)."""
        invocation = attempt.invocation
        kwargs = attempt.kwargs
        for name in attempt.inputs:
            given: StepInput = kwargs[name]
            kwargs[name] = invocation.step.coerce(
                name, given.value, invocation_id=invocation.id, what=f"input '{name}'"
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
            if config is not None:
                check_tags(config.tags, of=f"output {shown(spec.key)} in step '{invocation.id}'")
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
            if attempt.running is not None:  # what log_artifact_metadata kept for it
                for event in attempt.running.take_output_metadata(
                    spec.key, template.artifact_version_id
                ):
                    self.tracker.publish(event)
        return produced

    def finish(self, attempt: _Attempt, outputs: list[ProducedOutput]) -> ExecutedStep:
        """Publish step.finished; the step's record, its outputs and what it read.

        What the step saved and loaded itself (save_artifact / load_artifact) is part of
        it: saved versions after the declared outputs, loaded ones in ``loaded``.
        """
        invocation = attempt.invocation
        duration = time.perf_counter() - attempt.started
        running = attempt.running
        produced: list[StepOutput] = [*outputs, *running.saved] if running else list(outputs)
        loaded = running.loaded if running else {}
        self.tracker.publish(
            StepFinished(
                run_id=self.run.run_id,
                step_run_id=attempt.step_run_id,
                step_name=invocation.id,
                duration_s=duration,
                outputs={p.key: p.artifact_version_id for p in produced},
                loaded=loaded,
            )
        )
        say(f"Step {invocation.id} has finished in {duration:.3f}s.")
        step_run = self._step_run(attempt, StepStatus.COMPLETED, duration)
        if not loaded:
            return ExecutedStep(step_run, produced, attempt.inputs)
        assert running is not None
        return ExecutedStep(step_run, produced, {**attempt.inputs, **loaded}, running.read)

    def _step_run(self, attempt: _Attempt, status: StepStatus, duration: float) -> StepRun:
        invocation = attempt.invocation
        return StepRun(
            id=attempt.step_run_id,
            name=invocation.id,
            run_id=self.run.run_id,
            status=status,
            function=invocation.step.source,
            config=StepConfig(
                substitutions=attempt.substitutions,
                enable_cache=invocation.step.enable_cache,
                parameters=invocation.parameters,
            ),
            duration_s=duration,
        )

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
