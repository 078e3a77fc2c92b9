"""The SQL behind each :class:`~.changes.Write`, plus checkpoint and dead-letter writes.

Statements use unqualified table names: the connection's ``search_path``
selects the schema (see :func:`cairn_projections.queries.server_settings`).
Each upsert touches only the columns its write owns and skips rows that
would not change, so re-applying an event is a no-op.
"""

from __future__ import annotations

from .changes import WRITE_COLUMNS, WRITE_KEYS, WRITE_TABLES, Write

#: Columns an upsert sets only when it inserts the row: a later write owns them.
_INSERT_ONLY: dict[Write, frozenset[str]] = {
    Write.STEP_FINISHED: frozenset({"run_id", "name"}),
    Write.STEP_FAILED: frozenset({"run_id", "name"}),
}

#: Writes whose rows never change once inserted (a version is immutable).
_IMMUTABLE: frozenset[Write] = frozenset({Write.ARTIFACT_VERSION})

#: The channel the projector notifies on commit; payload ``<schema>:<projector>:<seq>``.
CHECKPOINT_CHANNEL = "cairn_checkpoint"


def upsert_sql(write: Write) -> str:
    """The INSERT ... ON CONFLICT statement for ``write``, parameters $1.. in row order."""
    table, columns, keys = WRITE_TABLES[write], WRITE_COLUMNS[write], WRITE_KEYS[write]
    params = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    head = f"INSERT INTO {table} AS t ({', '.join(columns)}) VALUES ({params}) "
    head += f"ON CONFLICT ({', '.join(keys)}) DO "
    updated = [c for c in columns if c not in keys and c not in _INSERT_ONLY.get(write, ())]
    if write in _IMMUTABLE or not updated:
        return head + "NOTHING"
    assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in updated)
    current = ", ".join(f"t.{c}" for c in updated)
    incoming = ", ".join(f"EXCLUDED.{c}" for c in updated)
    return head + f"UPDATE SET {assignments} WHERE ({current}) IS DISTINCT FROM ({incoming})"


UPSERT_SQL: dict[Write, str] = {write: upsert_sql(write) for write in Write}

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
