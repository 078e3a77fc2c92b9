"""Cairn's read models: pure folds from events to rows, the SQL schema, and queries.

One module per read model (:mod:`.runs`, :mod:`.steps`, :mod:`.artifact_versions`, and the
projectors' :mod:`.bookkeeping`), each written in the framework of :mod:`.read_model`
and listed once in :mod:`.catalogue`. Depends on ``cairn_events`` and msgspec; callers
bring the asyncpg connections.
"""

from __future__ import annotations

from .artifact_versions import ARTIFACT_VERSIONS
from .bookkeeping import BOOKKEEPING, CHECKPOINT_CHANNEL, CHECKPOINT_SQL, DEAD_LETTER_SQL
from .catalogue import ALL_FOLDS, ALL_READ_MODELS, SCHEMA, fold, fold_all
from .connection import init_connection, quote_ident, server_settings
from .migrations import MIGRATIONS, MigrationError, check_columns, migrate
from .read_model import (
    FoldError,
    Folds,
    Migration,
    ReadModel,
    Row,
    SqlType,
    column_types,
    staging_table,
)
from .runs import RUNS
from .steps import STEPS
from .writes import apply_staged_sql, copy_records, stage_rows, staging_ddl, upsert_sql

__all__ = [
    "ALL_FOLDS",
    "ALL_READ_MODELS",
    "ARTIFACT_VERSIONS",
    "BOOKKEEPING",
    "CHECKPOINT_CHANNEL",
    "CHECKPOINT_SQL",
    "DEAD_LETTER_SQL",
    "MIGRATIONS",
    "RUNS",
    "SCHEMA",
    "STEPS",
    "FoldError",
    "Folds",
    "Migration",
    "MigrationError",
    "ReadModel",
    "Row",
    "SqlType",
    "apply_staged_sql",
    "column_types",
    "copy_records",
    "fold",
    "fold_all",
    "init_connection",
    "check_columns",
    "migrate",
    "quote_ident",
    "server_settings",
    "stage_rows",
    "staging_ddl",
    "staging_table",
    "upsert_sql",
]
