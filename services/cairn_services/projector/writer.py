"""The Postgres side of the projector: one transaction per batch, checkpoint included.

``commit(batch)`` writes every row change of the batch, its dead letters and
the new checkpoint in one transaction. If Postgres rejects the batch because
of the data (a constraint, an invalid value), the batch is written again event
by event, each in a savepoint, and only the events Postgres rejects become dead
letters. Any other failure (connection lost, server down) propagates: nothing
was written, and the caller retries the batch later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import asyncpg
import msgspec
import structlog
from cairn_projections import (
    CHECKPOINT_SQL,
    DEAD_LETTER_SQL,
    STAGING_DDL,
    WRITE_COLUMNS,
    RowChange,
    apply_staged_sql,
    migrate,
    server_settings,
    stage_rows,
    staging_table,
)
from cairn_projections.queries import get_checkpoint

from .batch import Batch, DeadLetter
from .errors import ProjectorBusyError

log = structlog.get_logger(__name__)

#: SQLSTATE classes that blame the data, not the server: data exception,
#: integrity constraint violation, program limit exceeded (e.g. index row too big).
_DATA_ERROR_CLASSES = ("22", "23", "54")
_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode
#: jsonb's binary wire format: a version byte, then the JSON text.
_JSONB_VERSION = b"\x01"


def is_data_error(exc: BaseException) -> bool:
    """True if Postgres refused a statement because of the values it was given."""
    state = getattr(exc, "sqlstate", None)
    return isinstance(exc, asyncpg.PostgresError) and str(state)[:2] in _DATA_ERROR_CLASSES


def _jsonb_encode(value: Any) -> bytes:
    return _JSONB_VERSION + _json_encode(value)


def _jsonb_decode(data: bytes) -> Any:
    return _json_decode(data[1:])


async def open_connection(database_url: str, schema: str) -> asyncpg.Connection:
    """A connection selecting ``schema``, with jsonb as Python values in binary format.

    Binary, because staged rows travel by binary COPY.
    """
    conn = await asyncpg.connect(database_url, server_settings=server_settings(schema))
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_jsonb_encode,
        decoder=_jsonb_decode,
        format="binary",
    )
    return conn


class ProjectionWriter:
    """Writes folded batches for one projector into one schema, holding its exclusive lock."""

    def __init__(self, database_url: str, projector: str, schema: str) -> None:
        self._database_url = database_url
        self._projector = projector
        self._schema = schema
        self._conn: asyncpg.Connection | None = None

    async def open(self) -> int:
        """Connect, migrate, take the projector's lock; returns the committed checkpoint.

        Raises ProjectorBusyError if another process runs this projector on this schema.
        """
        await self.close()
        conn = await open_connection(self._database_url, self._schema)
        try:
            await migrate(conn, self._schema)
            key = _lock_key(self._schema, self._projector)
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                raise ProjectorBusyError(
                    f"projector {self._projector!r} already runs on schema {self._schema!r} "
                    f"(another process holds its lock); stop it or pick another name"
                )
            checkpoint = await get_checkpoint(conn, self._projector)
            await conn.execute(STAGING_DDL)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        log.info("projector.postgres_connected", projector=self._projector, seq=checkpoint)
        return checkpoint

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=5)
            except Exception:  # a broken connection can't be closed politely
                conn.terminate()

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def commit(self, batch: Batch) -> list[DeadLetter]:
        """Write ``batch`` and move the checkpoint to ``batch.last_seq``; returns its dead letters."""
        conn = self._require()
        try:
            async with conn.transaction():
                await _apply(conn, (c for p in batch.projected for c in p.changes))
                await self._finish(conn, batch.dead, batch.last_seq)
            return batch.dead
        except asyncpg.PostgresError as exc:
            if not is_data_error(exc):
                raise
            log.warning(
                "projector.batch_rejected",
                first_seq=batch.first_seq,
                last_seq=batch.last_seq,
                error=str(exc),
            )
        return await self._commit_one_by_one(conn, batch)

    async def _commit_one_by_one(self, conn: asyncpg.Connection, batch: Batch) -> list[DeadLetter]:
        dead = list(batch.dead)
        async with conn.transaction():
            for event in batch.projected:
                try:
                    async with conn.transaction():  # a savepoint per event
                        await _apply(conn, event.changes, then_empty=True)
                except asyncpg.PostgresError as exc:
                    if not is_data_error(exc):
                        raise
                    reason = f"rejected by Postgres ({exc.sqlstate}): {exc}"
                    dead.append(DeadLetter(event.seq, event.subject, event.data, reason))
            dead.sort(key=lambda d: d.seq)
            await self._finish(conn, dead, batch.last_seq)
        return dead

    async def _finish(self, conn: asyncpg.Connection, dead: list[DeadLetter], seq: int) -> None:
        if dead:
            rows = [(self._projector, d.seq, d.subject, d.data, d.reason) for d in dead]
            await conn.executemany(DEAD_LETTER_SQL, rows)
        await conn.execute(CHECKPOINT_SQL, self._projector, seq)

    def _require(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            raise asyncpg.InterfaceError("the projector's Postgres connection is closed")
        return self._conn


async def _apply(
    conn: asyncpg.Connection, changes: Iterable[RowChange], *, then_empty: bool = False
) -> None:
    """COPY each write's rows into its stage, then upsert them all in one round trip."""
    staged = stage_rows(changes)
    for write, records in staged.items():
        await conn.copy_records_to_table(
            staging_table(write), records=records, columns=WRITE_COLUMNS[write]
        )
    if staged:
        await conn.execute(apply_staged_sql(staged, then_empty=then_empty))


def _lock_key(schema: str, projector: str) -> int:
    digest = hashlib.blake2b(f"cairn.projector:{schema}:{projector}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)
