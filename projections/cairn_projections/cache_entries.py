"""The cache entries read model: one immutable row per step run that computed its outputs.

A row is what ``cache.stored`` recorded: the step's cache key and lineage key, where it
ran, the output versions by output key, the parts its key was made of (to explain a later
miss) and when it expires. Lookups answer the newest entry per key, per lineage key and per
step of a pipeline, each with its output versions and its run's name, in three queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

import msgspec
from cairn_events import CacheStored

from .artifact_versions import ArtifactVersionRow
from .connection import Queryable
from .read_model import FoldError, Migration, ReadModel, Row, record_to, require


class CacheEntryRow(Row, kw_only=True):
    TABLE: ClassVar[str] = "cache_entries"
    KEY: ClassVar[tuple[str, ...]] = ("step_run_id",)
    IMMUTABLE: ClassVar[bool] = True

    step_run_id: str
    cache_key: str
    lineage_key: str
    pipeline_name: str
    step_name: str
    run_id: str
    outputs: dict[str, str]
    components: dict[str, Any]
    created_at: datetime
    expires_at: datetime | None


_V3 = """
CREATE TABLE cache_entries (
    step_run_id   text PRIMARY KEY,
    cache_key     text NOT NULL,
    lineage_key   text NOT NULL,
    pipeline_name text NOT NULL,
    step_name     text NOT NULL,
    run_id        text NOT NULL,
    outputs       jsonb NOT NULL DEFAULT '{}',
    components    jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz
);
CREATE INDEX cache_entries_by_key ON cache_entries (cache_key, created_at DESC, step_run_id DESC);
CREATE INDEX cache_entries_by_lineage_key
    ON cache_entries (lineage_key, created_at DESC, step_run_id DESC);
CREATE INDEX cache_entries_by_step
    ON cache_entries (pipeline_name, step_name, created_at DESC, step_run_id DESC);
"""

CACHE_ENTRIES = ReadModel(
    "cache_entries",
    rows=[CacheEntryRow],
    migrations=[Migration(3, "caching and the lineage index", _V3)],
)

#: A key is a hex digest; anything much longer is no key of ours.
MAX_KEY_LENGTH = 128


@CACHE_ENTRIES.folds(CacheStored)
def fold_cache_stored(event: CacheStored) -> list[Row]:
    require(event, ("cache_key", "lineage_key", "pipeline_name", "step_name", "run_id"))
    require(event, ("step_run_id",))
    if len(event.cache_key) > MAX_KEY_LENGTH or len(event.lineage_key) > MAX_KEY_LENGTH:
        raise FoldError(f"cache.stored {event.event_id}: a cache key over {MAX_KEY_LENGTH} chars")
    if any(not key or not version_id for key, version_id in event.outputs.items()):
        raise FoldError(f"cache.stored {event.event_id}: an output with an empty key or id")
    return [
        CacheEntryRow(
            step_run_id=event.step_run_id,
            cache_key=event.cache_key,
            lineage_key=event.lineage_key,
            pipeline_name=event.pipeline_name,
            step_name=event.step_name,
            run_id=event.run_id,
            outputs=dict(event.outputs),
            components=dict(event.components),
            created_at=event.occurred_at,
            expires_at=event.expires_at,
        )
    ]


# -- queries ----------------------------------------------------------------------------


class FoundEntry(msgspec.Struct, kw_only=True):
    """An entry as a lookup returns it: with its output versions and its run's name.

    ``missing_outputs`` are output keys whose version the read model does not hold;
    ``unusable`` says why the entry may not be served, where the read model knows.
    """

    step_run_id: str
    cache_key: str
    lineage_key: str
    pipeline_name: str
    step_name: str
    run_id: str
    run_name: str | None = None
    created_at: datetime
    expires_at: datetime | None
    components: dict[str, Any]
    outputs: dict[str, ArtifactVersionRow] = msgspec.field(default_factory=dict)
    missing_outputs: list[str] = msgspec.field(default_factory=list)
    unusable: str | None = None


_COLUMNS = ", ".join(CacheEntryRow.__struct_fields__)
_NEWEST = "created_at DESC, step_run_id DESC"


_VERSION_FIELDS = ArtifactVersionRow.__struct_fields__
_ENTRY_COLUMNS = ", ".join(f"f.{c}" for c in CacheEntryRow.__struct_fields__ if c != "components")
#: The output versions' columns, prefixed so they do not meet the entry's own.
_OUTPUT_COLUMNS = ", ".join(f"av.{c} AS out_{c}" for c in _VERSION_FIELDS)


async def find_entries(
    conn: Queryable,
    *,
    keys: Sequence[str] = (),
    lineage_keys: Sequence[str] = (),
    steps: Sequence[tuple[str, str]] = (),
    with_components: bool = True,
) -> list[FoundEntry]:
    """The newest entry of each key, of each lineage key and of each (pipeline, step), with
    their output versions and run names: one query (a row per entry and output), so one
    round trip. An entry found by its step comes with its components (what a miss is
    explained with); one found by key or lineage key only ``with_components`` (serving an
    entry needs less), else they read ``{}``."""
    rows = await conn.fetch(
        f"""
        WITH found AS (
            (SELECT DISTINCT ON (cache_key) {_COLUMNS}, false AS by_step FROM cache_entries
              WHERE cache_key = ANY($1::text[]) ORDER BY cache_key, {_NEWEST})
            UNION ALL
            (SELECT DISTINCT ON (lineage_key) {_COLUMNS}, false AS by_step FROM cache_entries
              WHERE lineage_key = ANY($2::text[]) ORDER BY lineage_key, {_NEWEST})
            UNION ALL
            (SELECT DISTINCT ON (pipeline_name, step_name) {_COLUMNS}, true AS by_step
              FROM cache_entries
              WHERE (pipeline_name, step_name) IN (SELECT * FROM unnest($3::text[], $4::text[]))
              ORDER BY pipeline_name, step_name, {_NEWEST})
        )
        SELECT {_ENTRY_COLUMNS},
               CASE WHEN f.by_step OR $5 THEN f.components ELSE '{{}}'::jsonb END AS components,
               r.name AS run_name, o.key AS output_key, {_OUTPUT_COLUMNS}
        FROM found f
        LEFT JOIN pipeline_runs r ON r.id = f.run_id
        LEFT JOIN LATERAL jsonb_each_text(f.outputs) o ON true
        LEFT JOIN artifact_versions av ON av.id = o.value
        """,
        list(keys),
        list(lineage_keys),
        [pipeline for pipeline, _ in steps],
        [step for _, step in steps],
        with_components,
    )
    found: dict[str, FoundEntry] = {}
    for row in rows:  # an entry found two ways comes twice: one with its components wins
        entry = found.get(row["step_run_id"])
        if entry is None or (row["components"] and not entry.components):
            entry = found[row["step_run_id"]] = _found(row)
        if row["out_id"] is not None:
            version = {field: row[f"out_{field}"] for field in _VERSION_FIELDS}
            entry.outputs[row["output_key"]] = msgspec.convert(version, ArtifactVersionRow)
    for entry in found.values():
        entry.missing_outputs = [k for k in entry.missing_outputs if k not in entry.outputs]
    return list(found.values())


def _found(row: Any) -> FoundEntry:
    entry = record_to(CacheEntryRow, row)
    return FoundEntry(
        step_run_id=entry.step_run_id,
        cache_key=entry.cache_key,
        lineage_key=entry.lineage_key,
        pipeline_name=entry.pipeline_name,
        step_name=entry.step_name,
        run_id=entry.run_id,
        run_name=row["run_name"],
        created_at=entry.created_at,
        expires_at=entry.expires_at,
        components=entry.components,
        missing_outputs=list(entry.outputs),  # until its version is found
    )
