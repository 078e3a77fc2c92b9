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
    CHECKPOINT_CHANNEL,
    CHECKPOINT_SQL,
    DEAD_LETTER_SQL,
    STAGING_DDL,
    apply_staged_sql,
    stage_rows,
    staging_table,
    upsert_sql,
)

__all__ = [
    "CHECKPOINT_CHANNEL",
    "CHECKPOINT_SQL",
    "COLUMN_TYPES",
    "DEAD_LETTER_SQL",
    "MIGRATIONS",
    "STAGING_DDL",
    "WRITE_COLUMNS",
    "WRITE_KEYS",
    "WRITE_TABLES",
    "FoldError",
    "Migration",
    "MigrationError",
    "RowChange",
    "Write",
    "apply_staged_sql",
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
    "staging_table",
    "upsert_sql",
]
