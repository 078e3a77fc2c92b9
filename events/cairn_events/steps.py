"""Step run events."""

from __future__ import annotations

from typing import Any

import msgspec

from ._envelope import Event
from ._subjects import step_path


class _StepEvent(Event, frozen=True, kw_only=True):
    """A step run's events share their run's step subject, so they stay in order."""

    run_id: str
    step_run_id: str
    step_name: str

    def subject_path(self) -> str:
        return step_path(self.run_id)


class StepStarted(_StepEvent, frozen=True, kw_only=True, tag="step.started"):
    """A step run began with these parameters and input artifact versions.

    ``inputs`` maps the step's argument name to the id of the artifact version
    it reads.
    """

    function: str
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    inputs: dict[str, str] = msgspec.field(default_factory=dict)
    substitutions: dict[str, str] = msgspec.field(default_factory=dict)
    enable_cache: bool | None = None
    upstream_steps: list[str] = msgspec.field(default_factory=list)


class StepFinished(_StepEvent, frozen=True, kw_only=True, tag="step.finished"):
    """A step run completed; ``outputs`` maps each output key to its artifact version id.

    ``loaded`` maps what the step loaded itself (``load_artifact`` inside the step) to the
    artifact version it read: inputs, for lineage, that were not arguments. Outputs saved
    with ``save_artifact`` inside the step are in ``outputs`` under their artifact name.
    """

    duration_s: float
    outputs: dict[str, str] = msgspec.field(default_factory=dict)
    loaded: dict[str, str] = msgspec.field(default_factory=dict)


class StepFailed(_StepEvent, frozen=True, kw_only=True, tag="step.failed"):
    """A step run raised; the run it belongs to fails with it."""

    duration_s: float
    error_type: str
    error_message: str
    traceback: str = ""
