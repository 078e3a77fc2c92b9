"""Pipeline run events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from ._envelope import Event
from ._states import RunOutcome
from ._subjects import run_path


class RunStarted(Event, frozen=True, kw_only=True, tag="run.started"):
    """A pipeline run began; its parameters and substitutions are fixed from here on."""

    run_id: str
    run_name: str
    pipeline_name: str
    started_at: datetime
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    substitutions: dict[str, str] = msgspec.field(default_factory=dict)
    enable_cache: bool | None = None
    step_names: list[str] = msgspec.field(default_factory=list)

    def subject_path(self) -> str:
        return run_path(self.run_id)


class RunFinished(Event, frozen=True, kw_only=True, tag="run.finished"):
    """A pipeline run ended, either completed or failed (with the error)."""

    run_id: str
    status: RunOutcome
    duration_s: float
    error: str | None = None
    failed_step: str | None = None

    def subject_path(self) -> str:
        return run_path(self.run_id)
