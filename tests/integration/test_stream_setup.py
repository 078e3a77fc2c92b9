"""Setting up a stream as its EventStream declares it: the SDK's and the projector's one way."""

import contextlib
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from cairn.stream_setup import StreamSubjectsTakenError, ensure_dead_letter_stream, ensure_stream
from cairn_events import DEFAULT_STREAM, EventStream, RunStarted, encode, utcnow
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    yield nc.jetstream()
    await nc.close()


@pytest.fixture
async def stream(js: JetStreamContext) -> AsyncIterator[EventStream]:
    made = EventStream.named(f"T_{uuid.uuid4().hex[:10]}")
    yield made
    for name in (made.name, made.dead_letter_name):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(name)


async def test_a_new_stream_gets_the_declared_configuration(
    js: JetStreamContext, stream: EventStream
) -> None:
    assert await ensure_stream(js, stream, fast_ingest=True) is True
    config = (await js.stream_info(stream.name)).config
    assert config.subjects == stream.subjects == [f"{stream.root}.>"]
    assert config.storage == StorageType.FILE
    assert config.duplicate_window == stream.duplicate_window_s
    assert config.allow_batched is True
    assert await ensure_stream(js, stream, fast_ingest=True) is True  # again: as it was


async def test_a_stream_made_without_batches_takes_them_once_set_up(
    js: JetStreamContext, stream: EventStream
) -> None:
    await js.add_stream(StreamConfig(name=stream.name, subjects=stream.subjects))
    assert await ensure_stream(js, stream, fast_ingest=False) is False
    assert not (await js.stream_info(stream.name)).config.allow_batched
    assert await ensure_stream(js, stream, fast_ingest=True) is True
    assert (await js.stream_info(stream.name)).config.allow_batched is True


async def test_streams_with_their_own_roots_keep_their_events_apart(
    js: JetStreamContext, stream: EventStream
) -> None:
    await ensure_stream(js, DEFAULT_STREAM, fast_ingest=True)
    await ensure_stream(js, stream, fast_ingest=True)
    await ensure_dead_letter_stream(js, stream)
    await ensure_dead_letter_stream(js, stream)  # idempotent
    event = RunStarted(
        run_id=str(uuid.uuid4()), run_name="r", pipeline_name="p", started_at=utcnow()
    )
    before = (await js.stream_info(DEFAULT_STREAM.name)).state.messages
    ack = await js.publish(stream.subject_of(event), encode(event))
    assert ack.stream == stream.name
    assert (await js.stream_info(stream.name)).state.messages == 1
    assert (await js.stream_info(DEFAULT_STREAM.name)).state.messages == before
    letters = await js.stream_info(stream.dead_letter_name)
    assert letters.config.subjects == stream.dead_letter_subjects


async def test_a_stream_whose_subjects_another_stream_takes_is_refused_with_what_to_do(
    js: JetStreamContext, stream: EventStream
) -> None:
    await ensure_stream(js, stream, fast_ingest=True)
    await ensure_dead_letter_stream(js, stream)
    twin = EventStream(name=stream.name + "_TWIN", root=stream.root)
    with pytest.raises(StreamSubjectsTakenError, match=r"another stream .* takes those subjects"):
        await ensure_stream(js, twin, fast_ingest=True)
    with pytest.raises(StreamSubjectsTakenError, match=r"another root \(EventStream"):
        await ensure_dead_letter_stream(js, twin)
