"""The SQL that applies row changes, plus checkpoint and dead-letter writes.

A batch of row changes is applied in two round trips, whatever its size:

1. every row is binary-COPied into one temporary staging table, ``cairn_stage``,
   whose columns are the union of all writes' columns plus ``write`` (see
   :func:`stage_rows`); asyncpg's COPY encoder is several times faster than
   its executemany or array paths;
2. one multi-statement query (:data:`APPLY_STAGED_SQL`) moves the staged rows
   of each write into its table with ``INSERT ... SELECT ... ON CONFLICT`` and
   empties the stage.

Statements use unqualified table names: the connection's ``search_path``
selects the schema (see :func:`cairn_projections.connection.server_settings`).
Each upsert touches only the columns its write owns and skips rows that would
not change, so applying an event again is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import itemgetter
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

#: The session's temporary staging table and its columns, in COPY order.
STAGE_TABLE = "cairn_stage"
STAGE_COLUMNS: tuple[str, ...] = ("write", *sorted(COLUMN_TYPES))


def _is_json(column: str) -> bool:
    return COLUMN_TYPES[column] == "jsonb"


def _wire_type(column: str) -> str:
    """Staged type: jsonb travels as JSON text and is cast on the way in."""
    return "text" if _is_json(column) else COLUMN_TYPES[column]


#: Creates the staging table for this session (idempotent).
STAGING_DDL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGE_TABLE} (write text NOT NULL, "
    + ", ".join(f"{c} {_wire_type(c)}" for c in STAGE_COLUMNS[1:])
    + ")"
)


def upsert_sql(write: Write) -> str:
    """Moves the staged rows of ``write`` into its table (an INSERT ... ON CONFLICT)."""
    table, columns, keys = WRITE_TABLES[write], WRITE_COLUMNS[write], WRITE_KEYS[write]
    selected = ", ".join(f"{c}::jsonb" if _is_json(c) else c for c in columns)
    sql = (
        f"INSERT INTO {table} AS t ({', '.join(columns)}) "
        f"SELECT {selected} FROM {STAGE_TABLE} WHERE write = '{write.value}' "
        f"ON CONFLICT ({', '.join(keys)}) DO "
    )
    updated = [c for c in columns if c not in keys and c not in _INSERT_ONLY.get(write, ())]
    if write in _IMMUTABLE or not updated:
        return sql + "NOTHING"
    assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in updated)
    current = ", ".join(f"t.{c}" for c in updated)
    incoming = ", ".join(f"EXCLUDED.{c}" for c in updated)
    return sql + f"UPDATE SET {assignments} WHERE ({current}) IS DISTINCT FROM ({incoming})"


#: Applies everything staged, then empties the stage; no parameters (a simple query).
APPLY_STAGED_SQL = ";\n".join([*(upsert_sql(w) for w in Write), f"TRUNCATE {STAGE_TABLE}"])


def stage_rows(changes: Iterable[RowChange], dumps: Callable[[Any], str]) -> list[tuple[Any, ...]]:
    """The staging-table rows (``STAGE_COLUMNS`` order) for row changes in log order.

    One statement may not touch a row twice, so changes of one write with the
    same key are merged the way applying them one by one would end: the last
    one wins, or the first one for immutable rows. jsonb values are
    serialised with ``dumps``.
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
    staged = []
    for write, rows in by_write.items():
        widen, json_at, tag = _WIDEN[write], _JSON_AT[write], write.value
        for row in rows.values():
            if json_at:
                values = list(row)
                for i in json_at:
                    values[i] = dumps(values[i])
                staged.append(widen((tag, *values, None)))
            else:
                staged.append(widen((tag, *row, None)))
    return staged


def _widener(write: Write) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """Maps ``(tag, *row, None)`` to a staging row: each column's value, or the final None."""
    columns = WRITE_COLUMNS[write]
    absent = len(columns) + 1
    sources = [0] + [columns.index(c) + 1 if c in columns else absent for c in STAGE_COLUMNS[1:]]
    return itemgetter(*sources)


_KEY_WIDTH = {write: len(WRITE_KEYS[write]) for write in Write}
_WIDEN = {write: _widener(write) for write in Write}
_JSON_AT = {
    write: [i for i, c in enumerate(WRITE_COLUMNS[write]) if _is_json(c)] for write in Write
}


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
