"""Which subject each event is published on."""

from __future__ import annotations

from ._envelope import Event
from ._subjects import artifact_version_subject, run_subject, step_subject
from .artifacts import ArtifactMaterialized
from .runs import RunFinished, RunStarted
from .steps import StepFailed, StepFinished, StepStarted


def subject_of(event: Event) -> str:
    """The subject ``event`` belongs on; artifact versions on their name's own subject."""
    if isinstance(event, (StepStarted, StepFinished, StepFailed)):
        return step_subject(event.run_id)
    if isinstance(event, (RunStarted, RunFinished)):
        return run_subject(event.run_id)
    if isinstance(event, ArtifactMaterialized):
        return artifact_version_subject(event.name, event.version)
    raise TypeError(f"no subject is defined for {type(event).__name__}")
