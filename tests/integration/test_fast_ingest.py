"""Fast-ingest batches against a real nats-server: flow control, refusals, fallbacks, outages.

Each test runs its own nats-server, so it can shape or break the event stream freely.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import cairn_events as ev
import nats
import pytest
from cairn.fast_ingest import BatchFailed, FastIngest, Outgoing
from cairn.publishing import EventPublisher
from cairn_services.stack import NatsServer
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

#: The stream the publisher records to (these tests run one nats-server each).
STREAM = ev.DEFAULT_STREAM


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as s:
        yield s


@pytest.fixture
async def nc(server: NatsServer) -> AsyncIterator[NATS]:
    conn = await nats.connect(server.url)
    yield conn
    await conn.close()


@pytest.fixture
def js(nc: NATS) -> JetStreamContext:
    return nc.jetstream()


def outgoing(n: int, tag: str, size: int = 40) -> list[Outgoing]:
    return [
        Outgoing(f"t.{i % 7}", f"{tag}-{i}".encode().ljust(size, b"."), f"{tag}-{i}")
        for i in range(n)
    ]


async def stored_payloads(js: JetStreamContext, stream: str) -> list[bytes]:
    """Every message in ``stream``, in stream order."""
    total = (await js.stream_info(stream)).state.messages
    sub = await js.pull_subscribe(
        "", stream=stream, config=ConsumerConfig(ack_policy=AckPolicy.NONE)
    )
    out: list[bytes] = []
    while len(out) < total:
        out += [m.data for m in await sub.fetch(min(total - len(out), 1000), timeout=5)]
    await sub.unsubscribe()
    return out


async def test_a_batch_larger_than_the_flow_window_is_stored_in_order(
    nc: NATS, js: JetStreamContext
) -> None:
    await js.add_stream(StreamConfig(name="T", subjects=["t.>"], allow_batched=True))
    fast = await FastIngest(nc, flow=10, window=2).open()
    first, second = outgoing(95, "a"), outgoing(3, "b")

    assert await fast.send(first) == 95  # 95 messages need several flow acks at flow 10
    assert await fast.send(second) == 98

    assert await stored_payloads(js, "T") == [m.data for m in first + second]


async def test_a_resent_batch_is_dropped_as_duplicates(nc: NATS, js: JetStreamContext) -> None:
    await js.add_stream(StreamConfig(name="T", subjects=["t.>"], allow_batched=True))
    fast = await FastIngest(nc).open()
    batch = outgoing(20, "dup")

    await fast.send(batch)
    await fast.send(batch[5:] + outgoing(2, "new"))

    assert await stored_payloads(js, "T") == [m.data for m in batch + outgoing(2, "new")]


async def test_a_refused_message_ends_the_batch_and_says_how_many_are_stored(
    nc: NATS, js: JetStreamContext
) -> None:
    await js.add_stream(
        StreamConfig(name="T", subjects=["t.>"], allow_batched=True, max_msg_size=500)
    )
    fast = await FastIngest(nc).open()
    batch = outgoing(50, "r")
    batch[30] = Outgoing("t.0", b"x" * 2000, "too-big")  # larger than the stream takes

    with pytest.raises(BatchFailed) as failed:
        await fast.send(batch)

    assert failed.value.stored == 30
    assert "message size exceeds maximum" in failed.value.reason
    assert await stored_payloads(js, "T") == [m.data for m in batch[:30]]


async def test_a_stream_without_batches_refuses_with_not_enabled(
    nc: NATS, js: JetStreamContext
) -> None:
    await js.add_stream(StreamConfig(name="T", subjects=["t.>"]))
    fast = await FastIngest(nc).open()

    with pytest.raises(BatchFailed) as failed:
        await fast.send(outgoing(5, "n"))

    assert failed.value.stored == 0
    assert failed.value.err_code == 10205


def realistic(n: int) -> list[ev.Event]:
    run_id = ev.new_id()
    return [
        ev.StepFinished(run_id=run_id, step_run_id=ev.new_id(), step_name=f"s{i}", duration_s=0.1)
        for i in range(n)
    ]


async def stored_event_ids(js: JetStreamContext) -> list[str]:
    return [ev.decode(data).event_id for data in await stored_payloads(js, STREAM.name)]


def publish_all(server: NatsServer, spool: Path, events: list[ev.Event]) -> EventPublisher:
    publisher = EventPublisher(server.url, spool, fast_ingest=True).start()
    for event in events:
        publisher.publish(event)
    assert publisher.flush(30)
    return publisher


async def test_the_publisher_turns_batches_on_for_a_stream_made_without_them(
    js: JetStreamContext, server: NatsServer, tmp_path: Path
) -> None:
    await js.add_stream(StreamConfig(name=STREAM.name, subjects=STREAM.subjects))
    events = realistic(50)

    publisher = await asyncio.to_thread(publish_all, server, tmp_path / "spool", events)
    publisher.close()

    assert (await js.stream_info(STREAM.name)).config.allow_batched is True
    assert await stored_event_ids(js) == [e.event_id for e in events]


async def test_the_publisher_goes_on_one_by_one_when_the_stream_stops_taking_batches(
    js: JetStreamContext, server: NatsServer, tmp_path: Path
) -> None:
    before, after = realistic(10), realistic(40)
    publisher = await asyncio.to_thread(publish_all, server, tmp_path / "spool", before)
    # someone recreates the stream without fast ingest under the running publisher
    await js.delete_stream(STREAM.name)
    await js.add_stream(StreamConfig(name=STREAM.name, subjects=STREAM.subjects))

    for event in after:
        publisher.publish(event)
    assert await asyncio.to_thread(publisher.flush, 30)
    publisher.close()

    assert await stored_event_ids(js) == [e.event_id for e in after]
    assert publisher.last_seq == 40


def test_events_in_flight_when_nats_restarts_are_stored_once(
    server: NatsServer, tmp_path: Path
) -> None:
    before, during, after = realistic(20_000), realistic(2_000), realistic(5_000)
    publisher = EventPublisher(server.url, tmp_path / "spool", fast_ingest=True).start()
    for event in before:  # handed over: most are still queued or in a batch in flight
        publisher.publish(event)
    # stop NATS while a batch is part-way through: some of it acknowledged, some not
    fast, deadline = publisher._link.fast, time.monotonic() + 10
    assert fast is not None
    while not (fast.current and 0 < fast.current.acked < len(fast.current.items)):
        assert time.monotonic() < deadline, "no batch was caught in flight"
        time.sleep(0.0005)
    server.stop()
    for event in during:
        publisher.publish(event)
    server.start()
    for event in after:
        publisher.publish(event)
    assert publisher.flush(60), "everything should be stored once NATS is back"
    publisher.close()

    async def stored() -> list[str]:
        conn = await nats.connect(server.url)
        try:
            return await stored_event_ids(conn.jetstream())
        finally:
            await conn.close()

    ids = asyncio.run(stored())
    assert len(ids) == len(set(ids))  # none twice
    assert sorted(ids) == sorted(e.event_id for e in before + during + after)  # none lost
