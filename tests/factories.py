"""Events for tests: builders of plausible runs and artifact versions, and publishing them.

Every builder takes the values a test cares about and fills the rest; ids derive from
a ``tag`` where a test needs several runs apart. ``publish`` sends events as the SDK
does (``Nats-Msg-Id`` = event id) on a test's own stream (the ``stream`` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from cairn_events import (
    ArtifactMaterialized,
    Event,
    EventStream,
    Header,
    RunFinished,
    RunOutcome,
    RunStarted,
    StepFinished,
    StepStarted,
    encode,
    utcnow,
)
from nats.js import JetStreamContext

T0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def artifact_version(**fields: Any) -> ArtifactMaterialized:
    """A claimed artifact version (version 2 of a trained model unless ``fields`` say else)."""
    av_id = fields.get("artifact_version_id", "av-1")
    defaults: dict[str, Any] = {
        "artifact_version_id": av_id,
        "name": "training::trainer::output",
        "version": "2",
        "numeric_count": 2,
        "uri": f"/store/{av_id}",
        "artifact_type": "model",
        "data_type": "sklearn.linear_model.LogisticRegression",
        "materializer": "cairn.materializers.CloudpickleMaterializer",
        "content_hash": "abc",
        "size": 1234,
        "occurred_at": T0,
    }
    return ArtifactMaterialized(**{**defaults, **fields})


def version(tag: str, what: str, number: str, count: int) -> ArtifactMaterialized:
    """Version ``number`` of artifact ``<tag>::<what>``, claimed now (in publish order)."""
    return artifact_version(
        artifact_version_id=f"av-{tag}-{what}-{number}",
        name=f"{tag}::{what}",
        version=number,
        numeric_count=count,
        uri=f"/store/{tag}/{what}/{number}",
        artifact_type="data",
        data_type="builtins.dict",
        materializer="cairn.materializers.BuiltInMaterializer",
        content_hash="h",
        size=1,
        occurred_at=utcnow(),
    )


def stored_version(av_id: str, name: str, step_id: str, version: str = "1") -> ArtifactMaterialized:
    """Version ``version`` of ``name``, stored by step run ``step_id``."""
    return artifact_version(
        artifact_version_id=av_id,
        name=name,
        version=version,
        numeric_count=int(version),
        producer_step_run_id=step_id,
        occurred_at=T0 + timedelta(seconds=1),
    )


def clash(original: ArtifactMaterialized, tag: str) -> ArtifactMaterialized:
    """Another id for the same name and version: only the unique constraint can refuse it."""
    return msgspec.structs.replace(original, artifact_version_id=f"clash-{tag}", event_id=tag)


def run_events(tag: str) -> list[Event]:
    """A two-step run (loader -> trainer), each step making one artifact, all ids from ``tag``."""
    run, loader, trainer = f"run-{tag}", f"step-{tag}-loader", f"step-{tag}-trainer"
    data, model = f"av-{tag}-data", f"av-{tag}-model"

    def at(seconds: int) -> datetime:
        return T0 + timedelta(seconds=seconds)

    def made(av_id: str, step: str, what: str, s: int) -> ArtifactMaterialized:
        return artifact_version(
            artifact_version_id=av_id,
            name=f"{tag}::{what}",
            version="1",
            numeric_count=1,
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
        made(data, loader, "data", 2),
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
        made(model, trainer, "model", 5),
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
            status=RunOutcome.COMPLETED,
            duration_s=7.0,
            event_id=f"e-{run}-finished",
            occurred_at=at(7),
        ),
    ]


def named_run(run_id: str, run_name: str, pipeline_name: str) -> list[Event]:
    """A run that started and completed, with no steps."""
    at = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    return [
        RunStarted(run_id=run_id, run_name=run_name, pipeline_name=pipeline_name, started_at=at),
        RunFinished(run_id=run_id, status=RunOutcome.COMPLETED, duration_s=1.0),
    ]


def completed_runs(tag: str, n_runs: int, steps: int = 3) -> list[Event]:
    """``n_runs`` completed runs of ``steps`` steps, each step making version 1 of its artifact."""
    events: list[Event] = []
    for r in range(n_runs):
        run_id = f"run-{tag}-{r}"
        events.append(RunStarted(run_id=run_id, run_name=run_id, pipeline_name=tag, started_at=T0))
        for s in range(steps):
            step_id, av_id = f"step-{tag}-{r}-{s}", f"av-{tag}-{r}-{s}"
            events += [
                StepStarted(run_id=run_id, step_run_id=step_id, step_name=f"s{s}", function="f"),
                stored_version(av_id, f"{tag}::{r}::{s}", step_id),
                StepFinished(
                    run_id=run_id,
                    step_run_id=step_id,
                    step_name=f"s{s}",
                    duration_s=0.1,
                    outputs={"output": av_id},
                ),
            ]
        events.append(RunFinished(run_id=run_id, status=RunOutcome.COMPLETED, duration_s=1.0))
    return events


async def publish(js: JetStreamContext, stream: EventStream, events: list[Event]) -> list[int]:
    """Publish ``events`` on their own subjects of ``stream``, as the SDK does; their sequences."""
    return [await publish_on(js, stream.subject_of(event), event) for event in events]


async def publish_on(js: JetStreamContext, subject: str, event: Event) -> int:
    """Publish ``event`` on ``subject``, whatever its own subject is; the stream sequence."""
    ack = await js.publish(subject, encode(event), headers={Header.MSG_ID.value: event.event_id})
    return int(ack.seq)


async def replay_into(nats_url: str, dsn: str, *, timeout: float = 90) -> None:
    """Replay the default stream, up to its last sequence now, into the database ``dsn`` with
    a projector of its own (its consumer deleted after)."""
    import uuid

    import nats
    from cairn_events import DEFAULT_STREAM
    from cairn_services.projector import Projector, consumer_name

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        last_seq = (await js.stream_info(DEFAULT_STREAM.name)).state.last_seq
        replayer = Projector(nats_url, dsn, name=f"replay-{uuid.uuid4().hex[:8]}")
        await replayer.start()
        try:
            await replayer.run_until(last_seq, timeout=timeout)
        finally:
            await replayer.stop()
            await js.delete_consumer(DEFAULT_STREAM.name, consumer_name(replayer.name))
    finally:
        await nc.close()
