"""What a user reads back: pipeline runs, step runs and artifact versions.

These are the shapes the query API sends (JSON) and the runner returns after
a run; both are built from the same events, so they agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

RunStatus = Literal["running", "completed", "failed", "cached"]
StepStatus = Literal["running", "completed", "cached", "failed"]


class ArtifactVersion(msgspec.Struct, kw_only=True):
    """One stored version of a named artifact. ``load()`` reads the value back."""

    id: str
    name: str
    version: str
    uri: str
    type: str
    data_type: str
    materializer: str
    content_hash: str
    size: int
    created_at: datetime
    tags: list[str] = msgspec.field(default_factory=list)
    producer_run_id: str | None = None
    producer_step_run_id: str | None = None
    output_name: str | None = None
    visualizations: dict[str, str] = msgspec.field(default_factory=dict)
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


class ErrorBody(msgspec.Struct, kw_only=True):
    """The JSON body of every API error: a machine code and a sentence for people."""

    error: str
    message: str
