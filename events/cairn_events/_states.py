"""The states a pipeline run and a step run can be in, as events and read models record them."""

from __future__ import annotations

from enum import StrEnum


class RunOutcome(StrEnum):
    """How a run ended, as ``run.finished`` says: cached when every step was served from cache."""

    COMPLETED = "completed"
    FAILED = "failed"
    CACHED = "cached"


class RunStatus(StrEnum):
    """A pipeline run's state: running until it finishes; cached when every step hit."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CACHED = "cached"


class StepStatus(StrEnum):
    """A step run's state: running until ``step.finished`` or ``step.failed``."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CACHED = "cached"


#: The states a run counts as successful in (its outputs can be used).
SUCCEEDED = frozenset({RunStatus.COMPLETED, RunStatus.CACHED})
