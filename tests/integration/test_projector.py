"""The projector against a real nats-server and Postgres: rows, crash safety, dead letters, order.

Each test has a stream of its own (the ``stream`` fixture), so it reads only its events.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import nats
import pytest
from cairn_events import (
    ArtifactMaterialized,
    Event,
    EventStream,
    Header,
    RunStarted,
    StepStarted,
    run_path,
    step_path,
)
from cairn_projections import (
    ARTIFACT_VERSIONS,
    RUNS,
    STEPS,
    MigrationError,
    ReadModel,
    migrate,
    server_settings,
)
from cairn_projections.migrations import MIGRATIONS
from cairn_projections.runs import RecordedRun, RunStartedRow, get_run
from cairn_services.projector import Projector, ProjectorBusyError, consumer_name
from cairn_services.projector.consumer import EventFeed
from cairn_services.projector.writer import ProjectionWriter
from cairn_services.stack import NatsServer
from factories import T0, publish, publish_on, run_events
from nats.js import JetStreamContext
from structlog.testing import capture_logs


@pytest.fixture
def name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def projector(
    nats_url: str, fresh_database: str, name: str, stream: EventStream
) -> AsyncIterator[Projector]:
    """A projector (not started) with its own name, on a fresh database and the test's stream."""
    proj = Projector(nats_url, fresh_database, name=name, batch_size=500, stream=stream)
    yield proj
    await proj.stop()


async def fetch(dsn: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def read_run(dsn: str, name_or_id: str, schema: str = "public") -> RecordedRun | None:
    conn = await asyncpg.connect(dsn, server_settings=server_settings(schema))
    try:
        await conn.set_type_codec(
            "jsonb", schema="pg_catalog", encoder=json.dumps, decoder=json.loads
        )
        return await get_run(conn, name_or_id)
    finally:
        await conn.close()


async def count_rows(dsn: str, tag: str, schema: str = "public") -> dict[str, int]:
    """How many rows of each table (in ``schema``) belong to the run built by ``run_events(tag)``."""
    like = f"%{tag}%"
    counts = {}
    for table, column in (
        ("pipeline_runs", "id"),
        ("step_runs", "id"),
        ("artifact_versions", "id"),
        ("step_inputs", "step_run_id"),
        ("step_outputs", "step_run_id"),
    ):
        sql = f"SELECT count(*) AS n FROM {schema}.{table} WHERE {column} LIKE $1"
        [row] = await fetch(dsn, sql, like)
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
    projector: Projector, js: JetStreamContext, stream: EventStream, fresh_database: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    seqs = await publish(js, stream, run_events(tag))
    await projector.start()
    assert await projector.run_until(seqs[-1], timeout=30) >= seqs[-1]

    run = await read_run(fresh_database, f"training-{tag}")
    assert run is not None
    assert run.status == "completed"
    assert run.config.parameters == {"lr": 0.1}
    assert set(run.steps) == {"loader", "trainer"}
    trainer = run.steps["trainer"]
    assert trainer.status == "completed"
    assert trainer.inputs["data"].id == f"av-{tag}-data"
    assert trainer.outputs["output"].name == f"{tag}::model"
    [checkpoint] = await fetch(
        fresh_database, "SELECT last_seq FROM projector_checkpoints WHERE name = $1", projector.name
    )
    assert checkpoint["last_seq"] >= seqs[-1]


async def test_a_restart_after_commit_but_before_ack_applies_nothing_twice(
    projector: Projector,
    js: JetStreamContext,
    stream: EventStream,
    fresh_database: str,
    nats_url: str,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    seqs = await publish(js, stream, run_events(first))

    async def crash_before_ack(self: EventFeed, msg: Any) -> None:
        return None

    with monkeypatch.context() as patch:
        patch.setattr(EventFeed, "ack_through", crash_before_ack)
        await projector.start()
        await projector.run_until(seqs[-1], timeout=30)
        await projector.stop()
    info = await js.consumer_info(stream.name, consumer_name(name))
    assert info.ack_floor.stream_seq < seqs[-1]  # committed in Postgres, never acked

    more = await publish(js, stream, run_events(second))
    restarted = Projector(nats_url, fresh_database, name=name, stream=stream)
    await restarted.start()
    try:
        assert await restarted.run_until(more[-1], timeout=30) >= more[-1]
    finally:
        await restarted.stop()

    assert await count_rows(fresh_database, first) == FULL_RUN
    assert await count_rows(fresh_database, second) == FULL_RUN
    [checkpoint] = await fetch(fresh_database, "SELECT last_seq FROM projector_checkpoints")
    assert checkpoint["last_seq"] >= more[-1]
    assert await fetch(fresh_database, "SELECT * FROM dead_letters") == []


async def test_a_failed_commit_is_retried_from_the_checkpoint(
    projector: Projector,
    js: JetStreamContext,
    stream: EventStream,
    fresh_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tag = uuid.uuid4().hex[:8]
    seqs = await publish(js, stream, run_events(tag))
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


async def test_a_failing_spell_is_logged_when_it_starts_and_when_it_ends_with_backoff(
    nats_url: str,
    fresh_database: str,
    name: str,
    js: JetStreamContext,
    stream: EventStream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three failed commits: one line when failing starts, one when a commit succeeds
    again, and the waits between attempts double (0.1, 0.2, 0.4 s), never a tight loop."""
    tag = uuid.uuid4().hex[:8]
    seqs = await publish(js, stream, run_events(tag))
    real_commit = ProjectionWriter.commit
    attempts: list[float] = []

    async def flaky_commit(self: ProjectionWriter, batch: Any) -> Any:
        attempts.append(time.monotonic())
        if len(attempts) <= 3:
            raise ConnectionResetError("Postgres went away mid-batch")
        return await real_commit(self, batch)

    monkeypatch.setattr(ProjectionWriter, "commit", flaky_commit)
    with capture_logs() as logs:
        projector = Projector(nats_url, fresh_database, name=name, stream=stream)
        async with projector:
            await projector.run_until(seqs[-1], timeout=30)
    assert await count_rows(fresh_database, tag) == FULL_RUN
    events = [e["event"] for e in logs if e["event"].startswith("projector.")]
    assert events.count("projector.failing") == 1 and events.count("projector.recovered") == 1
    [failing] = [e for e in logs if e["event"] == "projector.failing"]
    [recovered] = [e for e in logs if e["event"] == "projector.recovered"]
    assert "ConnectionResetError: Postgres went away" in failing["error"]
    assert failing["projector"] == name and recovered["attempts"] == 3
    waits = [later - earlier for earlier, later in zip(attempts, attempts[1:], strict=False)]
    assert waits[0] >= 0.09 and waits[1] >= 0.19 and waits[2] >= 0.39, waits


async def test_a_read_model_column_no_migration_creates_is_refused_at_start(
    nats_url: str, fresh_database: str, name: str, stream: EventStream
) -> None:
    """A row field added without its migration fails start with what to add, instead of
    failing every commit."""

    class Described(RunStartedRow, kw_only=True):
        description: str | None = None

    model = ReadModel("described_runs", rows=[Described])
    projector = Projector(nats_url, fresh_database, name=name, stream=stream, read_models=[model])
    with pytest.raises(
        MigrationError, match=r"no column pipeline_runs\.description.*add a migration"
    ):
        await projector.start()
    assert not projector.running


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({"stream": "CAIRN"}, "takes an EventStream"),
        ({"read_models": ["runs"]}, "non-empty list of ReadModel"),
        ({"read_models": []}, "non-empty list of ReadModel"),
        ({"read_models": RUNS}, "non-empty list of ReadModel"),
        ({"subject_filter": "other.>"}, "would deliver nothing"),
        ({"subject_filter": []}, "would deliver nothing"),
    ],
)
def test_projector_arguments_are_checked_when_given(
    nats_url: str, fresh_database: str, arguments: dict[str, Any], complaint: str
) -> None:
    with pytest.raises((TypeError, ValueError), match=complaint):
        Projector(nats_url, fresh_database, name="checked", **arguments)


async def test_the_projector_reconnects_when_postgres_drops_its_connection(
    projector: Projector, js: JetStreamContext, stream: EventStream, fresh_database: str
) -> None:
    first, second = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    seqs = await publish(js, stream, run_events(first))
    await projector.start()
    await projector.run_until(seqs[-1], timeout=30)

    killed = await fetch(
        fresh_database,
        "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    assert killed and all(row["killed"] for row in killed)
    more = await publish(js, stream, run_events(second))
    await projector.run_until(more[-1], timeout=30)

    assert await count_rows(fresh_database, first) == FULL_RUN
    assert await count_rows(fresh_database, second) == FULL_RUN


async def test_the_projector_resumes_after_a_nats_server_restart(
    projector: Projector,
    js: JetStreamContext,
    stream: EventStream,
    fresh_database: str,
    nats_server: NatsServer,
) -> None:
    first, second = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    seqs = await publish(js, stream, run_events(first))
    await projector.start()
    await projector.run_until(seqs[-1], timeout=30)

    nats_server.stop()
    nats_server.start()  # same port and store: the stream and the durable consumer survive
    more = await _publish_when_back(js, stream, run_events(second))
    await projector.run_until(more[-1], timeout=60)

    assert await count_rows(fresh_database, first) == FULL_RUN
    assert await count_rows(fresh_database, second) == FULL_RUN


async def _publish_when_back(
    js: JetStreamContext, stream: EventStream, events: list[Event]
) -> list[int]:
    for _ in range(100):
        try:
            return await publish(js, stream, events)
        except (nats.errors.Error, TimeoutError):
            await asyncio.sleep(0.2)
    raise AssertionError("could not publish after the NATS server restarted")


async def test_bad_events_are_dead_lettered_and_the_rest_projected(
    projector: Projector, js: JetStreamContext, stream: EventStream, fresh_database: str, name: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    events = run_events(tag)
    good = events[5]
    assert isinstance(good, ArtifactMaterialized)
    garbage = (await js.publish(stream.subject(run_path(tag)), b"\x00 not json")).seq
    [unfoldable] = await publish(
        js,
        stream,
        [_replace(good, artifact_version_id=f"x-{tag}", version="7", event_id=f"u-{tag}")],
    )
    seqs = await publish(js, stream, events)
    [clash] = await publish(  # same name and version as an existing one, another id
        js, stream, [_replace(good, artifact_version_id=f"y-{tag}", event_id=f"c-{tag}")]
    )
    [nul] = await publish(  # Postgres text cannot hold NUL: rejected by the database itself
        js,
        stream,
        [RunStarted(run_id=f"nul-{tag}", run_name="a\x00b", pipeline_name="p", started_at=T0)],
    )
    later = await publish(js, stream, run_events(tag + "-later"))

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
        stream.dead_letter_subject(name), durable=None, stream=stream.dead_letter_name
    )
    announced = {}
    for msg in await letters.fetch(len(dead), timeout=5):
        assert msg.headers is not None
        announced[msg.headers[Header.MSG_ID.value]] = msg.headers[Header.DEAD_LETTER_REASON.value]
    await letters.unsubscribe()
    assert "not an event envelope" in announced[f"{name}:{garbage}"]
    assert "exceeds its numeric_count" in announced[f"{name}:{unfoldable}"]


async def test_a_forged_version_on_another_subject_is_dead_lettered_and_the_real_one_projects(
    projector: Projector, js: JetStreamContext, stream: EventStream, fresh_database: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    events = run_events(tag)
    real = events[2]
    assert isinstance(real, ArtifactMaterialized) and real.version == "1"
    forged = _replace(real, artifact_version_id=f"forged-{tag}", event_id=f"f-{tag}")
    forged_subject = stream.subject(run_path(tag))  # any subject under <root>.> reaches it
    forged_seq = await publish_on(js, forged_subject, forged)
    stray = StepStarted(  # a step of this run, on another run's subject
        run_id=f"run-{tag}",
        step_run_id=f"step-{tag}-stray",
        step_name="stray",
        function="p.stray",
        event_id=f"s-{tag}",
    )
    stray_seq = await publish_on(js, stream.subject(step_path(f"other-{tag}")), stray)
    seqs = await publish(js, stream, events)  # the SDK's real v1 on its claim subject, after it

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
    assert f"belongs on '{stream.subject_of(real)}'" in dead[forged_seq]
    assert f"misrouted step.started s-{tag}" in dead[stray_seq]
    assert f"belongs on '{stream.subject(step_path(f'run-{tag}'))}'" in dead[stray_seq]
    [version] = await fetch(
        fresh_database,
        "SELECT id FROM artifact_versions WHERE name = $1 AND version = '1'",
        real.name,
    )
    assert version["id"] == real.artifact_version_id
    assert await count_rows(fresh_database, tag) == FULL_RUN  # the stray step is nowhere


async def test_arrival_order_does_not_change_the_read_model(
    projector: Projector, js: JetStreamContext, stream: EventStream, fresh_database: str
) -> None:
    ordered, scrambled = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    in_order = await publish(js, stream, run_events(ordered))
    await projector.start()
    await projector.run_until(in_order[-1], timeout=30)

    # run.finished first, each step.finished before the artifact it names, each step.started
    # last; one commit per event, so every fold meets the state the previous ones left.
    events = run_events(scrambled)
    order = [7, 3, 6, 2, 5, 1, 4, 0]
    for i in order:
        [seq] = await publish(js, stream, [events[i]])
        await projector.run_until(seq, timeout=30)
        if i == 3:  # the loader's output is named but not materialized yet
            partial = await read_run(fresh_database, f"run-{scrambled}")
            assert partial is not None and partial.steps["loader"].outputs == {}

    expected = await read_run(fresh_database, f"run-{ordered}")
    actual = await read_run(fresh_database, f"run-{scrambled}")
    assert _json(actual).replace(scrambled, "TAG") == _json(expected).replace(ordered, "TAG")


async def test_one_projector_per_name_and_schema(
    projector: Projector, nats_url: str, fresh_database: str, name: str
) -> None:
    await projector.start()
    twin = Projector(nats_url, fresh_database, name=name, stream=projector.stream)
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
    return msgspec.structs.replace(event, **changes)


def _json(run: RecordedRun | None) -> str:
    return msgspec.json.encode(run).decode()


async def test_two_projectors_side_by_side_fill_their_own_read_models_and_checkpoints(
    nats_url: str, fresh_database: str, js: JetStreamContext, stream: EventStream
) -> None:
    """Runs and steps in one schema, artifact versions in another, from one stream."""
    tag = uuid.uuid4().hex[:8]
    lineage = Projector(
        nats_url,
        fresh_database,
        name=f"lineage-{tag}",
        schema="lineage",
        read_models=[RUNS, STEPS],
        stream=stream,
        subject_filter=[stream.subject("run.>"), stream.subject("step.>")],
    )
    versions = Projector(
        nats_url,
        fresh_database,
        name=f"versions-{tag}",
        schema="versions",
        read_models=[ARTIFACT_VERSIONS],
        stream=stream,
        subject_filter=stream.subject("artifact.>"),
    )
    events = run_events(tag)
    seqs = await publish(js, stream, events)
    # an artifact version on a run subject reaches the lineage projector, which folds no versions
    stray = _replace(events[2], artifact_version_id=f"stray-{tag}", event_id=f"s-{tag}")
    stray_seq = await publish_on(js, stream.subject(run_path(f"run-{tag}")), stray)
    last_version = max(seq for seq, e in zip(seqs, events, strict=True) if e.tag.startswith("art"))
    async with lineage, versions:
        assert await lineage.run_until(stray_seq, timeout=30) == stray_seq
        assert await versions.run_until(last_version, timeout=30) == last_version
        more = await publish(js, stream, [version_of(events[5], "2")])  # only `versions` sees it
        assert await versions.run_until(more[-1], timeout=30) == more[-1]
        assert lineage.checkpoint == stray_seq

    assert await count_rows(fresh_database, tag, "lineage") == {
        **FULL_RUN,
        "artifact_versions": 0,
    }
    assert await count_rows(fresh_database, tag, "versions") == {
        "pipeline_runs": 0,
        "step_runs": 0,
        "artifact_versions": 3,
        "step_inputs": 0,
        "step_outputs": 0,
    }
    for schema, name, seq in (
        ("lineage", lineage.name, stray_seq),
        ("versions", versions.name, more[-1]),
    ):
        checkpoints = await fetch(
            fresh_database, f"SELECT name, last_seq FROM {schema}.projector_checkpoints"
        )
        assert checkpoints == [{"name": name, "last_seq": seq}]
        assert await fetch(fresh_database, f"SELECT seq FROM {schema}.dead_letters") == []
    run = await read_run(fresh_database, f"run-{tag}", schema="lineage")
    assert run is not None and run.status == "completed" and set(run.steps) == {"loader", "trainer"}


def version_of(event: Event, number: str) -> ArtifactMaterialized:
    """Another version ``number`` of ``event``'s artifact."""
    assert isinstance(event, ArtifactMaterialized)
    return _replace(
        event,
        artifact_version_id=f"{event.artifact_version_id}-{number}",
        version=number,
        numeric_count=int(number),
        event_id=f"{event.event_id}-{number}",
    )
