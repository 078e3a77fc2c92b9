"""Ingest throughput: raw JetStream publish vs. publish -> projector -> Postgres, and replay.

    python benchmarks/ingest.py [--events 100000] [--batch-size 4000] [--publishers 1]

Starts its own nats-server and Postgres in temp dirs (or uses
CAIRN_BENCH_NATS_URL / CAIRN_BENCH_DATABASE_URL). Events are realistic runs
(run.started, per step: step.started, artifact.materialized, step.finished;
run.finished), encoded before timing. The projector runs in its own process,
as in a deployment. Figures printed:

- raw: nats-py async publishes/s of the same payloads to a separate stream, all acks awaited;
- EventPublisher: events/s through Cairn's EventPublisher (what the SDK uses: fast-ingest
  batches on nats-server >= 2.14) until JetStream has acknowledged them all;
- end to end: events/s from the first publish until the checkpoint commits the last one;
- replay: events/s for a fresh projector (new name and schema) over the filled stream,
  from the moment its process is up (start-up, migrations and consumer included), and
  from its first commit to its last (the rate a long rebuild runs at).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import asyncpg
import cairn_events as ev
import nats
import structlog
from _servers import bench_nats, bench_postgres
from cairn.publishing import EventPublisher
from cairn.stream_setup import ensure_dead_letter_stream, ensure_stream
from cairn_projections import quote_ident
from cairn_services.projector import Projector
from nats.js.api import StorageType, StreamConfig

TARGET_EVENTS_S = 20_000
TARGET_RATIO = 0.6
STEPS_PER_RUN = 5
PIPELINES = 20


@dataclass(frozen=True)
class Message:
    subject: str
    data: bytes
    msg_id: str


def realistic_events(n: int) -> list[Message]:
    """``n`` encoded events: whole runs of STEPS_PER_RUN steps, each step making one artifact."""
    out: list[Message] = []
    versions: dict[str, int] = {}
    run_no = 0
    while len(out) < n:
        run_no += 1
        pipeline = f"training_{run_no % PIPELINES}"
        run_id, started = ev.new_id(), ev.utcnow()
        events: list[ev.Event] = [
            ev.RunStarted(
                run_id=run_id,
                run_name=f"{pipeline}-{run_no}",
                pipeline_name=pipeline,
                started_at=started,
                parameters={"lr": 0.001, "epochs": 10, "dataset": "s3://bucket/train.parquet"},
                substitutions={"date": "2026_11_24", "time": "06_00_00_000000"},
                step_names=[f"step_{i}" for i in range(STEPS_PER_RUN)],
            )
        ]
        previous: str | None = None
        for i in range(STEPS_PER_RUN):
            step_id, av_id = ev.new_id(), ev.new_id()
            name = f"{pipeline}::step_{i}::output"
            versions[name] = versions.get(name, 0) + 1
            inputs = {"data": previous} if previous else {}
            events += [
                ev.StepStarted(
                    run_id=run_id,
                    step_run_id=step_id,
                    step_name=f"step_{i}",
                    function=f"pipelines.{pipeline}.step_{i}",
                    parameters={"k": i},
                    inputs=inputs,
                ),
                ev.ArtifactMaterialized(
                    artifact_version_id=av_id,
                    name=name,
                    version=str(versions[name]),
                    numeric_count=versions[name],
                    uri=f"/tmp/cairn/artifacts/{av_id}",
                    artifact_type="data",
                    data_type="pandas.core.frame.DataFrame",
                    materializer="cairn.materializers.PandasMaterializer",
                    content_hash="9f86d081884c7d659a2feaa0c55ad015",
                    size=123_456,
                    producer_run_id=run_id,
                    producer_step_run_id=step_id,
                    output_name="output",
                ),
                ev.StepFinished(
                    run_id=run_id,
                    step_run_id=step_id,
                    step_name=f"step_{i}",
                    duration_s=0.5,
                    outputs={"output": av_id},
                ),
            ]
            previous = av_id
        events.append(ev.RunFinished(run_id=run_id, status="completed", duration_s=2.5))
        out += [Message(ev.subject_of(e), ev.encode(e), e.event_id) for e in events]
    return out[:n]


def _shares(messages: list[Message], parts: int) -> Iterator[list[Message]]:
    size = -(-len(messages) // parts)
    for i in range(parts):
        yield messages[i * size : (i + 1) * size]


async def _publish_raw(nats_url: str, messages: list[Message]) -> None:
    """nats-py async publishes of ``messages`` to ``bench-raw.<i % 64>``, all acks awaited."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream(publish_async_max_pending=8000)
    futures = []
    for i, m in enumerate(messages):
        headers = {ev.Header.MSG_ID: f"raw-{m.msg_id}"}
        futures.append(await js.publish_async(f"bench-raw.{i % 64}", m.data, headers=headers))
    await asyncio.gather(*futures)
    await nc.close()


def _raw_publisher_main(
    nats_url: str, messages: list[Message], ready: MpEvent, go: MpEvent
) -> None:
    ready.set()
    go.wait()
    asyncio.run(_publish_raw(nats_url, messages))


def _event_publisher_main(
    nats_url: str, messages: list[Message], ready: MpEvent, go: MpEvent
) -> None:
    events = [ev.decode(m.data) for m in messages]
    with tempfile.TemporaryDirectory(prefix="cairn-bench-spool-") as spool:
        publisher = EventPublisher(nats_url, Path(spool)).start()
        ready.set()
        go.wait()
        for event in events:
            publisher.publish(event)
        if not publisher.flush(600):
            raise RuntimeError("JetStream did not acknowledge every event within 600 s")
        publisher.close()


def publish_parallel(
    nats_url: str, messages: list[Message], publishers: int, raw: bool
) -> tuple[float, float]:
    """perf_counter start and end of publishing from ``publishers`` processes, acks awaited."""
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    target = _raw_publisher_main if raw else _event_publisher_main
    shares = list(_shares(messages, publishers))
    ready = [ctx.Event() for _ in shares]
    procs = [
        ctx.Process(target=target, args=(nats_url, share, up, go))
        for share, up in zip(shares, ready, strict=True)
    ]
    for p in procs:
        p.start()
    for up in ready:  # interpreters up, events decoded, connected: now the clock starts
        if not up.wait(120):
            raise RuntimeError("a publisher process did not come up within 120 s")
    started = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
    return started, time.perf_counter()


def _projector_main(
    nats_url: str,
    database_url: str,
    name: str,
    schema: str,
    batch: int,
    ready: MpEvent,
    stop: MpEvent,
) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    async def run() -> None:
        ready.set()  # imports done: the clock for replay starts here
        async with Projector(nats_url, database_url, name=name, schema=schema, batch_size=batch):
            while not stop.is_set():
                await asyncio.sleep(0.05)

    asyncio.run(run())


def start_projector(
    nats_url: str, database_url: str, name: str, schema: str, batch: int
) -> tuple[mp.Process, MpEvent, float]:
    """A projector in its own process; returns it, its stop event, and when it was ready."""
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    args = (nats_url, database_url, name, schema, batch, ready, stop)
    proc = ctx.Process(target=_projector_main, args=args)
    proc.start()
    if not ready.wait(60):
        raise RuntimeError("the projector process did not come up within 60 s")
    return proc, stop, time.perf_counter()


async def wait_checkpoint(
    database_url: str, schema: str, name: str, seq: int, timeout: float = 600
) -> tuple[float, int]:
    """When (perf_counter) ``name``'s checkpoint in ``schema`` first was >= ``seq``, and its value."""
    conn = await asyncpg.connect(database_url)
    sql = f"SELECT last_seq FROM {quote_ident(schema)}.projector_checkpoints WHERE name = $1"
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                checkpoint = await conn.fetchval(sql, name) or 0
            except asyncpg.UndefinedTableError:
                checkpoint = -1
            if checkpoint >= seq:
                return time.perf_counter(), checkpoint
            await asyncio.sleep(0.005)
    finally:
        await conn.close()
    raise TimeoutError(f"checkpoint of {name} did not reach {seq} in {timeout}s")


async def stream_last_seq(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    info = await nc.jetstream().stream_info(ev.DEFAULT_STREAM.name)
    await nc.close()
    return int(info.state.last_seq)


async def prepare_streams(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js, ev.DEFAULT_STREAM, fast_ingest=False)
    await ensure_dead_letter_stream(js, ev.DEFAULT_STREAM)
    raw = StreamConfig(
        name="BENCH_RAW", subjects=["bench-raw.>"], storage=StorageType.FILE, duplicate_window=120.0
    )
    await js.add_stream(raw)
    await nc.close()


@dataclass(frozen=True)
class Figures:
    events: int
    raw_s: float
    publish_s: float
    e2e_s: float
    replayed: int
    replay_s: float
    steady_events: int
    steady_s: float


def measure(nats_url: str, database_url: str, messages: list[Message], args: Any) -> Figures:
    n = len(messages)
    asyncio.run(prepare_streams(nats_url))
    raw_start, raw_end = publish_parallel(nats_url, messages, args.publishers, raw=True)

    live = start_projector(nats_url, database_url, "bench_live", "bench_live", args.batch_size)
    asyncio.run(wait_checkpoint(database_url, "bench_live", "bench_live", 0))
    time.sleep(1.0)  # the projector is connected and pulling
    base = asyncio.run(stream_last_seq(nats_url))
    started, published = publish_parallel(nats_url, messages, args.publishers, raw=False)
    last = asyncio.run(stream_last_seq(nats_url))
    assert last - base == n, f"published {last - base} events, expected {n}"
    done, _ = asyncio.run(wait_checkpoint(database_url, "bench_live", "bench_live", last))
    live[1].set()
    live[0].join()

    proc, stop, ready = start_projector(
        nats_url, database_url, "bench_replay", "bench_replay", args.batch_size
    )
    first, first_seq = asyncio.run(wait_checkpoint(database_url, "bench_replay", "bench_replay", 1))
    replay_done, _ = asyncio.run(
        wait_checkpoint(database_url, "bench_replay", "bench_replay", last)
    )
    stop.set()
    proc.join()
    return Figures(
        events=n,
        raw_s=raw_end - raw_start,
        publish_s=published - started,
        e2e_s=done - started,
        replayed=last,
        replay_s=replay_done - ready,
        steady_events=last - first_seq,
        steady_s=replay_done - first,
    )


def report(f: Figures, args: Any, size: float) -> None:
    raw, e2e = f.events / f.raw_s, f.events / f.e2e_s
    replay, steady = f.replayed / f.replay_s, f.steady_events / f.steady_s
    ok = {True: "ok", False: "MISSED"}
    target = f">= {TARGET_EVENTS_S:,}"
    rows = [
        ("raw JetStream async publish", f"{raw:,.0f}", ""),
        ("EventPublisher (events stream)", f"{f.events / f.publish_s:,.0f}", ""),
        (
            "end to end (publish -> Postgres)",
            f"{e2e:,.0f}",
            f"{target} {ok[e2e >= TARGET_EVENTS_S]}",
        ),
        (
            "end to end / raw",
            f"{e2e / raw:.2f}",
            f">= {TARGET_RATIO} {ok[e2e / raw >= TARGET_RATIO]}",
        ),
        (
            f"replay, {f.replayed} events",
            f"{replay:,.0f}",
            f"{target} {ok[replay >= TARGET_EVENTS_S]}",
        ),
        (
            "replay after first commit",
            f"{steady:,.0f}",
            f"{target} {ok[steady >= TARGET_EVENTS_S]}",
        ),
    ]
    print(
        f"\n{f.events} events, {size:.0f} B average, {args.publishers} publisher(s), "
        f"batch {args.batch_size}"
    )
    print(f"{'figure':<34}{'events/s':>12}  target")
    for label, value, goal in rows:
        print(f"{label:<34}{value:>12}  {goal}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=4000)
    parser.add_argument("--publishers", type=int, default=1)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    messages = realistic_events(args.events)
    size = sum(len(m.data) for m in messages) / len(messages)
    with bench_nats() as nats_url, bench_postgres() as database_url:
        figures = measure(nats_url, database_url, messages, args)
    report(figures, args, size)


if __name__ == "__main__":
    main()
