"""Row changes: what a fold asks the read models to do, as plain tuples.

A fold never talks to a database. It returns ``RowChange`` values, each naming
one ``Write`` (an idempotent upsert into one table, see :mod:`.writes`) and the
row of parameters for it, in the order of ``WRITE_COLUMNS[write]``.

Every write owns a fixed set of columns and fills only those, so applying the
changes of a log in any order, any number of times, gives the same rows.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple


class Write(StrEnum):
    """One kind of idempotent upsert; the value names the table it writes."""

    RUN_STARTED = "run_started"
    RUN_FINISHED = "run_finished"
    STEP_STARTED = "step_started"
    STEP_FINISHED = "step_finished"
    STEP_FAILED = "step_failed"
    STEP_INPUT = "step_input"
    STEP_OUTPUT = "step_output"
    ARTIFACT_VERSION = "artifact_version"


class RowChange(NamedTuple):
    """One upsert: ``row`` holds the values of ``WRITE_COLUMNS[write]`` in that order."""

    write: Write
    row: tuple[Any, ...]


#: The table each write goes to.
WRITE_TABLES: dict[Write, str] = {
    Write.RUN_STARTED: "pipeline_runs",
    Write.RUN_FINISHED: "pipeline_runs",
    Write.STEP_STARTED: "step_runs",
    Write.STEP_FINISHED: "step_runs",
    Write.STEP_FAILED: "step_runs",
    Write.STEP_INPUT: "step_inputs",
    Write.STEP_OUTPUT: "step_outputs",
    Write.ARTIFACT_VERSION: "artifact_versions",
}

#: The columns each write fills, in row order; the first ones form the conflict key.
WRITE_COLUMNS: dict[Write, tuple[str, ...]] = {
    Write.RUN_STARTED: (
        "id",
        "name",
        "pipeline_name",
        "parameters",
        "substitutions",
        "enable_cache",
        "step_names",
        "started_at",
    ),
    Write.RUN_FINISHED: ("id", "outcome", "finished_at", "duration_s", "error", "failed_step"),
    Write.STEP_STARTED: (
        "id",
        "run_id",
        "name",
        "function",
        "parameters",
        "substitutions",
        "enable_cache",
        "upstream_steps",
        "started_at",
    ),
    Write.STEP_FINISHED: ("id", "run_id", "name", "outcome", "finished_at", "duration_s"),
    Write.STEP_FAILED: (
        "id",
        "run_id",
        "name",
        "outcome",
        "finished_at",
        "duration_s",
        "error_type",
        "error_message",
        "traceback",
    ),
    Write.STEP_INPUT: ("step_run_id", "key", "artifact_version_id", "position"),
    Write.STEP_OUTPUT: ("step_run_id", "key", "artifact_version_id", "position"),
    Write.ARTIFACT_VERSION: (
        "id",
        "name",
        "version",
        "numeric_version",
        "numeric_count",
        "uri",
        "type",
        "data_type",
        "materializer",
        "content_hash",
        "size",
        "created_at",
        "tags",
        "producer_run_id",
        "producer_step_run_id",
        "output_name",
        "visualizations",
        "claim_order",
    ),
}

#: SQL type of every column a write fills; ``jsonb`` values are Python values in rows.
COLUMN_TYPES: dict[str, str] = {
    "id": "text",
    "name": "text",
    "pipeline_name": "text",
    "parameters": "jsonb",
    "substitutions": "jsonb",
    "enable_cache": "boolean",
    "step_names": "jsonb",
    "started_at": "timestamptz",
    "outcome": "text",
    "finished_at": "timestamptz",
    "duration_s": "double precision",
    "error": "text",
    "failed_step": "text",
    "run_id": "text",
    "function": "text",
    "upstream_steps": "jsonb",
    "error_type": "text",
    "error_message": "text",
    "traceback": "text",
    "step_run_id": "text",
    "key": "text",
    "artifact_version_id": "text",
    "position": "integer",
    "version": "text",
    "numeric_version": "bigint",
    "numeric_count": "bigint",
    "claim_order": "bigint",
    "uri": "text",
    "type": "text",
    "data_type": "text",
    "materializer": "text",
    "content_hash": "text",
    "size": "bigint",
    "created_at": "timestamptz",
    "tags": "jsonb",
    "producer_run_id": "text",
    "producer_step_run_id": "text",
    "output_name": "text",
    "visualizations": "jsonb",
}

#: The conflict key of each write's table.
WRITE_KEYS: dict[Write, tuple[str, ...]] = {
    write: ("step_run_id", "key") if write in (Write.STEP_INPUT, Write.STEP_OUTPUT) else ("id",)
    for write in Write
}
