"""Latency of an artifact version's lineage over a chain of 10,000 versions, at full depth.

    python benchmarks/lineage.py [--versions 10000] [--per-run 100] [--repeat 15]

Starts its own Postgres (or uses $CAIRN_BENCH_DATABASE_URL), folds a made-up chain with
the real folds and writes it with the projector's writer: version ``i`` is stored by
step run ``i``, which read version ``i - 1``; ``--per-run`` step runs per pipeline run,
so the chain crosses runs. Then times, upstream from the last version and downstream
from the first (the whole chain either way: 10,000 versions, 10,000 step runs, 20,000
edges):

- the query API (its app called in-process through httpx: routing, the lineage index's
  checkpoint check, the walk in memory, JSON, the response read; no socket). The budget
  is for this figure. Its first request after the app starts is timed apart (cold: the
  index loads the whole read model first);
- the in-memory walk alone (``LineageIndex.lineage`` and encoding its answer), the
  index's full load and the bytes it holds per entry;
- the reference query ``cairn_projections.lineage.get_lineage`` (recursive SQL), and for
  scale the bare recursive walk of version ids alone.

Prints medians (after one warm-up call each) next to the 20 ms budget.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

sys.path.insert(0, os.path.dirname(__file__))
from _servers import bench_postgres  # noqa: E402

BUDGET_MS = 20.0
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def chain_events(versions: int, per_run: int) -> list[Any]:
    """The events of the chain: runs of ``per_run`` step runs, each storing one version
    from the previous one."""
    from cairn_events import (
        ArtifactMaterialized,
        RunFinished,
        RunOutcome,
        RunStarted,
        StepFinished,
        StepStarted,
    )

    events: list[Any] = []
    for i in range(versions):
        run, position = f"run-{i // per_run}", i % per_run
        if position == 0:
            events.append(
                RunStarted(
                    run_id=run,
                    run_name=f"chain-{i // per_run}",
                    pipeline_name="chain",
                    started_at=T0 + timedelta(seconds=i),
                )
            )
        step_id, av_id, at = f"step-{i}", f"av-{i}", T0 + timedelta(seconds=i)
        step_name = f"step_{position}"
        inputs = {"previous": f"av-{i - 1}"} if i else {}
        events += [
            StepStarted(
                run_id=run,
                step_run_id=step_id,
                step_name=step_name,
                function="chain.step",
                inputs=inputs,
                occurred_at=at,
            ),
            ArtifactMaterialized(
                artifact_version_id=av_id,
                name=f"chain::{position}",
                version=str(i // per_run + 1),
                numeric_count=i // per_run + 1,
                uri=f"/store/{av_id}",
                artifact_type="data",
                data_type="builtins.int",
                materializer="cairn.materializers.BuiltInMaterializer",
                content_hash=f"h{i}",
                size=8,
                producer_run_id=run,
                producer_step_run_id=step_id,
                output_name="output",
                occurred_at=at,
            ),
            StepFinished(
                run_id=run,
                step_run_id=step_id,
                step_name=step_name,
                duration_s=0.01,
                outputs={"output": av_id},
                occurred_at=at,
            ),
        ]
        if position == per_run - 1 or i == versions - 1:
            events.append(RunFinished(run_id=run, status=RunOutcome.COMPLETED, duration_s=1.0))
    return events


async def write_chain(database_url: str, schema: str, versions: int, per_run: int) -> None:
    """Fold the chain and write it as the projector does (one batch), then ANALYZE."""
    from cairn_projections import fold_all
    from cairn_services.projector.batch import Batch, Projected
    from cairn_services.projector.writer import ProjectionWriter, open_connection

    events = chain_events(versions, per_run)
    writer = ProjectionWriter(database_url, "bench-lineage", schema)
    await writer.open()
    try:
        projected = [Projected(seq, "", b"", fold_all([e])) for seq, e in enumerate(events, 1)]
        await writer.commit(Batch(projected=projected, first_seq=1, last_seq=len(events)))
    finally:
        await writer.close()
    conn = await open_connection(database_url, schema)
    try:
        await conn.execute("ANALYZE")  # as autovacuum would soon after such a load
    finally:
        await conn.close()


async def median_ms(call: Callable[[], Awaitable[Any]], repeat: int) -> float:
    await call()  # warm: plans cached, pages in memory
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


async def measure(database_url: str, args: argparse.Namespace) -> None:
    """Write the chain into a schema of its own, time it, and drop the schema."""
    from cairn_services.projector.writer import open_connection

    schema = f"bench_lineage_{uuid.uuid4().hex[:8]}"
    try:
        await time_lineage(database_url, schema, args)
    finally:
        conn = await open_connection(database_url, schema)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def time_lineage(database_url: str, schema: str, args: argparse.Namespace) -> None:
    from cairn_projections.lineage import _REACHABLE, LineageGraph, get_lineage
    from cairn_services.projector.writer import open_connection

    started = time.perf_counter()
    await write_chain(database_url, schema, args.versions, args.per_run)
    print(f"chain of {args.versions:,} versions written in {time.perf_counter() - started:.1f} s")
    last, first = f"av-{args.versions - 1}", "av-0"

    api, cold = await time_api(database_url, schema, args, last, first)
    conn = await open_connection(database_url, schema)
    try:
        index, load, entry_bytes = await load_index(conn)
        for start, direction in ((last, "upstream"), (first, "downstream")):
            answer = index.lineage(start, direction=direction)
            assert answer is not None
            graph = msgspec.json.decode(msgspec.json.encode(answer), type=LineageGraph)
            reference = await get_lineage(conn, start, direction=direction)
            assert reference is not None and _same(graph, reference), f"{direction} differs"
        memory = {
            "upstream of the last (memory)": median_ms_sync(
                lambda: msgspec.json.encode(index.lineage(last)), args.repeat
            ),
            "downstream of the first (memory)": median_ms_sync(
                lambda: msgspec.json.encode(index.lineage(first, direction="downstream")),
                args.repeat,
            ),
        }
        query = {
            "upstream of the last (query)": await median_ms(
                lambda: get_lineage(conn, last), args.repeat
            ),
            "downstream of the first (query)": await median_ms(
                lambda: get_lineage(conn, first, direction="downstream"), args.repeat
            ),
        }
        walk = f"WITH RECURSIVE {_REACHABLE['upstream']} SELECT count(*) FROM reachable"
        floor = await median_ms(lambda: conn.fetchval(walk, last), args.repeat)
    finally:
        await conn.close()

    print(
        f"lineage at full depth, median of {args.repeat}: {2 * args.versions:,} nodes, "
        f"{2 * args.versions - 1:,} edges"
    )
    print("  over the API (in-process: route, checkpoint check, walk in memory, JSON, response)")
    for what, ms in api.items():
        print(f"    {what:33}: {ms:7.2f} ms")
    print(f"    {'budget':33}: {BUDGET_MS:7.2f} ms")
    print(f"    {'first request (cold: full load)':33}: {cold:7.2f} ms")
    print("  the in-memory walk alone (LineageIndex.lineage + encoding its answer)")
    for what, ms in memory.items():
        print(f"    {what:33}: {ms:7.2f} ms")
    print(
        f"    {'full load of the index':33}: {load:7.2f} ms  ({index.entries:,} entries, "
        f"{entry_bytes:.0f} bytes each)"
    )
    print("  the reference query (recursive SQL, cairn_projections.lineage.get_lineage)")
    for what, ms in query.items():
        print(f"    {what:33}: {ms:7.2f} ms")
    print(f"    {'recursive walk, ids only':33}: {floor:7.2f} ms  (no step runs, no edges)")


async def time_api(
    database_url: str, schema: str, args: argparse.Namespace, last: str, first: str
) -> tuple[dict[str, float], float]:
    """Medians of the API's answers, and its first answer's time (the index loads then)."""
    import httpx
    from cairn_services.api import create_app

    app = create_app(database_url, schema=schema, projector_name="bench-lineage")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cairn") as http:

            def over_api(version: str, direction: str) -> Callable[[], Awaitable[None]]:
                async def call() -> None:
                    path = f"/artifact-versions/{version}/lineage?direction={direction}"
                    response = await http.get(path)
                    assert response.status_code == 200, response.text

                return call

            started = time.perf_counter()
            await over_api(last, "upstream")()
            cold = (time.perf_counter() - started) * 1000
            figures = {
                "upstream of the last (API)": await median_ms(
                    over_api(last, "upstream"), args.repeat
                ),
                "downstream of the first (API)": await median_ms(
                    over_api(first, "downstream"), args.repeat
                ),
            }
    return figures, cold


async def load_index(conn: Any) -> tuple[Any, float, float]:
    """A full load of a new index: the index, its time, and the bytes it holds per entry
    (measured on a second load, under tracemalloc, which slows it)."""
    import tracemalloc

    from cairn_projections.lineage_index import LineageIndex

    index = LineageIndex("bench-lineage")
    started = time.perf_counter()
    assert await index.refresh(conn)
    load = (time.perf_counter() - started) * 1000
    tracemalloc.start()
    try:
        traced = LineageIndex("bench-lineage")
        assert await traced.refresh(conn)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return index, load, held / traced.entries


def _same(graph: Any, reference: Any) -> bool:
    """The same start, nodes and edges (in any order)."""

    def encoded(items: Any) -> list[bytes]:
        return sorted(msgspec.json.encode(item) for item in items)

    return bool(
        graph.nodes[0] == reference.nodes[0]
        and encoded(graph.nodes) == encoded(reference.nodes)
        and encoded(graph.edges) == encoded(reference.edges)
    )


def median_ms_sync(call: Callable[[], Any], repeat: int) -> float:
    call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--per-run", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with bench_postgres() as database_url:
        asyncio.run(measure(database_url, args))


if __name__ == "__main__":
    main()
