"""The projector against a real nats-server and Postgres: rows, crash safety, dead letters, order."""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import nats
import pytest
from cairn_events import (
    DEAD_LETTER_STREAM,
    STREAM,
    ArtifactMaterialized,
    Event,
    Header,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    dead_letter_subject,
    encode,
    subject_of,
)
from cairn_projections import migrate, queries
from cairn_projections.migrations import MIGRATIONS
from cairn_services.projector import (
    Projector,
    ProjectorBusyError,
    consumer_name,
    ensure_streams,
)
from cairn_services.projector.consumer import EventFeed
from cairn_services.projector.writer import ProjectionWriter
from cairn_services.stack import NatsServer
from nats.js import JetStreamContext

T0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    jsc = nc.jetstream()
    await ensure_streams(jsc)
    yield jsc
    await nc.close()


@pytest.fixture
def name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def projector(
    nats_url: str, fresh_database: str, name: str, js: JetStreamContext
) -> AsyncIterator[Projector]:
    """A projector (not started) with its own name, on a fresh database."""
    proj = Projector(nats_url, fresh_database, name=name, batch_size=500)
    yield proj
    await proj.stop()
    await js.delete_consumer(STREAM, consumer_name(name))


async def publish(js: JetStreamContext, events: list[Event]) -> list[int]:
    """Publish as the SDK does (Nats-Msg-Id = event_id); the stream sequences."""
    seqs = []
    for event in events:
        ack = await js.publish(
            subject_of(event), encode(event), headers={Header.MSG_ID.value: event.event_id}
        )
        seqs.append(ack.seq)
    return seqs


async def publish_on(js: JetStreamContext, subject: str, event: Event) -> int:
    """Publish ``event`` on ``subject``, whatever its own subject is; the stream sequence."""
    ack = await js.publish(subject, encode(event), headers={Header.MSG_ID.value: event.event_id})
    return ack.seq


def run_events(tag: str) -> list[Event]:
    """A two-step run (loader -> trainer), each step making one artifact, all ids from ``tag``."""
    run, loader, trainer = f"run-{tag}", f"step-{tag}-loader", f"step-{tag}-trainer"
    data, model = f"av-{tag}-data", f"av-{tag}-model"

    def at(seconds: int) -> datetime:
        return T0 + timedelta(seconds=seconds)

    def artifact(av_id: str, step: str, what: str, s: int) -> ArtifactMaterialized:
        return ArtifactMaterialized(
            artifact_version_id=av_id,
            name=f"{tag}::{what}",
            version="1",
            numeric_count=1,
            uri=f"/store/{av_id}",
            artifact_type="data",
            data_type="builtins.dict",
            materializer="cairn.materializers.BuiltInMaterializer",
            content_hash=f"hash-{what}",
            size=10,
            producer_run_id=run,
            producer_step_run_id=step,
            output_name="output",
            event_id=f"e-{av_id}",
            occurred_at=at(s),
        )

    return [
        RunStarted(
            run_id=run,
            run_name=f"training-{tag}",
            pipeline_name=f"training-{tag}",
            started_at=at(0),
            parameters={"lr": 0.1},
            event_id=f"e-{run}-started",
            occurred_at=at(0),
        ),
        StepStarted(
            run_id=run,
            step_run_id=loader,
            step_name="loader",
            function="p.loader",
            event_id=f"e-{loader}-started",
            occurred_at=at(1),
        ),
        artifact(data, loader, "data", 2),
        StepFinished(
            run_id=run,
            step_run_id=loader,
            step_name="loader",
            duration_s=1.0,
            outputs={"output": data},
            event_id=f"e-{loader}-finished",
            occurred_at=at(3),
        ),
        StepStarted(
            run_id=run,
            step_run_id=trainer,
            step_name="trainer",
            function="p.trainer",
            inputs={"data": data},
            event_id=f"e-{trainer}-started",
            occurred_at=at(4),
        ),
        artifact(model, trainer, "model", 5),
        StepFinished(
            run_id=run,
            step_run_id=trainer,
            step_name="trainer",
            duration_s=1.0,
            outputs={"output": model},
            event_id=f"e-{trainer}-finished",
            occurred_at=at(6),
        ),
        RunFinished(
            run_id=run,
            status="completed",
            duration_s=7.0,
            event_id=f"e-{run}-finished",
            occurred_at=at(7),
        ),
    ]


async def fetch(dsn: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def read_run(dsn: str, name_or_id: str) -> dict[str, Any] | None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.set_type_codec(
            "jsonb", schema="pg_catalog", encoder=json.dumps, decoder=json.loads
        )
        return await queries.get_run(conn, name_or_id)
    finally:
        await conn.close()


async def count_rows(dsn: str, tag: str) -> dict[str, int]:
    """How many rows of each table belong to the run built by ``run_events(tag)``."""
    like = f"%{tag}%"
    counts = {}
    for table, column in (
        ("pipeline_runs", "id"),
        ("step_runs", "id"),
        ("artifact_versions", "id"),
        ("step_inputs", "step_run_id"),
        ("step_outputs", "step_run_id"),
    ):
        [row] = await fetch(dsn, f"SELECT count(*) AS n FROM {table} WHERE {column} LIKE $1", like)
        counts[table] = row["n"]
    return counts


FULL_RUN = {
    "pipeline_runs": 1,
    "step_runs": 2,
    "artifact_versions": 2,
    "step_inputs": 1,
    "step_outputs": 2,
}


async def test_a_run_is_projected_with_steps_and_lineage(
    projector: Projector, js: JetStreamContext, fresh_database: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    seqs = await publish(js, run_events(tag))
    await projector.start()
    assert await projector.run_until(seqs[-1], timeout=30) >= seqs[-1]

    run = await read_run(fresh_database, f"training-{tag}")
    assert run is not None
    assert run["status"] == "completed"
    assert run["config"]["parameters"] == {"lr": 0.1}
    assert set(run["steps"]) == {"loader", "trainer"}
    trainer = run["steps"]["trainer"]
    assert trainer["status"] == "completed"
    assert trainer["inputs"]["data"]["id"] == f"av-{tag}-data"
    assert trainer["outputs"]["output"]["name"] == f"{tag}::model"
    [checkpoint] = await fetch(
        fresh_database, "SELECT last_seq FROM projector_checkpoints WHERE name = $1", projector.name
    )
    assert checkpoint["last_seq"] >= seqs[-1]


async def test_a_projector_collects_cycles_less_often_than_python_by_default(
    projector: Projector,
) -> None:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # Python's defaults
    try:
        await projector.start()
        gen0, gen1, gen2 = gc.get_threshold()
        assert gen0 >= 50_000 and gen1 >= 20 and gen2 >= 100
    finally:
        gc.set_threshold(*saved)


async def test_a_restart_after_commit_but_before_ack_applies_nothing_twice(
    projector: Projector,
    js: JetStreamContext,
    fresh_database: str,
    nats_url: str,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    seqs = await publish(js, run_events(first))

    async def crash_before_ack(self: EventFeed, msg: Any) -> None:
        return None

    with monkeypatch.context() as patch:
        patch.setattr(EventFeed, "ack_through", crash_before_ack)
        await projector.start()
        await projector.run_until(seqs[-1], timeout=30)
        await projector.stop()
    info = await js.consumer_info(STREAM, consumer_name(name))
    assert info.ack_floor.stream_seq < seqs[-1]  # committed in Postgres, never acked

    more = await publish(js, run_events(second))
    restarted = Projector(nats_url, fresh_database, name=name)
    await restarted.start()
    try:
        assert await restarted.run_until(more[-1], timeout=30) >= more[-1]
    finally:
        await restarted.stop()

    assert await count_rows(fresh_database, first) == FULL_RUN
    assert await count_rows(fresh_database, second) == FULL_RUN
    [checkpoint] = await fetch(fresh_database, "SELECT last_seq FROM projector_checkpoints")
    assert checkpoint["last_seq"] >= more[-1]
    ours = "SELECT * FROM dead_letters WHERE seq >= $1"  # the stream is shared with other tests
    assert await fetch(fresh_database, ours, seqs[0]) == []


async def test_a_failed_commit_is_retried_from_the_checkpoint(
    projector: Projector,
    js: JetStreamContext,
    fresh_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tag = uuid.uuid4().hex[:8]
    seqs = await publish(js, run_events(tag))
    real_commit = ProjectionWriter.commit
    failures = []

    async def flaky_commit(self: ProjectionWriter, batch: Any) -> Any:
        if not failures:
            failures.append(batch.last_seq)
            raise ConnectionResetError("Postgres went away mid-batch")
        return await real_commit(self, batch)

    monkeypatch.setattr(ProjectionWriter, "commit", flaky_commit)
    await projector.start()
    await projector.run_until(seqs[-1], timeout=30)
    assert failures
    assert await count_rows(fresh_database, tag) == FULL_RUN


async def test_the_projector_reconnects_when_postgres_drops_its_connection(
    projector: Projector, js: JetStreamContext, fresh_database: str
) -> None:
    first, second = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    seqs = await publish(js, run_events(first))
    await projector.start()
    await projector.run_until(seqs[-1], timeout=30)

    killed = await fetch(
        fresh_database,
        "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    assert killed and all(row["killed"] for row in killed)
    more = await publish(js, run_events(second))
    await projector.run_until(more[-1], timeout=30)

    assert await count_rows(fresh_database, first) == FULL_RUN
    assert await count_rows(fresh_database, second) == FULL_RUN


async def test_the_projector_resumes_after_a_nats_server_restart(
    projector: Projector, js: JetStreamContext, fresh_database: str, nats_server: NatsServer
) -> None:
    first, second = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    seqs = await publish(js, run_events(first))
    await projector.start()
    await projector.run_until(seqs[-1], timeout=30)

    nats_server.stop()
    nats_server.start()  # same port and store: the stream and the durable consumer survive
    more = await _publish_when_back(js, run_events(second))
    await projector.run_until(more[-1], timeout=60)

    assert await count_rows(fresh_database, first) == FULL_RUN
    assert await count_rows(fresh_database, second) == FULL_RUN


async def _publish_when_back(js: JetStreamContext, events: list[Event]) -> list[int]:
    for _ in range(100):
        try:
            return await publish(js, events)
        except (nats.errors.Error, TimeoutError):
            await asyncio.sleep(0.2)
    raise AssertionError("could not publish after the NATS server restarted")


async def test_bad_events_are_dead_lettered_and_the_rest_projected(
    projector: Projector, js: JetStreamContext, fresh_database: str, name: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    events = run_events(tag)
    good = events[5]
    assert isinstance(good, ArtifactMaterialized)
    garbage = (await js.publish(f"cairn.run.{tag}", b"\x00 not json")).seq
    [unfoldable] = await publish(
        js, [_replace(good, artifact_version_id=f"x-{tag}", version="7", event_id=f"u-{tag}")]
    )
    seqs = await publish(js, events)
    [clash] = await publish(  # same name and version as an existing one, another id
        js, [_replace(good, artifact_version_id=f"y-{tag}", event_id=f"c-{tag}")]
    )
    [nul] = await publish(  # Postgres text cannot hold NUL: rejected by the database itself
        js,
        [RunStarted(run_id=f"nul-{tag}", run_name="a\x00b", pipeline_name="p", started_at=T0)],
    )
    later = await publish(js, run_events(tag + "-later"))

    await projector.start()
    await projector.run_until(later[-1], timeout=30)

    dead = {
        row["seq"]: row
        for row in await fetch(fresh_database, "SELECT seq, reason, data FROM dead_letters")
    }
    assert set(dead) >= {garbage, unfoldable, clash, nul}
    assert "not an event envelope" in dead[garbage]["reason"]
    assert "exceeds its numeric_count" in dead[unfoldable]["reason"]
    assert "artifact_versions_name_version" in dead[clash]["reason"]
    assert "22021" in dead[nul]["reason"]
    assert "dead-lettered before writing" in dead[nul]["reason"]  # never sent to Postgres
    assert dead[garbage]["data"] == b"\x00 not json"
    # both runs (tag and tag-later) complete; the rejected versions are nowhere
    assert await count_rows(fresh_database, tag) == {k: 2 * n for k, n in FULL_RUN.items()}
    assert seqs[-1] < later[-1]

    # subscribers hear of each dead letter, keyed <projector>:<seq>, with the reason
    letters = await js.pull_subscribe(
        dead_letter_subject(name), durable=None, stream=DEAD_LETTER_STREAM
    )
    announced = {}
    for msg in await letters.fetch(len(dead), timeout=5):
        assert msg.headers is not None
        announced[msg.headers[Header.MSG_ID.value]] = msg.headers[Header.DEAD_LETTER_REASON.value]
    await letters.unsubscribe()
    assert "not an event envelope" in announced[f"{name}:{garbage}"]
    assert "exceeds its numeric_count" in announced[f"{name}:{unfoldable}"]


async def test_a_forged_version_on_another_subject_is_dead_lettered_and_the_real_one_projects(
    projector: Projector, js: JetStreamContext, fresh_database: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    events = run_events(tag)
    real = events[2]
    assert isinstance(real, ArtifactMaterialized) and real.version == "1"
    forged = _replace(real, artifact_version_id=f"forged-{tag}", event_id=f"f-{tag}")
    forged_subject = f"cairn.run.{tag}"  # any subject under cairn.> reaches the stream
    forged_seq = await publish_on(js, forged_subject, forged)
    stray = StepStarted(  # a step of this run, on another run's subject
        run_id=f"run-{tag}",
        step_run_id=f"step-{tag}-stray",
        step_name="stray",
        function="p.stray",
        event_id=f"s-{tag}",
    )
    stray_seq = await publish_on(js, f"cairn.step.other-{tag}", stray)
    seqs = await publish(js, events)  # the SDK's real v1 on its claim subject, after the forgery

    await projector.start()
    await projector.run_until(seqs[-1], timeout=30)

    dead = {
        row["seq"]: row["reason"]
        for row in await fetch(
            fresh_database, "SELECT seq, reason FROM dead_letters WHERE seq >= $1", forged_seq
        )
    }
    assert set(dead) == {forged_seq, stray_seq}
    assert f"misrouted artifact.materialized f-{tag}" in dead[forged_seq]
    assert f"arrived on subject '{forged_subject}'" in dead[forged_seq]
    assert f"belongs on '{subject_of(real)}'" in dead[forged_seq]
    assert f"misrouted step.started s-{tag}" in dead[stray_seq]
    assert f"belongs on 'cairn.step.run-{tag}'" in dead[stray_seq]
    [version] = await fetch(
        fresh_database,
        "SELECT id FROM artifact_versions WHERE name = $1 AND version = '1'",
        real.name,
    )
    assert version["id"] == real.artifact_version_id
    assert await count_rows(fresh_database, tag) == FULL_RUN  # the stray step is nowhere


async def test_arrival_order_does_not_change_the_read_model(
    projector: Projector, js: JetStreamContext, fresh_database: str
) -> None:
    ordered, scrambled = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    in_order = await publish(js, run_events(ordered))
    await projector.start()
    await projector.run_until(in_order[-1], timeout=30)

    # run.finished first, each step.finished before the artifact it names, each step.started
    # last; one commit per event, so every fold meets the state the previous ones left.
    events = run_events(scrambled)
    order = [7, 3, 6, 2, 5, 1, 4, 0]
    for i in order:
        [seq] = await publish(js, [events[i]])
        await projector.run_until(seq, timeout=30)
        if i == 3:  # the loader's output is named but not materialized yet
            partial = await read_run(fresh_database, f"run-{scrambled}")
            assert partial is not None and partial["steps"]["loader"]["outputs"] == {}

    expected = await read_run(fresh_database, f"run-{ordered}")
    actual = await read_run(fresh_database, f"run-{scrambled}")
    assert json.dumps(actual, default=str).replace(scrambled, "TAG") == json.dumps(
        expected, default=str
    ).replace(ordered, "TAG")


async def test_one_projector_per_name_and_schema(
    projector: Projector, nats_url: str, fresh_database: str, name: str
) -> None:
    await projector.start()
    twin = Projector(nats_url, fresh_database, name=name)
    with pytest.raises(ProjectorBusyError, match="already runs"):
        await twin.start()


async def test_concurrent_migrations_apply_once(fresh_database: str) -> None:
    conns = [await asyncpg.connect(fresh_database) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(migrate(c, "read_models") for c in conns))
    finally:
        for c in conns:
            await c.close()
    every = sorted(m.version for m in MIGRATIONS)
    assert sorted(applied) == [[], [], every]
    rows = await fetch(
        fresh_database, "SELECT version FROM read_models.schema_migrations ORDER BY version"
    )
    assert [r["version"] for r in rows] == every


def _replace(event: ArtifactMaterialized, **changes: Any) -> ArtifactMaterialized:
    import msgspec

    return msgspec.structs.replace(event, **changes)
