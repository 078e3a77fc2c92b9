"""The Postgres side of the projector: one transaction per batch, checkpoint included.

``commit(batch)`` writes every row of the batch, its dead letters and
the new checkpoint in one transaction. If Postgres rejects the batch because
of the data (a constraint, an invalid value), the batch is written again in
halves, each in a savepoint, a rejected half halved again, until the events
Postgres rejects are isolated: they become dead letters with its reason, the
rest is committed with the checkpoint. Events are applied in stream order, as
one by one would: of two events that conflict, the later one is rejected.
With k rejected events among n this takes about 2k*log2(n/k) savepoints
instead of n. Any other failure (connection lost, server down) propagates:
nothing was written, and the caller retries the batch later.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

import asyncpg
import msgspec
import structlog
from cairn_projections import (
    ALL_FOLDS,
    CHECKPOINT_SQL,
    DEAD_LETTER_SQL,
    Row,
    apply_staged_sql,
    check_columns,
    copy_records,
    migrate,
    server_settings,
    stage_rows,
    staging_ddl,
    staging_table,
)
from cairn_projections.bookkeeping import get_checkpoint

from .batch import Batch, DeadLetter, Projected
from .errors import ProjectorBusyError

log = structlog.get_logger(__name__)

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

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
    """Writes folded batches for one projector into one schema, holding its exclusive lock.

    ``row_types`` are the rows its batches may hold (its read models'): it stages those.
    """

    def __init__(
        self,
        database_url: str,
        projector: str,
        schema: str,
        row_types: Sequence[type[Row]] | None = None,
    ) -> None:
        self._database_url = database_url
        self._projector = projector
        self._schema = schema
        self._row_types = tuple(ALL_FOLDS.row_types if row_types is None else row_types)
        self._staging_ddl = staging_ddl(self._row_types)
        self._conn: asyncpg.Connection | None = None
        self._log = log.bind(projector=projector, schema=schema)

    async def open(self) -> int:
        """Connect, migrate, take the projector's lock; returns the committed checkpoint.

        Raises ProjectorBusyError if another process runs this projector on this schema.
        """
        await self.close()
        conn = await open_connection(self._database_url, self._schema)
        try:
            await migrate(conn, self._schema)
            await check_columns(conn, self._schema, self._row_types)
            key = _lock_key(self._schema, self._projector)
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                raise ProjectorBusyError(
                    f"projector {self._projector!r} already runs on schema {self._schema!r} "
                    f"(another process holds its lock); stop it or pick another name"
                )
            checkpoint = await get_checkpoint(conn, self._projector)
            if self._staging_ddl:
                await conn.execute(self._staging_ddl)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self._log.info("projector.postgres_connected", seq=checkpoint)
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
                await _apply(conn, (row for p in batch.projected for row in p.rows))
                await self._finish(conn, batch.dead, batch.last_seq)
            return batch.dead
        except asyncpg.PostgresError as exc:
            if not is_data_error(exc):
                raise
            self._log.warning(
                "projector.batch_rejected",
                first_seq=batch.first_seq,
                last_seq=batch.last_seq,
                error=str(exc),
            )
        return await self._commit_isolating(conn, batch)

    async def _commit_isolating(self, conn: asyncpg.Connection, batch: Batch) -> list[DeadLetter]:
        """Commit ``batch`` but the events Postgres rejects, found by halving it."""
        started = time.perf_counter()
        async with conn.transaction():
            isolated = await isolate_rejected(
                batch.projected, partial(apply_in_savepoint, conn), known_rejected=True
            )
            rejected = [
                DeadLetter(event.seq, event.subject, event.data, _rejection_reason(exc))
                for event, exc in isolated.rejected
            ]
            dead = sorted(batch.dead + rejected, key=lambda d: d.seq)
            await self._finish(conn, dead, batch.last_seq)
        self._log.info(
            "projector.rejected_isolated",
            first_seq=batch.first_seq,
            last_seq=batch.last_seq,
            n=len(batch.projected),
            rejected=len(rejected),
            savepoints=isolated.applies,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return dead

    async def _finish(self, conn: asyncpg.Connection, dead: list[DeadLetter], seq: int) -> None:
        if dead:
            rows = [
                (self._projector, d.seq, _storable(d.subject), d.data, _storable(d.reason))
                for d in dead
            ]
            await conn.executemany(DEAD_LETTER_SQL, rows)
        await conn.execute(CHECKPOINT_SQL, self._projector, seq)

    def _require(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            raise asyncpg.InterfaceError("the projector's Postgres connection is closed")
        return self._conn


@dataclass(slots=True)
class Isolated(Generic[T, E]):
    """What :func:`isolate_rejected` found: the rejected items with why, and the applies made."""

    rejected: list[tuple[T, E]] = field(default_factory=list)
    applies: int = 0


async def isolate_rejected(
    items: Sequence[T],
    apply: Callable[[Sequence[T]], Awaitable[E | None]],
    *,
    known_rejected: bool = False,
) -> Isolated[T, E]:
    """Apply ``items`` in order, in chunks, and isolate the single items ``apply`` rejects.

    ``apply(chunk)`` applies a chunk all or nothing and returns the rejection,
    or None once applied; anything it raises propagates. A rejected chunk is
    split in two and the halves applied in order, recursively, so everything
    is applied in the order given and an item is rejected only when ``apply``
    rejects it alone. ``known_rejected`` says ``items`` as a whole was just
    rejected, so it is split without another try. With k rejected among n
    items, about 2k*log2(n/k) applies.
    """
    found: Isolated[T, E] = Isolated()

    async def settle(chunk: Sequence[T], known: bool) -> bool:
        """Apply ``chunk`` or what of it can be; True if it went in whole."""
        # A single item is always tried: what Postgres says about it is the dead letter's reason.
        if not known or len(chunk) == 1:
            found.applies += 1
            error = await apply(chunk)
            if error is None:
                return True
            if len(chunk) == 1:
                found.rejected.append((chunk[0], error))
                return False
        mid = len(chunk) // 2
        left_whole = await settle(chunk[:mid], known=False)
        # The chunk was rejected and its first half went in whole: the rest must hold the culprit.
        await settle(chunk[mid:], known=left_whole)
        return False

    if items:
        await settle(items, known_rejected)
    return found


async def apply_in_savepoint(
    conn: asyncpg.Connection, events: Sequence[Projected]
) -> asyncpg.PostgresError | None:
    """Apply ``events`` in a savepoint; Postgres's rejection of their data, or None if applied.

    A rejected savepoint rolls back its staged rows with it; an applied one
    empties the stages, so the next apply in the transaction starts clean.
    """
    try:
        async with conn.transaction():
            await _apply(conn, (row for event in events for row in event.rows), then_empty=True)
    except asyncpg.PostgresError as exc:
        if not is_data_error(exc):
            raise
        return exc
    return None


def _rejection_reason(exc: asyncpg.PostgresError) -> str:
    return f"rejected by Postgres ({exc.sqlstate}): {exc}"  # asyncpg's text includes the DETAIL


def _storable(text: str) -> str:
    """``text`` with NUL spelled out: Postgres text cannot hold it, and NATS subjects may."""
    return text.replace("\x00", "\\x00")


async def _apply(
    conn: asyncpg.Connection, rows: Iterable[Row], *, then_empty: bool = False
) -> None:
    """COPY each row type's rows into its stage, then upsert them all in one round trip."""
    staged = stage_rows(rows)
    for row_type, of_type in staged.items():
        await conn.copy_records_to_table(
            staging_table(row_type),
            records=copy_records(of_type),
            columns=row_type.__struct_fields__,
        )
    if staged:
        await conn.execute(apply_staged_sql(staged, then_empty=then_empty))


def _lock_key(schema: str, projector: str) -> int:
    digest = hashlib.blake2b(f"cairn.projector:{schema}:{projector}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)
