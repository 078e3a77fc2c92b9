"""Pure folds: one event in, the row changes it makes to the read models out.

No I/O here. ``fold(event)`` dispatches on the event type; each ``fold_<tag>``
may also be called directly. A fold raises :class:`FoldError` for an event it
cannot turn into rows (the projector dead-letters it); it never returns a
partial result.

Folds are order-tolerant: a ``step.finished`` may be folded before the
``artifact.materialized`` of its outputs or before its ``step.started``, and
the final rows are the same (see :mod:`.changes`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from cairn_events import (
    ArtifactMaterialized,
    RunFinished,
    RunStarted,
    StepFailed,
    StepFinished,
    StepStarted,
    is_numeric_version,
)

from .changes import RowChange, Write


class FoldError(ValueError):
    """An event that decodes but cannot be projected; the message says why."""


#: Postgres bigint: larger version numbers or sizes cannot be stored.
_BIGINT_MAX = 2**63 - 1
_RUN_IDS = ("run_id",)
_STEP_IDS = ("run_id", "step_run_id", "step_name")
_ARTIFACT_IDS = ("artifact_version_id", "name", "version")


def fold_run_started(event: RunStarted) -> list[RowChange]:
    _require(event, ("run_id", "run_name"))
    row = (
        event.run_id,
        event.run_name,
        event.pipeline_name,
        event.parameters,
        event.substitutions,
        event.enable_cache,
        event.step_names,
        event.started_at,
    )
    return [RowChange(Write.RUN_STARTED, row)]


def fold_run_finished(event: RunFinished) -> list[RowChange]:
    _require(event, _RUN_IDS)
    row = (
        event.run_id,
        event.status,
        event.occurred_at,
        event.duration_s,
        event.error,
        event.failed_step,
    )
    return [RowChange(Write.RUN_FINISHED, row)]


def fold_step_started(event: StepStarted) -> list[RowChange]:
    _require(event, _STEP_IDS)
    row = (
        event.step_run_id,
        event.run_id,
        event.step_name,
        event.function,
        event.parameters,
        event.substitutions,
        event.enable_cache,
        event.upstream_steps,
        event.occurred_at,
    )
    changes = [RowChange(Write.STEP_STARTED, row)]
    changes += _edges(Write.STEP_INPUT, event, event.step_run_id, event.inputs)
    return changes


def fold_step_finished(event: StepFinished) -> list[RowChange]:
    _require(event, _STEP_IDS)
    row = (
        event.step_run_id,
        event.run_id,
        event.step_name,
        "completed",
        event.occurred_at,
        event.duration_s,
    )
    changes = [RowChange(Write.STEP_FINISHED, row)]
    changes += _edges(Write.STEP_OUTPUT, event, event.step_run_id, event.outputs)
    return changes


def fold_step_failed(event: StepFailed) -> list[RowChange]:
    _require(event, _STEP_IDS)
    row = (
        event.step_run_id,
        event.run_id,
        event.step_name,
        "failed",
        event.occurred_at,
        event.duration_s,
        event.error_type,
        event.error_message,
        event.traceback,
    )
    return [RowChange(Write.STEP_FAILED, row)]


def fold_artifact_materialized(event: ArtifactMaterialized) -> list[RowChange]:
    _require(event, _ARTIFACT_IDS)
    numeric_version = None
    if is_numeric_version(event.version):
        # the length first: int() of thousands of digits is slow, and refused by Python
        if len(event.version) > len(str(_BIGINT_MAX)) or int(event.version) > _BIGINT_MAX:
            raise FoldError(
                f"artifact.materialized {event.event_id}: version {event.version[:40]} too large"
            )
        numeric_version = int(event.version)
    if numeric_version is not None and numeric_version > event.numeric_count:
        raise FoldError(
            f"artifact.materialized {event.event_id}: version {event.version} of "
            f"{event.name!r} exceeds its numeric_count {event.numeric_count}, which "
            f"is the highest version number of the name including this one"
        )
    counts = (event.size, event.numeric_count, event.claim_order)
    if not all(0 <= count <= _BIGINT_MAX for count in counts):
        raise FoldError(
            f"artifact.materialized {event.event_id}: size {event.size}, numeric_count "
            f"{event.numeric_count} or claim_order {event.claim_order} out of range"
        )
    row = (
        event.artifact_version_id,
        event.name,
        event.version,
        numeric_version,
        event.numeric_count,
        event.uri,
        event.artifact_type,
        event.data_type,
        event.materializer,
        event.content_hash,
        event.size,
        event.occurred_at,
        event.tags,
        event.producer_run_id,
        event.producer_step_run_id,
        event.output_name,
        event.visualizations,
        event.claim_order,
    )
    return [RowChange(Write.ARTIFACT_VERSION, row)]


_FOLDS: dict[type[Any], Callable[[Any], list[RowChange]]] = {
    RunStarted: fold_run_started,
    RunFinished: fold_run_finished,
    StepStarted: fold_step_started,
    StepFinished: fold_step_finished,
    StepFailed: fold_step_failed,
    ArtifactMaterialized: fold_artifact_materialized,
}


def fold(event: Any) -> list[RowChange]:
    """The row changes ``event`` makes; raises FoldError if it cannot be projected."""
    handler = _FOLDS.get(type(event))
    if handler is None:
        raise FoldError(f"no fold for event type {type(event).__name__}")
    return handler(event)


def fold_all(events: Iterable[Any]) -> list[RowChange]:
    """The row changes of several events in order (raises on the first that can't fold)."""
    return [change for event in events for change in fold(event)]


def _require(event: Any, fields: tuple[str, ...]) -> None:
    for name in fields:
        if not getattr(event, name):
            raise FoldError(f"{event.tag} {event.event_id}: empty {name}")


def _edges(write: Write, event: Any, step_run_id: str, edges: dict[str, str]) -> list[RowChange]:
    """One edge per entry; ``position`` keeps the order the step declared them in."""
    changes = []
    for position, (key, artifact_version_id) in enumerate(edges.items()):
        if not key or not artifact_version_id:
            raise FoldError(
                f"{event.tag} {event.event_id}: lineage edge {key!r} -> "
                f"{artifact_version_id!r} has an empty key or artifact version id"
            )
        changes.append(RowChange(write, (step_run_id, key, artifact_version_id, position)))
    return changes
