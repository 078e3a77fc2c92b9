"""The SQL that applies folded rows, derived from the row types.

A batch of rows is applied set-based, whatever its size:

1. each row type's rows are binary-COPied into a per-session temporary staging
   table (:func:`staging_ddl` makes them, :func:`copy_records` gives the records);
   asyncpg's COPY encoder is several times faster than its executemany or array
   paths. COPY is binary, so jsonb values need a binary jsonb codec on the connection;
2. one multi-statement query (:func:`apply_staged_sql`) moves the staged rows of each
   type into its table with ``INSERT ... SELECT ... ON CONFLICT`` and empties the stages.

Statements use unqualified table names: the connection's ``search_path``
selects the schema (see :func:`cairn_projections.connection.server_settings`).
Each upsert touches only the columns its row type owns and skips rows that would
not change, so applying an event again is a no-op.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

from msgspec.structs import astuple

from .read_model import Row, column_types, staging_table


def staging_ddl(row_types: Iterable[type[Row]]) -> str:
    """Creates the staging table of each of ``row_types`` for this session (idempotent).

    Each commit empties them (ON COMMIT DELETE ROWS truncates in place: far cheaper than
    a TRUNCATE statement).
    """
    return ";\n".join(
        f"CREATE TEMP TABLE IF NOT EXISTS {staging_table(t)} "
        f"({', '.join(f'{c} {sql}' for c, sql in column_types(t).items())}) ON COMMIT DELETE ROWS"
        for t in row_types
    )


@functools.cache
def upsert_sql(row_type: type[Row]) -> str:
    """Moves the rows staged for ``row_type`` into its table."""
    columns, keys = row_type.__struct_fields__, row_type.KEY
    names = ", ".join(columns)
    sql = (
        f"INSERT INTO {row_type.TABLE} AS t ({names}) SELECT {names} "
        f"FROM {staging_table(row_type)} ON CONFLICT ({', '.join(keys)}) DO "
    )
    updated = [c for c in columns if c not in keys and c not in row_type.INSERT_ONLY]
    if row_type.IMMUTABLE or not updated:
        return sql + "NOTHING"
    assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in updated)
    current = ", ".join(f"t.{c}" for c in updated)
    incoming = ", ".join(f"EXCLUDED.{c}" for c in updated)
    return sql + f"UPDATE SET {assignments} WHERE ({current}) IS DISTINCT FROM ({incoming})"


def apply_staged_sql(row_types: Iterable[type[Row]], *, then_empty: bool = False) -> str:
    """One query (no parameters) applying what is staged for ``row_types``.

    The stages empty at commit; ``then_empty`` empties them at once, for
    several applies in one transaction (e.g. one savepoint per event).
    """
    statements = []
    for row_type in row_types:
        statements.append(upsert_sql(row_type))
        if then_empty:
            statements.append(f"DELETE FROM {staging_table(row_type)}")
    return ";\n".join(statements)


@functools.cache
def _key_of(row_type: type[Row]) -> Callable[[Row], Any]:
    return attrgetter(*row_type.KEY)


def stage_rows(rows: Iterable[Row]) -> dict[type[Row], list[Row]]:
    """The rows to COPY into each row type's staging table, from rows in log order.

    One statement may not touch a row twice, so rows of one type with the same key
    are merged the way applying them one by one would end: the last one wins, or
    the first one for immutable rows.
    """
    by_type: dict[type[Row], dict[Any, Row]] = {}
    stage_of: dict[type[Row], tuple[dict[Any, Row], Callable[[Row], Any], bool]] = {}
    for row in rows:
        row_type = type(row)
        stage = stage_of.get(row_type)
        if stage is None:
            by_type[row_type] = {}
            stage = stage_of[row_type] = (by_type[row_type], _key_of(row_type), row_type.IMMUTABLE)
        staged, key_of, immutable = stage
        key = key_of(row)
        if immutable and key in staged:
            continue
        staged[key] = row
    return {row_type: list(staged.values()) for row_type, staged in by_type.items()}


def copy_records(rows: Iterable[Row]) -> list[tuple[Any, ...]]:
    """``rows`` as COPY records: values in field order, the staging table's column order."""
    return [astuple(row) for row in rows]
