"""The SQL that applies row changes, plus checkpoint and dead-letter writes.

A batch of row changes is applied set-based, whatever its size:

1. each write's rows are binary-COPied into a per-session temporary staging
   table (see :func:`stage_rows`); asyncpg's COPY encoder is several times
   faster than its executemany or array paths. COPY is binary, so jsonb
   values need a binary jsonb codec on the connection;
2. one multi-statement query (:func:`apply_staged_sql`) moves the staged rows
   of each write into its table with ``INSERT ... SELECT ... ON CONFLICT`` and
   empties the stages.

Statements use unqualified table names: the connection's ``search_path``
selects the schema (see :func:`cairn_projections.connection.server_settings`).
Each upsert touches only the columns its write owns and skips rows that would
not change, so applying an event again is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .changes import COLUMN_TYPES, WRITE_COLUMNS, WRITE_KEYS, WRITE_TABLES, RowChange, Write

#: Columns an upsert sets only when it inserts the row: a later write owns them.
_INSERT_ONLY: dict[Write, frozenset[str]] = {
    Write.STEP_FINISHED: frozenset({"run_id", "name"}),
    Write.STEP_FAILED: frozenset({"run_id", "name"}),
}

#: Writes whose rows never change once inserted (a version is immutable): first one wins.
_IMMUTABLE: frozenset[Write] = frozenset({Write.ARTIFACT_VERSION})

#: The channel the projector notifies on commit; payload ``<schema>:<projector>:<seq>``.
CHECKPOINT_CHANNEL = "cairn_checkpoint"


def staging_table(write: Write) -> str:
    """The session's temporary table that ``write``'s rows are copied into."""
    return f"cairn_stage_{write.value}"


#: Creates every write's staging table for this session (idempotent). Each commit empties
#: them (ON COMMIT DELETE ROWS truncates in place: far cheaper than a TRUNCATE statement).
STAGING_DDL = ";\n".join(
    f"CREATE TEMP TABLE IF NOT EXISTS {staging_table(w)} "
    f"({', '.join(f'{c} {COLUMN_TYPES[c]}' for c in WRITE_COLUMNS[w])}) ON COMMIT DELETE ROWS"
    for w in Write
)


def upsert_sql(write: Write) -> str:
    """Moves the rows staged for ``write`` into its table."""
    table, columns, keys = WRITE_TABLES[write], WRITE_COLUMNS[write], WRITE_KEYS[write]
    names = ", ".join(columns)
    sql = (
        f"INSERT INTO {table} AS t ({names}) SELECT {names} FROM {staging_table(write)} "
        f"ON CONFLICT ({', '.join(keys)}) DO "
    )
    updated = [c for c in columns if c not in keys and c not in _INSERT_ONLY.get(write, ())]
    if write in _IMMUTABLE or not updated:
        sql += "NOTHING"
    else:
        assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in updated)
        current = ", ".join(f"t.{c}" for c in updated)
        incoming = ", ".join(f"EXCLUDED.{c}" for c in updated)
        sql += f"UPDATE SET {assignments} WHERE ({current}) IS DISTINCT FROM ({incoming})"
    return sql


_UPSERT_SQL = {write: upsert_sql(write) for write in Write}
_KEY_WIDTH = {write: len(WRITE_KEYS[write]) for write in Write}


def apply_staged_sql(writes: Iterable[Write], *, then_empty: bool = False) -> str:
    """One query (no parameters) applying what is staged for ``writes``.

    The stages empty at commit; ``then_empty`` empties them at once, for
    several applies in one transaction (e.g. one savepoint per event).
    """
    statements = []
    for write in writes:
        statements.append(_UPSERT_SQL[write])
        if then_empty:
            statements.append(f"DELETE FROM {staging_table(write)}")
    return ";\n".join(statements)


def stage_rows(changes: Iterable[RowChange]) -> dict[Write, list[tuple[Any, ...]]]:
    """The rows to COPY into each write's staging table, from row changes in log order.

    One statement may not touch a row twice, so changes of one write with the
    same key are merged the way applying them one by one would end: the last
    one wins, or the first one for immutable rows.
    """
    by_write: dict[Write, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
    for write, row in changes:
        rows = by_write.get(write)
        if rows is None:
            rows = by_write[write] = {}
        key = row[: _KEY_WIDTH[write]]
        if write in _IMMUTABLE and key in rows:
            continue
        rows[key] = row
    return {write: list(rows.values()) for write, rows in by_write.items()}


#: $1 projector name, $2 stream seq; moves the checkpoint forward only and notifies listeners.
CHECKPOINT_SQL = f"""
WITH saved AS (
    INSERT INTO projector_checkpoints AS c (name, last_seq, updated_at)
    VALUES ($1, $2, now())
    ON CONFLICT (name) DO UPDATE
        SET last_seq = GREATEST(c.last_seq, EXCLUDED.last_seq), updated_at = now()
    RETURNING last_seq
)
SELECT pg_notify('{CHECKPOINT_CHANNEL}', current_schema() || ':' || $1 || ':' || last_seq)
FROM saved
"""

#: $1 projector, $2 seq, $3 subject, $4 raw data, $5 reason.
DEAD_LETTER_SQL = """
INSERT INTO dead_letters (projector, seq, subject, data, reason)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (projector, seq) DO NOTHING
"""
