"""The pipeline runs read model: one row per run; pipelines are the names runs start under.

A run's ``status`` is its outcome once ``run.finished`` is folded, ``running`` before
(a generated column). Queries return runs with their steps (see :mod:`.steps`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import msgspec
from cairn_events import SUCCEEDED, RunFinished, RunOutcome, RunStarted, RunStatus

from .configs import Config
from .connection import Queryable
from .ids import by_id_prefix, pipeline_id
from .read_model import Migration, ReadModel, Row, record_to, require
from .steps import RecordedStep, steps_of_runs


class RunStartedRow(Row, kw_only=True):
    TABLE: ClassVar[str] = "pipeline_runs"

    id: str
    name: str
    pipeline_name: str
    parameters: dict[str, Any]
    substitutions: dict[str, str]
    enable_cache: bool | None
    step_names: list[str]
    started_at: datetime


class RunFinishedRow(Row, kw_only=True):
    TABLE: ClassVar[str] = "pipeline_runs"

    id: str
    outcome: RunOutcome
    finished_at: datetime
    duration_s: float
    error: str | None
    failed_step: str | None


_V1 = """
CREATE TABLE pipeline_runs (
    id            text PRIMARY KEY,
    name          text,
    pipeline_name text,
    parameters    jsonb NOT NULL DEFAULT '{}',
    substitutions jsonb NOT NULL DEFAULT '{}',
    enable_cache  boolean,
    step_names    jsonb NOT NULL DEFAULT '[]',
    started_at    timestamptz,
    outcome       text,
    finished_at   timestamptz,
    duration_s    double precision,
    error         text,
    failed_step   text,
    status        text GENERATED ALWAYS AS (COALESCE(outcome, 'running')) STORED
) WITH (fillfactor = 70);
CREATE INDEX pipeline_runs_newest ON pipeline_runs (started_at DESC NULLS LAST, id DESC);
CREATE INDEX pipeline_runs_by_pipeline
    ON pipeline_runs (pipeline_name, started_at DESC NULLS LAST, id DESC);
CREATE INDEX pipeline_runs_by_name ON pipeline_runs (name);
"""

_V3 = """
-- The lineage index's change cursor (cairn_projections.lineage_index): row_xid is the
-- transaction that last wrote the row (the default on insert, the trigger on update), so
-- a reader asks for what was written since a snapshot of its own, whoever wrote it and in
-- whatever order transactions commit. The step runs' lineage nodes show their run's name,
-- so pipeline_runs has the cursor too; this piece comes first (runs are first in the
-- catalogue) and defines the trigger function the others use. Tables updated in place
-- index it with BRIN, which keeps their updates HOT; the insert-mostly tables a btree.
CREATE FUNCTION cairn_row_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.row_xid := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END $$;
ALTER TABLE pipeline_runs
    ADD COLUMN row_xid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint;
CREATE TRIGGER pipeline_runs_written BEFORE UPDATE ON pipeline_runs
    FOR EACH ROW EXECUTE FUNCTION cairn_row_written();
CREATE INDEX pipeline_runs_by_row_xid ON pipeline_runs USING brin (row_xid)
    WITH (pages_per_range = 8, autosummarize = on);
"""

RUNS = ReadModel(
    "runs",
    rows=[RunStartedRow, RunFinishedRow],
    migrations=[
        Migration(1, "read models", _V1),
        Migration(3, "caching and the lineage index", _V3),
    ],
)


@RUNS.folds(RunStarted)
def fold_run_started(event: RunStarted) -> list[Row]:
    require(event, ("run_id", "run_name"))
    return [
        RunStartedRow(
            id=event.run_id,
            name=event.run_name,
            pipeline_name=event.pipeline_name,
            parameters=event.parameters,
            substitutions=event.substitutions,
            enable_cache=event.enable_cache,
            step_names=event.step_names,
            started_at=event.started_at,
        )
    ]


@RUNS.folds(RunFinished)
def fold_run_finished(event: RunFinished) -> list[Row]:
    require(event, ("run_id",))
    return [
        RunFinishedRow(
            id=event.run_id,
            outcome=event.status,
            finished_at=event.occurred_at,
            duration_s=event.duration_s,
            error=event.error,
            failed_step=event.failed_step,
        )
    ]


# -- queries ----------------------------------------------------------------------------


class RecordedRun(msgspec.Struct, kw_only=True):
    """A pipeline run as the queries return it, with its steps keyed by step name."""

    id: str
    name: str
    pipeline_name: str
    status: RunStatus
    parameters: dict[str, Any]
    substitutions: dict[str, str]
    enable_cache: bool | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    error: str | None
    failed_step: str | None
    steps: dict[str, RecordedStep] = msgspec.field(default_factory=dict)

    @property
    def config(self) -> Config:
        return Config(
            parameters=self.parameters,
            substitutions=self.substitutions,
            enable_cache=self.enable_cache,
        )


class RunMatch(msgspec.Struct, kw_only=True):
    """A run whose id matched a prefix: enough to name it in a message."""

    id: str
    name: str


class PipelineSummary(msgspec.Struct, kw_only=True):
    """A pipeline name: its run count, first and latest start, and its latest run."""

    name: str
    run_count: int
    created_at: datetime | None
    updated_at: datetime | None
    latest_run_id: str
    latest_run_name: str
    latest_run_status: RunStatus

    @property
    def id(self) -> str:
        return pipeline_id(self.name)


class PipelineWithRuns(PipelineSummary, kw_only=True):
    """A pipeline with its newest runs (newest first) and its last successful run."""

    runs: list[RecordedRun] = msgspec.field(default_factory=list)
    last_successful_run: RecordedRun | None = None


_RUN_SELECT = """
SELECT id, COALESCE(name, id) AS name, COALESCE(pipeline_name, '') AS pipeline_name, status,
       parameters, substitutions, enable_cache, started_at, finished_at, duration_s,
       error, failed_step
FROM pipeline_runs
"""
_NEWEST_RUNS = "started_at DESC NULLS LAST, id DESC"
_SUCCEEDED = sorted(status.value for status in SUCCEEDED)


async def get_run(conn: Queryable, name_or_id: str) -> RecordedRun | None:
    """The run with this id, else the newest run with this name, with its steps; or None."""
    row = await conn.fetchrow(
        f"{_RUN_SELECT} WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC, {_NEWEST_RUNS} LIMIT 1",
        name_or_id,
    )
    if row is None:
        return None
    [run] = await _with_steps(conn, [record_to(RecordedRun, row)])
    return run


async def list_runs(
    conn: Queryable,
    *,
    pipeline_name: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
    include_steps: bool = True,
) -> list[RecordedRun]:
    """Runs newest first (by start time), optionally of one pipeline and/or in one status."""
    conditions, args = [], []
    for column, value in (("pipeline_name", pipeline_name), ("status", status)):
        if value is not None:
            args.append(value)
            conditions.append(f"{column} = ${len(args)}")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    n = len(args)
    rows = await conn.fetch(
        f"{_RUN_SELECT} {where} ORDER BY {_NEWEST_RUNS} LIMIT ${n + 1} OFFSET ${n + 2}",
        *args,
        limit,
        offset,
    )
    runs = [record_to(RecordedRun, row) for row in rows]
    return await _with_steps(conn, runs) if include_steps else runs


async def find_runs_by_id_prefix(
    conn: Queryable, prefix: str, *, limit: int = 10
) -> tuple[int, list[RunMatch]]:
    """How many runs have an id starting with ``prefix``, and the first ``limit``."""
    return await by_id_prefix(
        conn, RunMatch, "SELECT id, COALESCE(name, id) AS name", "pipeline_runs", prefix, limit
    )


async def list_pipeline_names(conn: Queryable) -> list[str]:
    """Every pipeline name a run started under, sorted."""
    rows = await conn.fetch(
        "SELECT DISTINCT pipeline_name FROM pipeline_runs WHERE pipeline_name IS NOT NULL "
        "ORDER BY pipeline_name"
    )
    return [str(row["pipeline_name"]) for row in rows]


_PIPELINE_SELECT = f"""
SELECT p.pipeline_name AS name, p.run_count, p.created_at, p.updated_at,
       r.id AS latest_run_id, COALESCE(r.name, r.id) AS latest_run_name,
       r.status AS latest_run_status
FROM (SELECT pipeline_name, count(*) AS run_count, min(started_at) AS created_at,
             max(started_at) AS updated_at
      FROM pipeline_runs WHERE pipeline_name IS NOT NULL AND {{where}}
      GROUP BY pipeline_name ORDER BY pipeline_name LIMIT $1 OFFSET $2) p
CROSS JOIN LATERAL (SELECT id, name, status FROM pipeline_runs r
                    WHERE r.pipeline_name = p.pipeline_name
                    ORDER BY {_NEWEST_RUNS} LIMIT 1) r
ORDER BY p.pipeline_name
"""


async def list_pipelines(
    conn: Queryable, *, limit: int | None = None, offset: int = 0
) -> list[PipelineSummary]:
    """Pipelines by name, each with its run count and latest run."""
    rows = await conn.fetch(_PIPELINE_SELECT.format(where="true"), limit, offset)
    return [record_to(PipelineSummary, row) for row in rows]


async def get_pipeline(conn: Queryable, name: str, *, runs: int = 50) -> PipelineWithRuns | None:
    """The pipeline ``name`` with its newest ``runs`` runs (newest first, with their steps)
    and its last successful (completed or cached) run; or None if no run has started under it.
    """
    row = await conn.fetchrow(_PIPELINE_SELECT.format(where="pipeline_name = $3"), 1, 0, name)
    if row is None:
        return None
    pipeline = record_to(PipelineWithRuns, row)
    pipeline.runs = await list_runs(conn, pipeline_name=name, limit=runs)
    succeeded = [r for r in pipeline.runs if r.status in SUCCEEDED]
    if not succeeded and len(pipeline.runs) < pipeline.run_count:
        rows = await conn.fetch(
            f"{_RUN_SELECT} WHERE pipeline_name = $1 AND status = ANY($2::text[]) "
            f"ORDER BY {_NEWEST_RUNS} LIMIT 1",
            name,
            _SUCCEEDED,
        )
        succeeded = await _with_steps(conn, [record_to(RecordedRun, r) for r in rows])
    pipeline.last_successful_run = succeeded[0] if succeeded else None
    return pipeline


async def _with_steps(conn: Queryable, runs: list[RecordedRun]) -> list[RecordedRun]:
    """Fill each run's ``steps`` with its step runs and their lineage."""
    by_id = {run.id: run for run in runs}
    for step in await steps_of_runs(conn, list(by_id)):
        by_id[step.run_id].steps[step.name] = step
    return runs
