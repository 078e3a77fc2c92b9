"""Filling ``run_metadata`` into what an endpoint answers, from the metadata read model.

:func:`attach` finds every pipeline run, step run and artifact version in a response
(nested ones included: a run's steps, their inputs and outputs) and fills their
``run_metadata`` with one query per kind, so no endpoint assembles metadata itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cairn.models import (
    Artifact,
    ArtifactSummary,
    ArtifactVersion,
    MetadataEntry,
    PipelineRun,
    RecordedPipeline,
    StepRun,
)
from cairn_events import EntityKind
from cairn_projections import metadata


def _owners(body: Any) -> Iterator[tuple[EntityKind, Any]]:
    """Every object in ``body`` that has metadata, with its entity kind."""
    if isinstance(body, list):
        for item in body:
            yield from _owners(item)
    elif isinstance(body, ArtifactVersion):
        yield EntityKind.ARTIFACT_VERSION, body
    elif isinstance(body, StepRun):
        yield EntityKind.STEP_RUN, body
        yield from _owners([*body.inputs.values(), *body.outputs.values()])
    elif isinstance(body, PipelineRun):
        yield EntityKind.RUN, body
        yield from _owners(list(body.steps.values()))
    elif isinstance(body, Artifact):
        yield from _owners([*body.versions.values(), body.latest])
    elif isinstance(body, ArtifactSummary):
        yield from _owners(body.latest)
    elif isinstance(body, RecordedPipeline):
        yield from _owners([*body.runs, body.last_successful_run])
    elif hasattr(body, "run_metadata") and hasattr(body, "id"):  # a model version
        yield EntityKind.MODEL_VERSION, body


async def attach(conn: Any, body: Any) -> Any:
    """``body`` with the ``run_metadata`` of everything in it filled in; returns it."""
    by_kind: dict[EntityKind, list[Any]] = {}
    for kind, owner in _owners(body):
        by_kind.setdefault(kind, []).append(owner)
    for kind, owners in by_kind.items():
        if kind == EntityKind.STEP_RUN:
            found = await metadata.metadata_of_step_runs(
                conn, [(o.id, o.original_step_run_id) for o in owners]
            )
        elif kind == EntityKind.RUN:
            found = await metadata.metadata_of_runs(conn, [o.id for o in owners])
        else:
            found = await metadata.latest_metadata(conn, kind, [o.id for o in owners])
        for owner in owners:
            owner.run_metadata = entries(found.get(owner.id, {}))
    return body


def entries(values: dict[str, metadata.MetadataValue]) -> dict[str, MetadataEntry]:
    return {key: as_entry(value) for key, value in values.items()}


def as_entry(value: metadata.MetadataValue) -> MetadataEntry:
    return MetadataEntry(
        key=value.key,
        type=value.type,
        typed_value=value.value,
        logged_at=value.logged_at,
        event_id=value.event_id,
        step_run_id=value.step_run_id,
        host=value.host,
        pid=value.pid,
        user=value.user,
    )


async def of_entity(conn: Any, kind: EntityKind, entity_id: str) -> dict[str, MetadataEntry]:
    """One entity's metadata as responses show it (a cached step run's, a run's steps')."""
    if kind == EntityKind.STEP_RUN:
        original = await conn.fetchval(
            "SELECT original_step_run_id FROM step_runs WHERE id = $1", entity_id
        )
        found = await metadata.metadata_of_step_runs(conn, [(entity_id, original)])
    elif kind == EntityKind.RUN:
        found = await metadata.metadata_of_runs(conn, [entity_id])
    else:
        found = await metadata.latest_metadata(conn, kind, [entity_id])
    return entries(found.get(entity_id, {}))


async def history_of(
    conn: Any, kind: EntityKind, entity_id: str, key: str | None
) -> list[MetadataEntry]:
    """Every value logged for ``key`` (or every key) of the entity, oldest first; a cached
    step run's include those of the step run it reused."""
    ids = [entity_id]
    if kind == EntityKind.STEP_RUN:
        original = await conn.fetchval(
            "SELECT original_step_run_id FROM step_runs WHERE id = $1", entity_id
        )
        ids += [original] if original else []
    return [as_entry(v) for v in await metadata.metadata_history(conn, kind, ids, key)]
