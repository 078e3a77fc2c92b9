"""A publisher records to the stream it is given, in batches or one event at a time as told.

Each test gives its publisher a stream of its own on the session's nats-server, so what it
finds there is exactly what that publisher sent.
"""

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from cairn.publishing import BATCHES_VARIABLE, EventPublisher
from cairn.quarantine import Quarantine
from cairn.spool import SpoolEntry, write_orphan
from cairn_events import (
    DEFAULT_STREAM,
    ArtifactMaterialized,
    EventStream,
    RunFinished,
    RunStarted,
    artifact_version_path,
    decode,
    encode,
    new_id,
    utcnow,
)


@pytest.fixture
def stream(nats_url: str) -> Iterator[EventStream]:
    """A stream (and subject root) no other test uses; deleted afterwards."""
    made = EventStream.named(f"PUB_{uuid.uuid4().hex[:10]}")
    yield made

    async def delete() -> None:
        nc = await nats.connect(nats_url)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(made.name)
        await nc.close()

    asyncio.run(delete())


def run_events() -> list[RunStarted | RunFinished]:
    run_id = new_id()
    started = RunStarted(run_id=run_id, run_name="r", pipeline_name="p", started_at=utcnow())
    return [started, RunFinished(run_id=run_id, status="completed", duration_s=0.1)]


def version_template(name: str) -> ArtifactMaterialized:
    return ArtifactMaterialized(
        artifact_version_id=new_id(),
        name=name,
        version="",
        numeric_count=0,
        uri="/nowhere",
        artifact_type="data",
        data_type="builtins.int",
        materializer="cairn.materializers.builtin.BuiltInMaterializer",
        content_hash="0",
        size=1,
    )


def stored(nats_url: str, stream: EventStream) -> list[tuple[str, Any]]:
    """Every message in ``stream`` as (subject, event), in stream order."""

    async def read() -> list[tuple[str, Any]]:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        state = (await js.stream_info(stream.name)).state
        messages = [await js.get_msg(stream.name, seq) for seq in range(1, state.last_seq + 1)]
        await nc.close()
        return [(m.subject, decode(m.data)) for m in messages]

    return asyncio.run(read())


def message_count(nats_url: str, stream_name: str) -> int:
    async def count() -> int:
        nc = await nats.connect(nats_url)
        try:
            return int((await nc.jetstream().stream_info(stream_name)).state.messages)
        except nats.js.errors.NotFoundError:
            return 0
        finally:
            await nc.close()

    return asyncio.run(count())


@pytest.mark.parametrize("fast_ingest", [True, False], ids=["batches", "one-by-one"])
def test_events_and_version_claims_go_to_the_publishers_own_stream(
    nats_url: str, stream: EventStream, tmp_path: Path, fast_ingest: bool
) -> None:
    before = message_count(nats_url, DEFAULT_STREAM.name)
    name = f"own_stream_{uuid.uuid4().hex[:8]}"
    events = run_events()
    publisher = EventPublisher(
        nats_url, tmp_path / "spool", stream=stream, fast_ingest=fast_ingest
    ).start()
    try:
        publisher.publish(events[0])
        first = publisher.claim(version_template(name), None).result(10)
        second = publisher.claim(version_template(name), None).result(10)
        publisher.publish(events[1])
        assert publisher.flush(10)
    finally:
        publisher.close()

    assert (first.version, second.version) == ("1", "2")  # read back from this stream's claims
    found = stored(nats_url, stream)
    assert [e.event_id for _, e in found] == [
        events[0].event_id,
        first.event_id,
        second.event_id,
        events[1].event_id,
    ]
    assert [subject for subject, _ in found] == [
        stream.subject_of(events[0]),
        stream.subject(artifact_version_path(name, "1")),
        stream.subject(artifact_version_path(name, "2")),
        stream.subject_of(events[1]),
    ]
    assert publisher.last_seq == 4
    assert message_count(nats_url, DEFAULT_STREAM.name) == before  # nothing went to CAIRN


def test_a_spooled_event_for_another_stream_is_quarantined_not_sent(
    nats_url: str, stream: EventStream, tmp_path: Path
) -> None:
    """A spool left by a process recording to CAIRN, adopted by one recording elsewhere."""
    elsewhere, here = run_events()
    spool_dir = tmp_path / "spool"
    write_orphan(
        spool_dir,
        [
            SpoolEntry(
                subject=DEFAULT_STREAM.subject_of(elsewhere), event=msgspec.Raw(encode(elsewhere))
            )
        ],
    )
    publisher = EventPublisher(nats_url, spool_dir, stream=stream).start()
    try:
        publisher.publish(here)
        assert publisher.flush(10)
        assert publisher.refused == 1
    finally:
        publisher.close()

    assert [e.event_id for _, e in stored(nats_url, stream)] == [here.event_id]
    (record,) = Quarantine(spool_dir / "quarantine").records()
    assert record.event_id == elsewhere.event_id
    assert f"not one stream {stream.name} takes" in record.reason
    assert f"outside {stream.root}.>" in record.reason


def reply_subjects(
    nats_url: str, stream: EventStream, tmp_path: Path, fast_ingest: bool | None
) -> list[str]:
    """The reply subjects a publisher's messages carried: how it asked to be acknowledged."""

    async def watch() -> list[str]:
        nc = await nats.connect(nats_url)
        replies: list[str] = []

        async def heard(msg: Any) -> None:
            replies.append(msg.reply)

        await nc.subscribe(f"{stream.root}.>", cb=heard)
        await nc.flush()

        def publish() -> None:
            publisher = EventPublisher(
                nats_url, tmp_path / "spool", stream=stream, fast_ingest=fast_ingest
            ).start()
            for event in run_events() * 5:
                publisher.publish(event)
            assert publisher.flush(10)
            publisher.close()

        await asyncio.to_thread(publish)
        await nc.flush()
        await nc.close()
        return replies

    return asyncio.run(watch())


@pytest.mark.parametrize(
    ("variable", "fast_ingest", "batched"),
    [
        (None, None, True),  # the default: batches where the server takes them
        ("0", None, False),  # CAIRN_PUBLISH_BATCHES=0: one at a time
        (None, False, False),  # fast_ingest=False: one at a time
        ("0", True, True),  # asked for in code: the variable does not override it
    ],
    ids=["default", "variable-off", "argument-off", "argument-on"],
)
def test_batches_are_used_unless_turned_off(
    nats_url: str,
    stream: EventStream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str | None,
    fast_ingest: bool | None,
    batched: bool,
) -> None:
    if variable is None:
        monkeypatch.delenv(BATCHES_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(BATCHES_VARIABLE, variable)
    replies = reply_subjects(nats_url, stream, tmp_path, fast_ingest)
    assert len(replies) == 10
    # a fast-ingest batch message's reply subject ends in $FI (see cairn.fast_ingest)
    assert [reply.endswith(".$FI") for reply in replies] == [batched] * 10
