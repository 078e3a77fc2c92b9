"""The metadata read model: every value logged for a key of an entity, and its newest.

``metadata_history`` holds one immutable row per (event, key): what was logged, when, by
which process and user, from which step run. ``metadata_latest`` holds one row per
(entity, key), rewritten in log order, so its value is the newest in the log on every
replay. Both are folded from ``metadata.logged`` and from what a materializer extracted
when a version was stored (``artifact.materialized``'s ``run_metadata``).

A cached step run shows the metadata of the step run it reused (its own wins), and a
pipeline run shows each of its step runs' metadata as ``<step name>::<key>``: both are
read-time joins (:func:`metadata_of_step_runs`, :func:`metadata_of_runs`), so nothing is
copied.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

import msgspec
from cairn_events import ArtifactMaterialized, EntityKind, Event, MetadataLogged, TypedValue
from cairn_events.metadata import (
    MAX_VALUE_BYTES,
    encoded_size,
    key_problem,
    typed_value_problem,
)

from .connection import Queryable
from .read_model import FoldError, Migration, ReadModel, Row, record_to, require


class _MetadataRow(Row, kw_only=True):
    entity_kind: str
    entity_id: str
    key: str
    type: str
    value: Any
    logged_at: datetime
    event_id: str
    step_run_id: str | None
    host: str
    pid: int
    os_user: str


class MetadataLatestRow(_MetadataRow, kw_only=True):
    """A key's newest value (the last write in log order wins)."""

    TABLE: ClassVar[str] = "metadata_latest"
    KEY: ClassVar[tuple[str, ...]] = ("entity_kind", "entity_id", "key")


class MetadataHistoryRow(_MetadataRow, kw_only=True):
    """One value logged for a key."""

    TABLE: ClassVar[str] = "metadata_history"
    KEY: ClassVar[tuple[str, ...]] = ("event_id", "key")
    IMMUTABLE: ClassVar[bool] = True


_COLUMNS_SQL = """
    entity_kind text NOT NULL,
    entity_id   text NOT NULL,
    key         text NOT NULL,
    type        text NOT NULL,
    value       jsonb,
    logged_at   timestamptz NOT NULL,
    event_id    text NOT NULL,
    step_run_id text,
    host        text NOT NULL,
    pid         bigint NOT NULL,
    os_user     text NOT NULL"""

_V4 = f"""
CREATE TABLE metadata_latest ({_COLUMNS_SQL},
    PRIMARY KEY (entity_kind, entity_id, key)
);
CREATE TABLE metadata_history ({_COLUMNS_SQL},
    PRIMARY KEY (event_id, key)
);
CREATE INDEX metadata_history_by_entity
    ON metadata_history (entity_kind, entity_id, key, logged_at, event_id);
"""

METADATA = ReadModel(
    "metadata",
    rows=[MetadataLatestRow, MetadataHistoryRow],
    migrations=[Migration(4, "metadata, models and visualizations", _V4)],
)


def _rows(
    event: Event,
    entity_kind: str,
    entity_id: str,
    values: dict[str, TypedValue],
    step_run_id: str | None,
) -> list[Row]:
    rows: list[Row] = []
    producer = event.producer
    for key, typed in values.items():
        problem = key_problem(key) or (
            None if (p := typed_value_problem(typed)) is None else f"'s value {p}"
        )
        if problem is None and encoded_size(typed) > MAX_VALUE_BYTES:
            problem = f"'s value is over {MAX_VALUE_BYTES} bytes"
        if problem is not None:
            raise FoldError(f"{event.tag} {event.event_id}: metadata key {key[:80]!r} {problem}")
        fields = {
            "entity_kind": entity_kind,
            "entity_id": entity_id,
            "key": key,
            "type": typed["type"],
            "value": typed["value"],
            "logged_at": event.occurred_at,
            "event_id": event.event_id,
            "step_run_id": step_run_id,
            "host": producer.host,
            "pid": producer.pid,
            "os_user": producer.user,
        }
        rows.append(MetadataLatestRow(**fields))
        rows.append(MetadataHistoryRow(**fields))
    return rows


@METADATA.folds(MetadataLogged)
def fold_metadata_logged(event: MetadataLogged) -> list[Row]:
    require(event, ("entity_id",))
    return _rows(event, event.entity_kind, event.entity_id, event.values, event.step_run_id)


@METADATA.folds(ArtifactMaterialized)
def fold_extracted_metadata(event: ArtifactMaterialized) -> list[Row]:
    if not event.run_metadata:
        return []
    require(event, ("artifact_version_id",))
    return _rows(
        event,
        EntityKind.ARTIFACT_VERSION,
        event.artifact_version_id,
        event.run_metadata,
        event.producer_step_run_id,
    )


# -- queries ----------------------------------------------------------------------------


class MetadataValue(msgspec.Struct, kw_only=True):
    """A value of a key as queries return it (``cairn.models.MetadataEntry``'s fields)."""

    key: str
    type: str
    value: Any
    logged_at: datetime
    event_id: str
    step_run_id: str | None
    host: str
    pid: int
    user: str


_VALUE_COLUMNS = ", ".join(
    'm.os_user AS "user"' if c == "user" else f"m.{c}" for c in MetadataValue.__struct_fields__
)
#: {entity id: {key: value}}
Found = dict[str, dict[str, MetadataValue]]


async def latest_metadata(conn: Queryable, entity_kind: str, entity_ids: Sequence[str]) -> Found:
    """The newest value of every key of each entity, keys sorted; one query."""
    found: Found = {entity_id: {} for entity_id in entity_ids}
    if not entity_ids:
        return found
    rows = await conn.fetch(
        f"SELECT m.entity_id, {_VALUE_COLUMNS} FROM metadata_latest m "
        "WHERE m.entity_kind = $1 AND m.entity_id = ANY($2::text[]) ORDER BY m.key",
        entity_kind,
        list(set(entity_ids)),
    )
    for row in rows:
        found[row["entity_id"]][row["key"]] = record_to(MetadataValue, row)
    return found


async def metadata_of_step_runs(
    conn: Queryable, step_runs: Sequence[tuple[str, str | None]]
) -> Found:
    """The metadata of step runs given as (id, original step run id or None): a cached step
    run shows the metadata of the step run it reused, its own keys winning."""
    ids = [i for step_run in step_runs for i in step_run if i is not None]
    found = await latest_metadata(conn, EntityKind.STEP_RUN, ids)
    return {
        own: {**(found.get(original, {}) if original else {}), **found[own]}
        for own, original in step_runs
    }


async def metadata_of_runs(conn: Queryable, run_ids: Sequence[str]) -> Found:
    """The metadata of pipeline runs: their own, and each step run's as ``<step>::<key>``
    (a cached step run's from the step run it reused); the run's own keys win."""
    found = await latest_metadata(conn, EntityKind.RUN, run_ids)
    if not run_ids:
        return found
    rows = await conn.fetch(
        "SELECT run_id, id, name, original_step_run_id FROM step_runs "
        "WHERE run_id = ANY($1::text[]) ORDER BY started_at NULLS LAST, id",
        list(set(run_ids)),
    )
    steps = await metadata_of_step_runs(conn, [(r["id"], r["original_step_run_id"]) for r in rows])
    for row in rows:
        own = found[row["run_id"]]
        for key, value in steps[row["id"]].items():
            shown = f"{row['name']}::{key}"
            own.setdefault(shown, msgspec.structs.replace(value, key=shown))
    return found


async def metadata_history(
    conn: Queryable, entity_kind: str, entity_ids: Sequence[str], key: str | None = None
) -> list[MetadataValue]:
    """Every value logged for ``key`` (every key when None) of the entities, oldest first."""
    rows = await conn.fetch(
        f"SELECT {_VALUE_COLUMNS} FROM metadata_history m "
        "WHERE m.entity_kind = $1 AND m.entity_id = ANY($2::text[]) "
        "AND ($3::text IS NULL OR m.key = $3) ORDER BY m.logged_at, m.event_id, m.key",
        entity_kind,
        list(entity_ids),
        key,
    )
    return [record_to(MetadataValue, row) for row in rows]
