"""Events published one at a time learn JetStream's answer as soon as it comes.

A refused publish is settled with the error JetStream gave (so it is quarantined at
once, not when its acknowledgement is overdue), the events after it are stored, and
the number of unanswered publishes stays bounded. Each test records to a stream of its
own on the session's nats-server.
"""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from cairn.acks import Acks
from cairn.fast_ingest import Outgoing
from cairn.publishing import EventPublisher
from cairn.quarantine import Quarantine
from cairn.refusals import refusal_of
from cairn_events import EventStream, RunFinished, RunStarted, decode, new_id, utcnow
from nats.aio.client import Client as NATS
from nats.js.api import StreamConfig
from nats.js.errors import (
    BadRequestError,
    NoStreamResponseError,
    NotFoundError,
    TooManyStalledMsgsError,
)

#: What the test streams take at most, in bytes.
MAX_MSG_SIZE = 2048


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    conn = await nats.connect(nats_url)
    yield conn
    await conn.close()


@pytest.fixture
async def small_stream(nc: NATS) -> AsyncIterator[EventStream]:
    """A stream of this test's own that takes messages of at most MAX_MSG_SIZE bytes."""
    own = EventStream.named(f"ACK_{uuid.uuid4().hex[:10]}")
    js = nc.jetstream()
    await js.add_stream(StreamConfig(**own.config(), max_msg_size=MAX_MSG_SIZE))
    yield own
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(own.name)


def _item(stream: EventStream, n: int, size: int = 40) -> Outgoing:
    return Outgoing(stream.subject(f"test.{n}"), f"m-{n}".encode().ljust(size, b"."), new_id())


async def test_each_answer_settles_its_publish_a_refusal_with_jetstreams_error(
    nc: NATS, small_stream: EventStream
) -> None:
    acks = await Acks(nc).open()
    items = [
        _item(small_stream, 1),
        _item(small_stream, 2, MAX_MSG_SIZE + 1),
        _item(small_stream, 3),
    ]
    started = time.monotonic()
    answers = [await acks.publish(item) for item in items]
    first, refused, after = await asyncio.wait_for(
        asyncio.gather(*answers, return_exceptions=True), 2
    )
    assert time.monotonic() - started < 2
    assert (first, after) == (1, 2)
    assert isinstance(refused, BadRequestError)  # the subclass nats-py raises for code 400
    assert refused.code == 400 and refused.err_code == 10054
    reason = refusal_of(refused)
    assert reason is not None and "JetStream refused it" in reason and "size" in reason.lower()
    assert acks.pending == 0


async def test_a_subject_no_stream_takes_is_answered_no_stream_not_refused(nc: NATS) -> None:
    acks = await Acks(nc).open()
    ack = await acks.publish(Outgoing(f"nostream-{uuid.uuid4().hex}.x", b"{}", new_id()))
    with pytest.raises(NoStreamResponseError) as answered:
        await asyncio.wait_for(ack, 2)
    assert refusal_of(answered.value) is None  # NATS is not ready for it: sent again later


async def test_unanswered_publishes_are_bounded_and_the_next_waits_at_most_the_stall_timeout(
    nc: NATS,
) -> None:
    silent = f"silent-{uuid.uuid4().hex}"
    heard: list[Any] = []

    async def never_answer(msg: Any) -> None:
        heard.append(msg)

    await nc.subscribe(f"{silent}.>", cb=never_answer)  # someone listens: no 503, no answer
    acks = await Acks(nc, max_pending=2, stall_timeout=0.3).open()
    first = await acks.publish(Outgoing(f"{silent}.1", b"1", "1"))
    await acks.publish(Outgoing(f"{silent}.2", b"2", "2"))
    started = time.monotonic()
    with pytest.raises(TooManyStalledMsgsError):
        await acks.publish(Outgoing(f"{silent}.3", b"3", "3"))
    assert 0.25 < time.monotonic() - started < 2
    first.cancel()  # the publisher gave up on it (spooled): its place is free again
    started = time.monotonic()
    await asyncio.wait_for(acks.publish(Outgoing(f"{silent}.4", b"4", "4")), 1)
    assert time.monotonic() - started < 0.2
    await nc.flush()
    assert len(heard) == 3 and acks.pending == 2


def _stored(nats_url: str, stream: EventStream) -> list[str]:
    async def read() -> list[str]:
        conn = await nats.connect(nats_url)
        js = conn.jetstream()
        last = (await js.stream_info(stream.name)).state.last_seq
        ids = [decode((await js.get_msg(stream.name, s)).data).event_id for s in range(1, last + 1)]
        await conn.close()
        return ids

    return asyncio.run(read())


def test_a_refused_single_publish_is_quarantined_well_within_the_ack_timeout(
    nats_url: str, small_stream: EventStream, tmp_path: Path
) -> None:
    publisher = EventPublisher(
        nats_url, tmp_path / "spool", stream=small_stream, fast_ingest=False, ack_timeout=5.0
    ).start()
    try:
        run_id = new_id()
        events = [
            RunStarted(run_id=run_id, run_name="r", pipeline_name="p", started_at=utcnow()),
            RunStarted(
                run_id=new_id(),
                run_name="big",
                pipeline_name="p",
                started_at=utcnow(),
                parameters={"blob": "x" * 4000},
            ),
            *[RunFinished(run_id=run_id, status="completed", duration_s=n) for n in range(20)],
        ]
        started = time.monotonic()
        for event in events:
            publisher.publish(event)
        assert publisher.flush(10)
        assert time.monotonic() - started < 2, "a refusal must not wait out the ack timeout"
        assert publisher.refused == 1 and publisher.spooled == 0
        assert publisher.last_seq == len(events) - 1
    finally:
        publisher.close()

    big = events.pop(1)
    assert _stored(nats_url, small_stream) == [e.event_id for e in events]
    (record,) = Quarantine(tmp_path / "spool" / "quarantine").records()
    assert record.event_id == big.event_id and "JetStream refused it" in record.reason
