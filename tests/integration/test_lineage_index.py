"""The lineage index answers exactly what the recursive query answers, on the same read
model, as it changes: every version, each direction, at several depths; refreshed from
what changed only, including rows of a transaction that committed after a later one.

Events are folded and written with the projector's writer (as ``benchmarks/lineage.py``
does), so the read model is the real one; the index and the reference query
(``cairn_projections.lineage.get_lineage``) read it side by side.
"""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from cairn.models import LineageGraph as ModelGraph
from cairn_events import Event, RunStarted
from cairn_projections import fold_all
from cairn_projections.lineage import DIRECTIONS, LineageGraph, get_lineage
from cairn_projections.lineage_index import LineageIndex
from cairn_services.api import create_app
from cairn_services.projector.batch import Batch, Projected
from cairn_services.projector.writer import ProjectionWriter, open_connection
from test_lineage import Runs, _at

PROJECTOR = "index-test"
DEPTHS = (1, 2, 3, 65, None)


class ReadModel:
    """A fresh database's read model, written batch by batch as the projector would."""

    def __init__(self, database_url: str, conn: asyncpg.Connection) -> None:
        self.database_url, self.conn, self.seq = database_url, conn, 0

    async def write(self, events: list[Event]) -> None:
        writer = ProjectionWriter(self.database_url, PROJECTOR, "public")
        await writer.open()
        try:
            first = self.seq + 1
            projected = [
                Projected(seq, "", b"", fold_all([event]))
                for seq, event in enumerate(events, first)
            ]
            self.seq += len(events)
            await writer.commit(Batch(projected=projected, first_seq=first, last_seq=self.seq))
        finally:
            await writer.close()

    async def version_ids(self) -> list[str]:
        return [r["id"] for r in await self.conn.fetch("SELECT id FROM artifact_versions")]


@pytest.fixture
async def read_model(fresh_database: str) -> AsyncIterator[ReadModel]:
    conn = await open_connection(fresh_database, "public")
    try:
        yield ReadModel(fresh_database, conn)
    finally:
        await conn.close()


def _encoded(items: Any) -> list[bytes]:
    return sorted(msgspec.json.encode(item) for item in items)


async def assert_same_answers(index: LineageIndex, model: ReadModel) -> int:
    """Every version's lineage from the index equals the query's, in every direction at
    every depth (nodes and edges in any order, the version first); how many compared."""
    assert await index.refresh(model.conn)
    compared = 0
    for av_id in await model.version_ids():
        for direction in DIRECTIONS:
            for depth in DEPTHS:
                found = index.lineage(av_id, direction=direction, depth=depth)  # type: ignore[arg-type]
                assert found is not None
                graph = msgspec.json.decode(msgspec.json.encode(found), type=LineageGraph)
                reference = await get_lineage(model.conn, av_id, direction=direction, depth=depth)  # type: ignore[arg-type]
                assert reference is not None
                where = f"{direction} of {av_id} to depth {depth}"
                assert graph.nodes[0] == reference.nodes[0], where
                assert _encoded(graph.nodes) == _encoded(reference.nodes), where
                assert _encoded(graph.edges) == _encoded(reference.edges), where
                assert len(graph.edges) == len(reference.edges), f"{where}: an edge twice"
                assert (graph.direction, graph.depth) == (direction, depth)
                compared += 1
    return compared


def tangled(tag: str) -> tuple[Runs, Runs, str]:
    """Two batches of events with most of what lineage has to get right: a chain across
    runs, a diamond, a step with two outputs and one read twice, a cached step run, a step
    that loads what it saved, a two-step loop, versions named by edges but never stored,
    a version whose producer is not projected, and, in the second batch, what changes
    rows the first wrote: steps finishing and hitting the cache, a run started late, a
    loaded input replacing an argument's version under the same key. And the version the
    late run's step run made."""
    first, second = Runs(tag), Runs(tag)
    run = first.run("one")
    _, raw = first.step(run, "load", {}, "raw")
    _, a = first.step(run, "left", {"raw": raw}, "a")
    _, b = first.step(run, "right", {"raw": raw}, "b")
    join = first.start(run, "join", {"a": a, "b": b, "again": a})
    joined = first.version("joined", join, run)
    first.end(run, join, {"out": joined, "also": joined})  # one version under two keys
    snap = first.start(run, "snapshot", {"joined": joined})
    snapshot = first.version("snapshot", snap, run)
    first.end(run, snap, {"output": snapshot}, loaded={"snapshot": snapshot})
    ping, pong = f"av-{tag}-ping-1", f"av-{tag}-pong-1"
    for name, reads, out in (("ping", pong, ping), ("pong", ping, pong)):
        first.start(run, name, {"other": reads})
        first.version(name, f"step-{run}-{name}", run)
        first.end(run, f"step-{run}-{name}", {"output": out})
    first.step(run, "reads_a_ghost", {"ghost": f"av-{tag}-never-stored"}, "haunted")
    first.version("orphan", f"step-{tag}-never-projected", run)  # its producer is unknown
    late = "run-late"  # its steps come before its run.started (in the second batch)
    pending = first.start(late, "pending", {"joined": joined})
    first.finish(run)

    second.events.append(
        RunStarted(run_id=late, run_name="started-late", pipeline_name="p", started_at=_at())
    )
    made = second.version("pending", pending, late)
    second.end(late, pending, {"output": made}, loaded={"joined": snapshot})  # was joined
    again = second.run("two")
    second.cached(again, "left", {"raw": raw}, (run, f"step-{run}-left"), {"output": a})
    _, trained = second.step(again, "train", {"a": a, "pending": made}, "model")
    second.step(again, "evaluate", {"model": trained, "raw": raw}, "report")
    second.finish(again)
    return first, second, made


async def test_the_index_answers_what_the_query_answers_as_the_read_model_changes(
    read_model: ReadModel,
) -> None:
    first, second, made = tangled(uuid.uuid4().hex[:8])
    await read_model.write(first.events)
    index = LineageIndex(PROJECTOR)
    assert await assert_same_answers(index, read_model) > 100
    loaded = index.rows_read

    await read_model.write(second.events)
    assert await assert_same_answers(index, read_model) > 100
    assert 0 < index.rows_read < loaded  # what changed, not everything again
    fresh = LineageIndex(PROJECTOR)  # and a full load of the same rows agrees
    await assert_same_answers(fresh, read_model)
    assert fresh.entries == index.entries

    late = next(node for node in index_graph(index, made).nodes if node.kind == "step_run")
    assert (late.name, late.run_name, late.status) == ("pending", "started-late", "completed")

    assert await index.refresh(read_model.conn)  # nothing moved: nothing read
    assert index.rows_read == 0
    assert index.lineage("no-such-version") is None
    with pytest.raises(ValueError, match="no lineage walk goes 'sideways'"):
        index.lineage("x", direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="to depth 0"):
        index.lineage("x", depth=0)


def index_graph(index: LineageIndex, av_id: str) -> LineageGraph:
    found = index.lineage(av_id)
    assert found is not None
    return msgspec.json.decode(msgspec.json.encode(found), type=LineageGraph)


async def test_rows_committed_after_a_later_transaction_are_not_missed(
    read_model: ReadModel,
) -> None:
    """A transaction that wrote before another one but committed after it (two writers
    in one schema) is read at the next refresh: the cursor is the snapshot, not a count."""
    runs = Runs(uuid.uuid4().hex[:8])
    run = runs.run("slow")
    _, raw = runs.step(run, "load", {}, "raw")
    await read_model.write(runs.events)
    index = LineageIndex(PROJECTOR)
    assert await index.refresh(read_model.conn)

    slow = await open_connection(read_model.database_url, "public")
    try:
        transaction = slow.transaction()
        await transaction.start()
        await slow.execute(
            "INSERT INTO step_inputs (step_run_id, key, artifact_version_id) VALUES ($1, $2, $3)",
            f"step-{run}-load",
            "written_first",
            raw,
        )
        later = Runs(runs.tag)
        later.step(run, "clean", {"raw": raw}, "cleaned")
        await read_model.write(later.events)  # commits while the slow transaction is open
        assert await index.refresh(read_model.conn)
        await transaction.commit()
    finally:
        await slow.close()
    last = Runs(runs.tag)
    last.step(run, "train", {"raw": raw}, "model")
    await read_model.write(last.events)  # moves the checkpoint: the index refreshes

    await assert_same_answers(index, read_model)
    edges = {(e.source, e.key) for e in index_graph(index, raw).edges}
    assert (raw, "written_first") in edges  # the load step run reads what it saved


async def test_a_graph_over_the_bound_is_answered_by_the_query(read_model: ReadModel) -> None:
    runs = Runs(uuid.uuid4().hex[:8])
    run = runs.run("big")
    _, raw = runs.step(run, "load", {}, "raw")
    _, cleaned = runs.step(run, "clean", {"raw": raw}, "cleaned")
    await read_model.write(runs.events)
    small = LineageIndex(PROJECTOR, max_entries=3)
    assert not await small.refresh(read_model.conn)
    assert (small.holds_graph, small.entries) == (False, 0)  # it holds nothing

    reference = await get_lineage(read_model.conn, cleaned, direction="both")
    assert reference is not None
    for entries in (3, 1000):  # from Postgres, then from memory: the same JSON shape
        app = create_app(read_model.database_url, projector_name=PROJECTOR, lineage_entries=entries)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://cairn") as http:
                response = await http.get(f"/artifact-versions/{cleaned}/lineage?direction=both")
                assert response.status_code == 200, response.text
                missing = await http.get("/artifact-versions/no-such/lineage")
                assert missing.status_code == 404
                assert "No artifact version with id 'no-such'" in missing.text
        graph = msgspec.json.decode(response.content, type=ModelGraph)
        assert graph.nodes[0].id == cleaned
        assert _encoded(graph.nodes) == _encoded(reference.nodes)
        assert _encoded(graph.edges) == _encoded(reference.edges)
