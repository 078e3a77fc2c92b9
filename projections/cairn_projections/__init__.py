"""Cairn's read models: pure folds from events to row changes, the SQL schema, and queries.

Depends on ``cairn_events`` and the standard library only; callers bring the
asyncpg connections.
"""

from __future__ import annotations

from .changes import COLUMN_TYPES, WRITE_COLUMNS, WRITE_KEYS, WRITE_TABLES, RowChange, Write
from .connection import init_connection, quote_ident, server_settings
from .folds import (
    FoldError,
    fold,
    fold_all,
    fold_artifact_materialized,
    fold_run_finished,
    fold_run_started,
    fold_step_failed,
    fold_step_finished,
    fold_step_started,
)
from .migrations import MIGRATIONS, Migration, MigrationError, migrate
from .writes import (
    APPLY_STAGED_SQL,
    CHECKPOINT_CHANNEL,
    CHECKPOINT_SQL,
    DEAD_LETTER_SQL,
    STAGE_COLUMNS,
    STAGE_TABLE,
    STAGING_DDL,
    stage_rows,
    upsert_sql,
)

__all__ = [
    "APPLY_STAGED_SQL",
    "CHECKPOINT_CHANNEL",
    "CHECKPOINT_SQL",
    "COLUMN_TYPES",
    "DEAD_LETTER_SQL",
    "MIGRATIONS",
    "STAGE_COLUMNS",
    "STAGE_TABLE",
    "STAGING_DDL",
    "WRITE_COLUMNS",
    "WRITE_KEYS",
    "WRITE_TABLES",
    "FoldError",
    "Migration",
    "MigrationError",
    "RowChange",
    "Write",
    "fold",
    "fold_all",
    "fold_artifact_materialized",
    "fold_run_finished",
    "fold_run_started",
    "fold_step_failed",
    "fold_step_finished",
    "fold_step_started",
    "init_connection",
    "migrate",
    "quote_ident",
    "server_settings",
    "stage_rows",
    "upsert_sql",
]
