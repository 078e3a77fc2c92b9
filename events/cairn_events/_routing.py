"""Which subject each event is published on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._envelope import Event
from ._subjects import artifact_version_subject, run_subject, step_subject
from .artifacts import ArtifactMaterialized
from .runs import RunFinished, RunStarted
from .steps import StepFailed, StepFinished, StepStarted


def _of_step(event: Any) -> str:
    return step_subject(event.run_id)


def _of_run(event: Any) -> str:
    return run_subject(event.run_id)


def _of_artifact_version(event: Any) -> str:
    return artifact_version_subject(event.name, event.version)


#: One lookup per event: the projector checks every event's subject with this.
_RULES: dict[type[Event], Callable[[Any], str]] = {
    StepStarted: _of_step,
    StepFinished: _of_step,
    StepFailed: _of_step,
    RunStarted: _of_run,
    RunFinished: _of_run,
    ArtifactMaterialized: _of_artifact_version,
}


def subject_of(event: Event) -> str:
    """The subject ``event`` belongs on; artifact versions on their name's own subject."""
    rule = _RULES.get(type(event))
    if rule is None:
        raise TypeError(f"no subject is defined for {type(event).__name__}")
    return rule(event)
