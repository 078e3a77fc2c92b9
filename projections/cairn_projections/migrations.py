"""The read-model schema as an ordered list of migrations, gathered from the read models.

``migrate(conn, schema)`` creates ``schema`` if needed and applies the
migrations it has not seen yet, in one transaction, under an advisory lock, so
several processes may call it at once. Applied versions are recorded in
``<schema>.schema_migrations``.

Each read model module declares its :class:`~.read_model.Migration` pieces; the pieces of
one version from every module in :data:`~.catalogue.SCHEMA` are applied together as that
version, in the catalogue's order. A migration, once released, is never edited: a change
is a piece with a new version number. Every schema gets every read model's tables, so
projectors with different read models may share one.

The tables hold only what the events say (plus the projector's own
bookkeeping: checkpoints and dead letters), so a replay rebuilds them exactly.
There are no foreign keys: events may arrive in any order (a step's outputs
before the versions they name), and every write is an upsert.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .catalogue import SCHEMA
from .connection import Migratable, Queryable, quote_ident
from .read_model import Migration, ReadModel, Row


def gather(read_models: Iterable[ReadModel]) -> list[Migration]:
    """The migrations of ``read_models``: per version, their pieces in that order, joined."""
    pieces: dict[int, list[Migration]] = {}
    for model in read_models:
        for piece in model.migrations:
            pieces.setdefault(piece.version, []).append(piece)
    migrations = []
    for version in sorted(pieces):
        names = {piece.name for piece in pieces[version]}
        if len(names) != 1:
            raise ValueError(f"the pieces of migration {version} have several names: {names}")
        sql = "".join(piece.sql for piece in pieces[version])
        migrations.append(Migration(version, names.pop(), sql))
    return migrations


MIGRATIONS: list[Migration] = gather(SCHEMA)


class MigrationError(RuntimeError):
    """The database holds migrations this code does not know (it is older than the schema)."""


def _lock_key(schema: str) -> int:
    digest = hashlib.blake2b(f"cairn.migrate:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def migrate(conn: Migratable, schema: str = "public") -> list[int]:
    """Bring ``schema`` up to date; returns the versions applied now (empty if none).

    Safe to call from several processes at once: they serialise on an advisory
    lock and all but the first find nothing to do.
    """
    qschema = quote_ident(schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(schema))
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {qschema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {qschema}.schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await conn.fetch(f"SELECT version FROM {qschema}.schema_migrations")
        done = {int(row["version"]) for row in rows}
        known = {m.version for m in MIGRATIONS}
        if unknown := sorted(done - known):
            raise MigrationError(
                f"schema {schema!r} has migrations {unknown} that this version of cairn "
                f"does not know; upgrade cairn or use a fresh schema"
            )
        # SET LOCAL: the migration SQL is unqualified; the setting ends with the transaction.
        await conn.execute(f"SET LOCAL search_path TO {qschema}")
        applied = []
        for migration in sorted(MIGRATIONS):
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                f"INSERT INTO {qschema}.schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.version)
        return applied


async def check_columns(conn: Queryable, schema: str, row_types: Iterable[type[Row]]) -> None:
    """MigrationError unless ``schema`` has every column ``row_types`` write.

    A row field without a migration creating its column would fail every commit; this
    says so once, at start, with what to add.
    """
    rows = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1",
        schema,
    )
    have = {(str(r["table_name"]), str(r["column_name"])) for r in rows}
    missing = [
        f"{t.TABLE}.{column}"
        for t in row_types
        for column in t.__struct_fields__
        if (t.TABLE, column) not in have
    ]
    if missing:
        raise MigrationError(
            f"schema {schema!r} has no column {', '.join(missing)}, which the read models "
            f"write; add a migration piece creating it (a new version, in the read model's "
            f"module: see cairn_projections.migrations)"
        )
