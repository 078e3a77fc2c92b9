"""What a running step can ask about itself: ``get_step_context()``.

A running step's context also carries the private hook (:class:`RunningStep`) through
which ``load_artifact`` and ``save_artifact`` called inside the step register what
they read and stored, for the executor to record in step.finished.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

import msgspec
from cairn_events import RunStatus, StepStatus

from .errors import CairnError

if TYPE_CHECKING:
    from cairn_events import MetadataLogged

    from .composition import Invocation
    from .executor import ProducedOutput, RunContext, StepTracker
    from .models import ArtifactVersion, PipelineRun, StepRun


class RunningStep:
    """One step run as ``load_artifact`` and ``save_artifact`` inside it see it.

    It holds the executor's tracker (saves go where the run's events go), what the step
    loaded (``loaded``: key -> artifact version id, ``read``: the versions) and the
    outputs it saved (``saved``). A loaded version is keyed by its artifact name and a
    saved one by its own; a key an argument or a declared output has already, or an
    earlier load or save took, gets ``_2``, ``_3``... as repeated steps do.
    """

    __slots__ = (
        "_output_keys",
        "_output_metadata",
        "invocation",
        "loaded",
        "read",
        "run",
        "saved",
        "step_run_id",
        "substitutions",
        "tracker",
    )

    def __init__(
        self,
        tracker: StepTracker,
        run: RunContext,
        invocation: Invocation,
        step_run_id: str,
        substitutions: dict[str, str],
    ) -> None:
        self.tracker = tracker
        self.run = run
        self.invocation = invocation
        self.step_run_id = step_run_id
        #: The step's substitutions over the run's, as its output names are resolved with.
        self.substitutions = substitutions
        self.loaded: dict[str, str] = {}
        self.read: dict[str, ArtifactVersion] = {}
        self.saved: list[ProducedOutput] = []
        self._output_keys: set[str] | None = None
        self._output_metadata: dict[str, list[MetadataLogged]] = {}

    def record_loaded(self, version: ArtifactVersion) -> str:
        """Record that the step loaded ``version`` (once per version); the key it is under."""
        for key, artifact_version_id in self.loaded.items():
            if artifact_version_id == version.id:
                return key
        taken = {*self.invocation.step.signature.parameters, *self.loaded}
        key = _free(version.name, taken)
        self.loaded[key] = version.id
        self.read[version.id] = version
        return key

    def output_key(self, name: str) -> str:
        """The key an artifact named ``name`` saved by the step shows under in its outputs."""
        return _free(name, self._declared_output_keys() | {p.key for p in self.saved})

    def record_saved(self, output: ProducedOutput) -> None:
        self.saved.append(output)

    def output_for_metadata(self, name: str | None) -> str | None:
        """The key of the step's output that metadata logged for artifact ``name`` goes to:
        the only output when ``name`` is None (an error if there are none or several), the
        output with that key or artifact name, or None (no output of this step)."""
        specs = self.invocation.step.outputs
        if name is None:
            if len(specs) == 1:
                return specs[0].key
            if not specs:
                raise CairnError(
                    f"Step '{self.invocation.id}' has no outputs, so log_artifact_metadata needs "
                    "artifact_name= (an artifact saved earlier)"
                )
            raise CairnError(
                f"Step '{self.invocation.id}' has {len(specs)} outputs "
                f"({', '.join(s.key for s in specs)}); say which with artifact_name="
            )
        if any(spec.key == name for spec in specs):
            return name
        if name in self._declared_output_keys():  # a resolved artifact name
            from .naming import resolve_name

            for spec in specs:
                if spec.name_template is not None and name == resolve_name(
                    spec.name_template, self.substitutions, step=self.invocation.id, output=spec.key
                ):
                    return spec.key
        return None

    def keep_output_metadata(self, key: str, event: MetadataLogged) -> None:
        """Keep metadata for output ``key`` until its version is stored."""
        self._output_metadata.setdefault(key, []).append(event)

    def take_output_metadata(self, key: str, artifact_version_id: str) -> list[MetadataLogged]:
        """What was kept for output ``key``, now for its stored version."""
        import msgspec.structs

        return [
            msgspec.structs.replace(event, entity_id=artifact_version_id)
            for event in self._output_metadata.pop(key, ())
        ]

    def _declared_output_keys(self) -> set[str]:
        """The keys of the step's declared outputs: output keys, and names of named ones."""
        if self._output_keys is None:
            from .naming import resolve_name

            invocation = self.invocation
            keys = set()
            for spec in invocation.step.outputs:
                keys.add(spec.key)
                if spec.name_template is not None:  # resolved before the step ran: it works
                    keys.add(
                        resolve_name(
                            spec.name_template,
                            self.substitutions,
                            step=invocation.id,
                            output=spec.key,
                        )
                    )
            self._output_keys = keys
        return self._output_keys

    def __repr__(self) -> str:
        return f"<running step {self.invocation.id!r} ({self.step_run_id})>"


def _free(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... the first that ``taken`` does not hold."""
    if name not in taken:
        return name
    count = 2
    while f"{name}_{count}" in taken:
        count += 1
    return f"{name}_{count}"


class StepContext(msgspec.Struct, frozen=True, kw_only=True):
    """The run and step a piece of code is executing in (ZenML's ``StepContext``).

    ``pipeline_run`` and ``step_run`` are the run and the step run as they stand while
    the step runs (status running; ``Client().get_pipeline_run(context.run_id)`` reads the
    whole record). ``output_names`` are the step's output keys as declared: ``output``,
    ``output_N`` or the name given in ``Annotated[...]`` (a template, unresolved).
    """

    pipeline_name: str
    run_id: str
    run_name: str
    step_name: str
    step_run_id: str
    substitutions: dict[str, str]
    output_names: list[str] = msgspec.field(default_factory=list)
    #: The hook load_artifact and save_artifact use inside the step (None: nothing records).
    _running: RunningStep | None = None

    @property
    def pipeline_run(self) -> PipelineRun:
        """The pipeline run this step is part of: id, name, pipeline name, status running."""
        from .models import PipelineRun, RunConfig

        running = self._running
        return PipelineRun(
            id=self.run_id,
            name=self.run_name,
            pipeline_name=self.pipeline_name,
            status=RunStatus.RUNNING,
            config=RunConfig(substitutions=dict(running.run.substitutions) if running else {}),
        )

    @property
    def step_run(self) -> StepRun:
        """This step run: id, name, run id, status running, function and configuration."""
        from .models import StepConfig, StepRun

        running = self._running
        invocation = running.invocation if running else None
        return StepRun(
            id=self.step_run_id,
            name=self.step_name,
            run_id=self.run_id,
            status=StepStatus.RUNNING,
            function=invocation.step.source if invocation else "",
            config=StepConfig(
                substitutions=dict(self.substitutions),
                enable_cache=invocation.step.enable_cache if invocation else None,
                parameters=dict(invocation.parameters) if invocation else {},
            ),
        )


_current: ContextVar[StepContext | None] = ContextVar("cairn_step_context", default=None)


def get_step_context() -> StepContext:
    """The context of the step being executed; an error outside a step."""
    context = _current.get()
    if context is None:
        raise CairnError(
            "get_step_context() was called outside a running step; call it inside a @step function"
        )
    return context


def running_step() -> RunningStep | None:
    """The hook of the step being executed in this thread; None outside a step."""
    context = _current.get()
    return None if context is None else context._running


def set_step_context(context: StepContext | None) -> object:
    return _current.set(context)


def reset_step_context(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
