"""What a user reads back: pipelines and their runs, step runs, artifacts and their versions.

These are the shapes the query API sends (JSON) and the runner returns after
a run; both are built from the same events, so they agree. Every shape the API
answers with is here (``Health`` and ``ErrorBody`` too), so every ``Client`` method
returns one of them. Statuses are ``cairn_events``' enums (string enums:
``run.status == "completed"`` holds).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from cairn_events import ArtifactVersionRecord, RunStatus, StepStatus

__all__ = [
    "Artifact",
    "ArtifactResponse",
    "ArtifactSummary",
    "ArtifactVersion",
    "ArtifactVersionResponse",
    "ErrorBody",
    "Health",
    "PipelineResponse",
    "PipelineRun",
    "PipelineRunResponse",
    "PipelineSummary",
    "RecordedPipeline",
    "RunConfig",
    "RunStatus",
    "StepConfig",
    "StepRun",
    "StepRunResponse",
    "StepStatus",
]


class ArtifactVersion(ArtifactVersionRecord, kw_only=True):
    """One stored version of a named artifact (the fields of ``ArtifactVersionRecord``).

    ``load()`` reads the value back.
    """

    run_metadata: dict[str, Any] = msgspec.field(default_factory=dict)

    def load(self) -> Any:
        """The stored value, read by the materializer that wrote it."""
        from .artifacts import load_artifact_version

        return load_artifact_version(self)


class StepConfig(msgspec.Struct, kw_only=True):
    substitutions: dict[str, str] = msgspec.field(default_factory=dict)
    enable_cache: bool | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)


class StepRun(msgspec.Struct, kw_only=True):
    """One execution of a step inside a pipeline run."""

    id: str
    name: str
    run_id: str
    status: StepStatus
    function: str
    config: StepConfig
    inputs: dict[str, ArtifactVersion] = msgspec.field(default_factory=dict)
    outputs: dict[str, ArtifactVersion] = msgspec.field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    error: str | None = None
    run_metadata: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def output(self) -> ArtifactVersion:
        """The single output of a one-output step."""
        if len(self.outputs) != 1:
            raise ValueError(
                f"Step '{self.name}' has {len(self.outputs)} outputs "
                f"({', '.join(self.outputs) or 'none'}); use .outputs[name] instead of .output"
            )
        return next(iter(self.outputs.values()))

    @property
    def parameters(self) -> dict[str, Any]:
        return self.config.parameters


class RunConfig(msgspec.Struct, kw_only=True):
    substitutions: dict[str, str] = msgspec.field(default_factory=dict)
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    enable_cache: bool | None = None


class PipelineRun(msgspec.Struct, kw_only=True):
    """One run of a pipeline with its steps keyed by step name (invocation id)."""

    id: str
    name: str
    pipeline_name: str
    status: RunStatus
    config: RunConfig
    steps: dict[str, StepRun] = msgspec.field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    error: str | None = None
    failed_step: str | None = None
    run_metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class Artifact(msgspec.Struct, kw_only=True):
    """A named artifact with every version stored under its name.

    Artifacts are names in the events: ``id`` is derived from the name (the same on every
    replay). ``versions`` is keyed by version, oldest first; ``latest`` is the newest
    claimed version, as in ZenML.
    """

    id: str
    name: str
    version_count: int
    versions: dict[str, ArtifactVersion]
    latest: ArtifactVersion
    created_at: datetime
    updated_at: datetime

    @property
    def latest_version_name(self) -> str:
        return self.latest.version

    @property
    def latest_version_id(self) -> str:
        return self.latest.id

    @property
    def created(self) -> datetime:
        """When the first version was stored (ZenML's name for ``created_at``)."""
        return self.created_at

    @property
    def updated(self) -> datetime:
        """When the newest version was stored (ZenML's name for ``updated_at``)."""
        return self.updated_at


class ArtifactSummary(msgspec.Struct, kw_only=True):
    """One artifact name: its id (derived from the name), how many versions it has, its latest.

    ``latest`` is the newest claimed version, ``latest_version`` its version.
    """

    id: str
    name: str
    version_count: int
    latest_version: str
    latest: ArtifactVersion

    @property
    def latest_version_name(self) -> str:
        """ZenML's name for ``latest_version``."""
        return self.latest_version

    @property
    def latest_version_id(self) -> str:
        return self.latest.id


class PipelineSummary(msgspec.Struct, kw_only=True):
    """A pipeline as runs name it: how many runs it has and what its latest run did.

    Pipelines are names in the events (each run says which pipeline it runs): ``id`` is
    derived from the name, the same on every replay. ``created_at`` is when its first run
    started, ``updated_at`` when its latest did.
    """

    id: str
    name: str
    run_count: int
    latest_run_id: str
    latest_run_name: str
    latest_run_status: RunStatus
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def num_runs(self) -> int:
        """ZenML's name for ``run_count``."""
        return self.run_count

    @property
    def created(self) -> datetime | None:
        return self.created_at

    @property
    def updated(self) -> datetime | None:
        return self.updated_at


class RecordedPipeline(PipelineSummary, kw_only=True):
    """A pipeline with its 50 newest runs (newest first, as ZenML's ``runs``) and steps.

    ``run_count`` counts them all; ``Client.list_pipeline_runs(pipeline_name=...)`` pages
    through every one.
    """

    runs: list[PipelineRun] = msgspec.field(default_factory=list)
    last_successful_run: PipelineRun | None = None

    @property
    def latest_run(self) -> PipelineRun | None:
        return self.runs[0] if self.runs else None

    @property
    def last_run(self) -> PipelineRun | None:
        """ZenML's name for ``latest_run``."""
        return self.latest_run


# ZenML's names for these shapes, so type hints move over with ``zenml.models`` -> ``cairn.models``.
ArtifactResponse = Artifact
ArtifactVersionResponse = ArtifactVersion
PipelineResponse = RecordedPipeline
PipelineRunResponse = PipelineRun
StepRunResponse = StepRun


class Health(msgspec.Struct, kw_only=True):
    """``/health``: the API answers, and the checkpoint of the projector it reads from."""

    status: str
    checkpoint: int


class ErrorBody(msgspec.Struct, kw_only=True):
    """The JSON body of every API error: a machine code and a sentence for people."""

    error: str
    message: str
