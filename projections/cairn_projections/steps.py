"""The step runs read model: one row per step run, and its lineage edges.

``step_inputs`` / ``step_outputs`` hold one edge per argument / output key, pointing
at an artifact version id, with the position the step declared it at. Folds are
order-tolerant: a ``step.finished`` may be folded before its ``step.started`` or before
the versions its outputs name, and the rows end the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar

import msgspec
from cairn_events import CacheHit, CacheMissed, StepFailed, StepFinished, StepStarted, StepStatus

from .artifact_versions import VERSION_COLUMNS, ArtifactVersionRow
from .configs import Config
from .connection import Queryable
from .read_model import FoldError, Migration, ReadModel, Row, SqlType, record_to, require


class StepStartedRow(Row, kw_only=True):
    TABLE: ClassVar[str] = "step_runs"

    id: str
    run_id: str
    name: str
    function: str
    parameters: dict[str, Any]
    substitutions: dict[str, str]
    enable_cache: bool | None
    upstream_steps: list[str]
    started_at: datetime


class _LaterStepRunRow(Row, kw_only=True):
    """A write to a step run after its step.started, which may be folded first."""

    TABLE: ClassVar[str] = "step_runs"
    #: step.started owns them; a later event folded first fills them until it comes.
    INSERT_ONLY: ClassVar[frozenset[str]] = frozenset({"run_id", "name"})

    id: str
    run_id: str
    name: str


class StepFinishedRow(_LaterStepRunRow, kw_only=True):
    outcome: StepStatus
    finished_at: datetime
    duration_s: float


class StepFailedRow(StepFinishedRow, kw_only=True):
    error_type: str
    error_message: str
    traceback: str


class CacheHitRow(StepFinishedRow, kw_only=True):
    """A step run served from cache: cached, pointing at the step run it reused."""

    cache_key: str
    original_step_run_id: str
    original_run_id: str


class CacheMissedRow(_LaterStepRunRow, kw_only=True):
    """Why a step run was not served from cache."""

    cache_key: str | None
    cache_miss_reasons: list[str]
    cache_compared_with: str | None
    cache_compared_run: str | None


class _EdgeRow(Row, kw_only=True):
    KEY: ClassVar[tuple[str, ...]] = ("step_run_id", "key")

    step_run_id: str
    key: str
    artifact_version_id: str
    position: Annotated[int, SqlType("integer")]


class StepInputRow(_EdgeRow, kw_only=True):
    """An argument of a step run and the artifact version it read."""

    TABLE: ClassVar[str] = "step_inputs"


class StepOutputRow(_EdgeRow, kw_only=True):
    """An output key of a step run and the artifact version it stored."""

    TABLE: ClassVar[str] = "step_outputs"


_V1 = """
CREATE TABLE step_runs (
    id             text PRIMARY KEY,
    run_id         text NOT NULL,
    name           text NOT NULL,
    function       text,
    parameters     jsonb NOT NULL DEFAULT '{}',
    substitutions  jsonb NOT NULL DEFAULT '{}',
    enable_cache   boolean,
    upstream_steps jsonb NOT NULL DEFAULT '[]',
    started_at     timestamptz,
    outcome        text,
    finished_at    timestamptz,
    duration_s     double precision,
    error_type     text,
    error_message  text,
    traceback      text,
    status         text GENERATED ALWAYS AS (COALESCE(outcome, 'running')) STORED
) WITH (fillfactor = 70);
CREATE INDEX step_runs_by_run ON step_runs (run_id);

CREATE TABLE step_inputs (
    step_run_id         text NOT NULL,
    key                 text NOT NULL,
    artifact_version_id text NOT NULL,
    position            integer NOT NULL DEFAULT 0,
    PRIMARY KEY (step_run_id, key)
);
CREATE INDEX step_inputs_by_artifact ON step_inputs (artifact_version_id);

CREATE TABLE step_outputs (
    step_run_id         text NOT NULL,
    key                 text NOT NULL,
    artifact_version_id text NOT NULL,
    position            integer NOT NULL DEFAULT 0,
    PRIMARY KEY (step_run_id, key)
);
CREATE INDEX step_outputs_by_artifact ON step_outputs (artifact_version_id);
"""

_V3 = """
ALTER TABLE step_runs
    ADD COLUMN cache_key text,
    ADD COLUMN original_step_run_id text,
    ADD COLUMN original_run_id text,
    ADD COLUMN cache_miss_reasons jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN cache_compared_with text,
    ADD COLUMN cache_compared_run text;
CREATE INDEX step_runs_by_original ON step_runs (original_step_run_id)
    WHERE original_step_run_id IS NOT NULL;

-- The lineage index's change cursor on the step runs' tables (see runs._V3, applied
-- before this piece, for row_xid and cairn_row_written()).
ALTER TABLE step_runs
    ADD COLUMN row_xid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint;
ALTER TABLE step_inputs
    ADD COLUMN row_xid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint;
ALTER TABLE step_outputs
    ADD COLUMN row_xid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint;
CREATE TRIGGER step_runs_written BEFORE UPDATE ON step_runs
    FOR EACH ROW EXECUTE FUNCTION cairn_row_written();
CREATE TRIGGER step_inputs_written BEFORE UPDATE ON step_inputs
    FOR EACH ROW EXECUTE FUNCTION cairn_row_written();
CREATE TRIGGER step_outputs_written BEFORE UPDATE ON step_outputs
    FOR EACH ROW EXECUTE FUNCTION cairn_row_written();
CREATE INDEX step_runs_by_row_xid ON step_runs USING brin (row_xid)
    WITH (pages_per_range = 8, autosummarize = on);
CREATE INDEX step_inputs_by_row_xid ON step_inputs (row_xid);
CREATE INDEX step_outputs_by_row_xid ON step_outputs (row_xid);
"""

STEPS = ReadModel(
    "steps",
    rows=[
        StepStartedRow,
        StepFinishedRow,
        StepFailedRow,
        CacheHitRow,
        CacheMissedRow,
        StepInputRow,
        StepOutputRow,
    ],
    migrations=[
        Migration(1, "read models", _V1),
        Migration(3, "caching and the lineage index", _V3),
    ],
)

_STEP_IDS = ("run_id", "step_run_id", "step_name")
#: Inputs a step loaded itself come after its arguments (a step has fewer than this).
_LOADED_POSITIONS = 100_000


@STEPS.folds(StepStarted)
def fold_step_started(event: StepStarted) -> list[Row]:
    require(event, _STEP_IDS)
    step = StepStartedRow(
        id=event.step_run_id,
        run_id=event.run_id,
        name=event.step_name,
        function=event.function,
        parameters=event.parameters,
        substitutions=event.substitutions,
        enable_cache=event.enable_cache,
        upstream_steps=event.upstream_steps,
        started_at=event.occurred_at,
    )
    return [step, *_edges(StepInputRow, event, event.inputs)]


@STEPS.folds(StepFinished)
def fold_step_finished(event: StepFinished) -> list[Row]:
    require(event, _STEP_IDS)
    step = StepFinishedRow(
        id=event.step_run_id,
        run_id=event.run_id,
        name=event.step_name,
        outcome=StepStatus.COMPLETED,
        finished_at=event.occurred_at,
        duration_s=event.duration_s,
    )
    loaded = _edges(StepInputRow, event, event.loaded, first=_LOADED_POSITIONS)
    return [step, *_edges(StepOutputRow, event, event.outputs), *loaded]


@STEPS.folds(CacheHit)
def fold_cache_hit(event: CacheHit) -> list[Row]:
    require(event, (*_STEP_IDS, "cache_key", "source_step_run_id"))
    step = CacheHitRow(
        id=event.step_run_id,
        run_id=event.run_id,
        name=event.step_name,
        outcome=StepStatus.CACHED,
        finished_at=event.occurred_at,
        duration_s=0.0,
        cache_key=event.cache_key,
        original_step_run_id=event.source_step_run_id,
        original_run_id=event.source_run_id,
    )
    return [step, *_edges(StepOutputRow, event, event.outputs)]


@STEPS.folds(CacheMissed)
def fold_cache_missed(event: CacheMissed) -> list[Row]:
    require(event, _STEP_IDS)  # no key when computing it failed: the reasons say so
    return [
        CacheMissedRow(
            id=event.step_run_id,
            run_id=event.run_id,
            name=event.step_name,
            cache_key=event.cache_key or None,
            cache_miss_reasons=list(event.reasons),
            cache_compared_with=event.compared_with,
            cache_compared_run=event.compared_run,
        )
    ]


@STEPS.folds(StepFailed)
def fold_step_failed(event: StepFailed) -> list[Row]:
    require(event, _STEP_IDS)
    return [
        StepFailedRow(
            id=event.step_run_id,
            run_id=event.run_id,
            name=event.step_name,
            outcome=StepStatus.FAILED,
            finished_at=event.occurred_at,
            duration_s=event.duration_s,
            error_type=event.error_type,
            error_message=event.error_message,
            traceback=event.traceback,
        )
    ]


def _edges(
    edge: type[_EdgeRow],
    event: StepStarted | StepFinished | CacheHit,
    edges: dict[str, str],
    *,
    first: int = 0,
) -> list[Row]:
    """One edge per entry; ``position`` (from ``first``) keeps the order the step declared
    them in."""
    rows: list[Row] = []
    for position, (key, artifact_version_id) in enumerate(edges.items(), start=first):
        if not key or not artifact_version_id:
            raise FoldError(
                f"{event.tag} {event.event_id}: lineage edge {key!r} -> "
                f"{artifact_version_id!r} has an empty key or artifact version id"
            )
        rows.append(
            edge(
                step_run_id=event.step_run_id,
                key=key,
                artifact_version_id=artifact_version_id,
                position=position,
            )
        )
    return rows


# -- queries ----------------------------------------------------------------------------


class RecordedStep(msgspec.Struct, kw_only=True):
    """A step run as the queries return it, with its inputs and outputs by argument name /
    output key (in the order the step declared them). Edges whose artifact version is not
    projected yet are left out until it is."""

    id: str
    run_id: str
    name: str
    status: StepStatus
    function: str | None
    parameters: dict[str, Any]
    substitutions: dict[str, str]
    enable_cache: bool | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    error_type: str | None
    error_message: str | None
    cache_key: str | None = None
    original_step_run_id: str | None = None
    cache_miss_reasons: list[str] = msgspec.field(default_factory=list)
    cache_compared_run: str | None = None
    inputs: dict[str, ArtifactVersionRow] = msgspec.field(default_factory=dict)
    outputs: dict[str, ArtifactVersionRow] = msgspec.field(default_factory=dict)

    @property
    def config(self) -> Config:
        return Config(
            parameters=self.parameters,
            substitutions=self.substitutions,
            enable_cache=self.enable_cache,
        )

    @property
    def error(self) -> str | None:
        """``"<error type>: <message>"`` of a failed step; None otherwise."""
        return f"{self.error_type}: {self.error_message}" if self.error_type else None


#: The columns a step run is read with (by the lineage queries too).
STEP_COLUMNS = ", ".join(
    f for f in RecordedStep.__struct_fields__ if f not in ("inputs", "outputs")
)


async def steps_of_runs(conn: Queryable, run_ids: Sequence[str]) -> list[RecordedStep]:
    """The step runs of ``run_ids`` by start time, with their lineage (two queries in all)."""
    if not run_ids:
        return []
    rows = await conn.fetch(
        f"SELECT {STEP_COLUMNS} FROM step_runs WHERE run_id = ANY($1::text[]) "
        "ORDER BY started_at NULLS LAST, id",
        list(run_ids),
    )
    steps = [record_to(RecordedStep, row) for row in rows]
    await attach_edges(conn, {step.id: step for step in steps})
    return steps


async def attach_edges(conn: Queryable, steps: dict[str, RecordedStep]) -> None:
    """Fill in the inputs and outputs of ``steps`` (by id): one query."""
    if not steps:
        return
    rows = await conn.fetch(
        f"""
        SELECT e.side, e.step_run_id, e.key, {VERSION_COLUMNS}
        FROM (SELECT 'inputs' AS side, step_run_id, key, artifact_version_id, position
                FROM step_inputs WHERE step_run_id = ANY($1::text[])
              UNION ALL
              SELECT 'outputs', step_run_id, key, artifact_version_id, position
                FROM step_outputs WHERE step_run_id = ANY($1::text[])) e
        JOIN artifact_versions av ON av.id = e.artifact_version_id
        ORDER BY e.side, e.step_run_id, e.position, e.key
        """,
        list(steps),
    )
    for row in rows:
        step = steps[row["step_run_id"]]
        edges = step.inputs if row["side"] == "inputs" else step.outputs
        edges[row["key"]] = record_to(ArtifactVersionRow, row)
