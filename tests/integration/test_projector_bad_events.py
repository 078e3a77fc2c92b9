"""Events Postgres rejects, against a real Postgres: isolated by halving, the rest committed.

These drive ``ProjectionWriter.commit`` with batches folded from events, as the
projector hands them over, so a batch's composition is exact (no fetch timing).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from cairn_events import ArtifactMaterialized, Event, encode, subject_of
from cairn_projections import ALL_FOLDS, fold, migrate, staging_ddl, staging_table
from cairn_services.projector.batch import Batch, DeadLetter, Projected
from cairn_services.projector.writer import (
    ProjectionWriter,
    apply_in_savepoint,
    open_connection,
)
from factories import clash, completed_runs, stored_version

PROJECTOR = "bad-events"


@pytest.fixture
async def writer(fresh_database: str) -> AsyncIterator[ProjectionWriter]:
    w = ProjectionWriter(fresh_database, PROJECTOR, "public")
    await w.open()
    yield w
    await w.close()


def batch_of(events: list[Event], first_seq: int = 1) -> Batch:
    """What fold_batch makes of ``events`` delivered at ``first_seq``, ``first_seq + 1``, ..."""
    batch = Batch(first_seq=first_seq, last_seq=first_seq + len(events) - 1)
    for seq, event in enumerate(events, first_seq):
        batch.projected.append(Projected(seq, subject_of(event), encode(event), fold(event)))
    return batch


async def fetch(dsn: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def table_counts(dsn: str) -> dict[str, int]:
    tables = ("pipeline_runs", "step_runs", "artifact_versions", "step_outputs", "dead_letters")
    counts = {}
    for table in tables:
        [row] = await fetch(dsn, f"SELECT count(*) AS n FROM {table}")
        counts[table] = row["n"]
    return counts


async def checkpoint(dsn: str) -> int | None:
    rows = await fetch(dsn, "SELECT last_seq FROM projector_checkpoints WHERE name = $1", PROJECTOR)
    return rows[0]["last_seq"] if rows else None


async def test_rejected_events_among_many_are_dead_lettered_and_the_rest_committed(
    writer: ProjectionWriter, fresh_database: str
) -> None:
    good = completed_runs("g", n_runs=100)  # 1,100 events
    versions = [e for e in good if isinstance(e, ArtifactMaterialized)]
    huge = stored_version("av-huge", secrets.token_urlsafe(12000), "step-g-0-0")  # too big to index
    bad = [clash(versions[i], f"bad-{i}") for i in (0, 40, 41, 150)] + [huge]
    events = list(good)
    for offset, event in zip((5, 200, 201, 700, 1099), bad, strict=True):
        events.insert(offset, event)  # later than the versions they clash with
    batch = batch_of(events, first_seq=101)
    bad_seqs = {batch.projected[events.index(e)].seq for e in bad}

    dead = await writer.commit(batch)

    assert {d.seq for d in dead} == bad_seqs
    assert [d.seq for d in dead] == sorted(bad_seqs)
    reasons = {d.seq: d.reason for d in dead}
    for event in bad[:-1]:
        reason = reasons[batch.projected[events.index(event)].seq]
        assert "rejected by Postgres (23505)" in reason
        assert "artifact_versions_name_version" in reason and event.name in reason
    assert "rejected by Postgres (54000)" in reasons[batch.projected[events.index(huge)].seq]
    assert await table_counts(fresh_database) == {
        "pipeline_runs": 100,
        "step_runs": 300,
        "artifact_versions": 300,
        "step_outputs": 300,
        "dead_letters": 5,
    }
    rows = await fetch(fresh_database, "SELECT seq, reason FROM dead_letters ORDER BY seq")
    assert [(r["seq"], r["reason"]) for r in rows] == [(d.seq, d.reason) for d in dead]
    assert await checkpoint(fresh_database) == batch.last_seq
    kept = await fetch(fresh_database, "SELECT id FROM artifact_versions WHERE id LIKE 'clash-%'")
    assert kept == []


@pytest.mark.parametrize("gap", [1, 2, 3, 64, 500])
async def test_of_two_events_claiming_one_version_the_earlier_is_kept(
    writer: ProjectionWriter, fresh_database: str, gap: int
) -> None:
    events = completed_runs("p", n_runs=60)  # 660 events
    first = stored_version("av-first", "contested", "step-p-0-0")
    second = stored_version("av-second", "contested", "step-p-0-1")
    events.insert(100, first)
    events.insert(100 + gap, second)
    batch = batch_of(events)

    [dead] = await writer.commit(batch)

    assert dead.seq == batch.projected[100 + gap].seq
    assert "23505" in dead.reason
    [row] = await fetch(fresh_database, "SELECT id FROM artifact_versions WHERE name = 'contested'")
    assert row["id"] == "av-first"
    assert (await table_counts(fresh_database))["artifact_versions"] == 60 * 3 + 1


async def test_a_rolled_back_savepoint_leaves_no_staged_rows(fresh_database: str) -> None:
    conn = await open_connection(fresh_database, "public")
    try:
        await migrate(conn, "public")
        await conn.execute(staging_ddl(ALL_FOLDS.row_types))
        taken = batch_of([stored_version("av-1", "taken", "s")]).projected
        rival = batch_of([stored_version("av-2", "taken", "s"), *completed_runs("r", 1)]).projected
        async with conn.transaction():
            assert await apply_in_savepoint(conn, taken) is None
            error = await apply_in_savepoint(conn, rival)
            assert isinstance(error, asyncpg.UniqueViolationError)
            for row_type in ALL_FOLDS.row_types:  # else the next apply would upsert them again
                assert await conn.fetchval(f"SELECT count(*) FROM {staging_table(row_type)}") == 0
            assert await apply_in_savepoint(conn, rival[1:]) is None
            assert await conn.fetchval("SELECT count(*) FROM pipeline_runs") == 1
    finally:
        await conn.close()


async def test_a_failure_that_is_not_the_data_propagates_and_writes_nothing(
    writer: ProjectionWriter, fresh_database: str, database_url: str
) -> None:
    db = fresh_database.rsplit("/", 1)[1]
    await fetch(database_url, f"ALTER DATABASE \"{db}\" SET lock_timeout = '300ms'")
    await writer.open()  # reconnect, to pick the setting up
    version = stored_version("av-1", "taken", "s")
    await writer.commit(batch_of([version]))
    # the clash is refused (a data error); the run then waits on a lock (not one) and gives up
    batch = batch_of([clash(version, "c"), *completed_runs("l", 1, steps=0)], first_seq=2)
    locker = await asyncpg.connect(fresh_database)
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE pipeline_runs IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(asyncpg.LockNotAvailableError):
                await writer.commit(batch)
    finally:
        await locker.close()
    assert await checkpoint(fresh_database) == 1
    assert (await table_counts(fresh_database))["dead_letters"] == 0

    [dead] = await writer.commit(batch)  # the caller's retry, once the lock is gone
    assert dead.seq == 2 and "23505" in dead.reason
    assert await checkpoint(fresh_database) == batch.last_seq


async def test_a_clean_batch_is_one_transaction_with_no_dead_letters(
    writer: ProjectionWriter, fresh_database: str
) -> None:
    batch = batch_of(completed_runs(uuid.uuid4().hex[:6], n_runs=20))
    assert await writer.commit(batch) == []
    assert await checkpoint(fresh_database) == batch.last_seq
    assert (await table_counts(fresh_database))["artifact_versions"] == 60


async def test_a_dead_letter_from_a_subject_holding_nul_is_still_recorded(
    writer: ProjectionWriter, fresh_database: str
) -> None:
    # nats-server takes a NUL byte in a subject; Postgres text can't hold it, and a dead letter
    # that can't be written would stop the projector at that batch for ever
    batch = batch_of(completed_runs("n", 1, steps=0), first_seq=2)
    batch.first_seq = 1
    batch.dead.append(DeadLetter(1, "cairn.run.a\x00b", b"{}", "misrouted"))
    assert [d.seq for d in await writer.commit(batch)] == [1]
    [row] = await fetch(fresh_database, "SELECT subject FROM dead_letters")
    assert row["subject"] == "cairn.run.a\\x00b"
    assert await checkpoint(fresh_database) == batch.last_seq
