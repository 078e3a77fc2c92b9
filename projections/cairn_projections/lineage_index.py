"""Lineage from memory: the graph of :mod:`.lineage`, held in the API process and walked in
Python, so a 10,000-version chain answers in milliseconds rather than a recursive query's
hundred.

:class:`LineageIndex` holds what a lineage answer shows and nothing else: each artifact
version (its node, its producer), each step run the walks go through (its node, by
:data:`.lineage.COUNTED_STEP_RUNS`), each input and output edge, and the consumers of each
version. Nodes and edges are kept as their JSON (``msgspec.Raw``, encoded from
:class:`.lineage.LineageNode` / :class:`.lineage.LineageEdge` once, when they are read), so an
answer is a breadth-first walk collecting references, encoded by copying bytes.

It is derived from the read model only: the log is the truth, Postgres is rebuilt from it,
the index is read from Postgres. :meth:`LineageIndex.refresh` brings it up to date before
an answer whenever the projector's checkpoint moved: it reads, in one snapshot, the rows
written since the snapshot of its previous refresh. Every table it reads has ``row_xid``, the
transaction that last wrote the row (migration 3, see ``runs._V3``), so "written since"
is exactly "by a transaction the previous snapshot did not see": one newer than its
``xmax``, or one of its in-progress ones (``xip``). That holds for any writer and any commit
order, where a counter of rows would miss a transaction that took its numbers first and
committed last. So an answer is never ahead of Postgres nor different from it: it is the
read model as of a snapshot taken after the checkpoint the request saw.

The walks are those of :func:`.lineage.get_lineage`, which stays the reference (the tests
compare both on the same data): a version is walked from once, at its shortest depth; a
step run's edges on the far side are emitted once per walk; a cycle ends the walk.

Memory is bounded by ``max_entries`` (versions, step runs and edges together): a read
model with more makes :meth:`~LineageIndex.refresh` drop the index and answer False, and
the caller queries Postgres instead (see the README's Lineage section for the bytes per entry).
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import msgspec

from .bookkeeping import get_checkpoint
from .connection import Queryable
from .lineage import (
    COUNTED_STEP_RUNS,
    DIRECTIONS,
    Direction,
    LineageEdge,
    LineageNode,
    step_run_node,
)

#: The default bound on versions + step runs + edges held (about 520 bytes each: ~260 MB).
DEFAULT_MAX_ENTRIES = 500_000

_encode = msgspec.json.Encoder().encode


class EncodedLineage(msgspec.Struct, kw_only=True, gc=False):
    """A :class:`.lineage.LineageGraph` whose nodes and edges are already JSON: encoding it
    gives the graph's JSON, and decoding that as a ``LineageGraph`` gives the graph."""

    artifact_version_id: str
    direction: Direction
    depth: int | None
    nodes: list[msgspec.Raw]
    edges: list[msgspec.Raw]


class Snapshotting(Queryable, Protocol):
    """A connection that reads in one snapshot: asyncpg's ``transaction(isolation=...)``."""

    def transaction(
        self, *, isolation: str | None = ..., readonly: bool = ...
    ) -> AbstractAsyncContextManager[Any]: ...


#: An edge of a step run, as its slot holds it: (its key, the version's slot, its JSON).
_Edge = tuple[str, int, msgspec.Raw]
#: A reader of a version, as its slot holds it: (the step run's slot, the key, the edge's JSON).
_Reader = tuple[int, str, msgspec.Raw]


# -- what a refresh reads -------------------------------------------------------------
#
# ``{changed}`` is true of the rows to read: every row for the first load, else those
# written by a transaction the previous snapshot did not see ($1 its xmax, $2 its xip).

_CHANGED = "row_xid >= $1::bigint OR row_xid = ANY($2::bigint[])"
_SNAPSHOT_SQL = """
SELECT pg_snapshot_xmax(s)::text::bigint AS xmax,
       array(SELECT pg_snapshot_xip(s)::text::bigint) AS xip
FROM pg_current_snapshot() s
"""
_VERSIONS_SQL = "SELECT id, name, version, producer_step_run_id FROM artifact_versions {where}"
_STEP_RUNS_SQL = f"""
SELECT s.id, s.name, s.run_id, s.status, s.original_step_run_id,
       COALESCE(r.name, s.run_id) AS run_name, ({COUNTED_STEP_RUNS}) AS counted
FROM step_runs s LEFT JOIN pipeline_runs r ON r.id = s.run_id {{where}}
"""
_RUNS_SQL = "SELECT id, COALESCE(name, id) AS name FROM pipeline_runs {where}"
_EDGES_SQL = "SELECT step_run_id, key, artifact_version_id FROM {table} {where}"


class _Changes(msgspec.Struct, kw_only=True):
    """What one refresh read, in one snapshot."""

    checkpoint: int
    xmax: int
    xip: list[int]
    versions: list[Any]
    step_runs: list[Any]
    runs: list[Any]
    inputs: list[Any]
    outputs: list[Any]

    @property
    def rows(self) -> int:
        return sum(map(len, (self.versions, self.step_runs, self.runs, self.inputs, self.outputs)))


class LineageIndex:
    """The lineage graph of one schema in memory, following projector ``projector``'s
    checkpoint (see the module docstring). One per API process; requests share it.

    Versions and step runs live in dense slots (an id's slot is its place in the lists
    below), so a walk indexes lists and ``bytearray`` marks instead of hashing ids. A slot
    exists from the first row naming its id; a version's node is None until its own row
    is read, a step run's while it has none or the walks do not count it.
    """

    def __init__(self, projector: str, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.projector, self.max_entries = projector, max_entries
        self._lock = asyncio.Lock()
        #: the checkpoint and snapshot of the last refresh (None: nothing loaded yet)
        self.checkpoint: int | None = None
        self._xmax: int = 0
        self._xip: list[int] = []
        #: False once the read model outgrew max_entries: callers query Postgres
        self.holds_graph = True
        #: rows the last call of refresh read (the first load reads every row; 0 when the
        #: checkpoint had not moved)
        self.rows_read = 0
        self._clear()

    def _clear(self) -> None:
        self._version_slots: dict[str, int] = {}
        self._version_ids: list[str] = []
        self._version_nodes: list[msgspec.Raw | None] = []
        self._producers: list[int] = []  # its producer's step run slot, -1 for none
        #: the output edge from the version's producer (see :meth:`_set_produced`)
        self._produced: list[msgspec.Raw | None] = []
        self._readers: list[list[_Reader]] = []
        self._step_slots: dict[str, int] = {}
        self._step_ids: list[str] = []
        self._step_fields: list[LineageNode | None] = []
        self._step_nodes: list[msgspec.Raw | None] = []
        self._inputs: list[tuple[_Edge, ...]] = []
        self._outputs: list[tuple[_Edge, ...]] = []
        #: run id -> the slots of its step runs, whose nodes show its name
        self._runs: dict[str, set[int]] = {}
        self._counts = {"versions": 0, "step runs": 0, "edges": 0}

    @property
    def entries(self) -> int:
        """Versions, step runs and edges held: what ``max_entries`` bounds."""
        return sum(self._counts.values())

    def _version_slot(self, av_id: str) -> int:
        slot = self._version_slots.get(av_id)
        if slot is None:
            slot = self._version_slots[av_id] = len(self._version_ids)
            self._version_ids.append(av_id)
            self._version_nodes.append(None)
            self._producers.append(-1)
            self._produced.append(None)
            self._readers.append([])
        return slot

    def _step_slot(self, step_id: str) -> int:
        slot = self._step_slots.get(step_id)
        if slot is None:
            slot = self._step_slots[step_id] = len(self._step_ids)
            self._step_ids.append(step_id)
            self._step_fields.append(None)
            self._step_nodes.append(None)
            self._inputs.append(())
            self._outputs.append(())
        return slot

    # -- refreshing ---------------------------------------------------------------------

    async def refresh(self, conn: Snapshotting) -> bool:
        """Bring the index up to date if the checkpoint moved since its last refresh (one
        query when it did not); True if it can answer, False if the read model is over
        ``max_entries`` (then query Postgres: :func:`.lineage.get_lineage`)."""
        if not self.holds_graph:
            return False
        self.rows_read = 0
        if await get_checkpoint(conn, self.projector) == self.checkpoint:
            return True
        async with self._lock:  # one refresh at a time; the others find it done
            if not self.holds_graph:
                return False
            if await get_checkpoint(conn, self.projector) == self.checkpoint:
                return True  # another request refreshed while this one waited
            changes = await self._read_changes(conn)
            if self.entries + changes.rows > self.max_entries:
                self._clear()
                self.holds_graph = False
                return False
            self._apply(changes)
            return True

    async def _read_changes(self, conn: Snapshotting) -> _Changes:
        first = self.checkpoint is None
        where = "" if first else f"WHERE {_CHANGED}"
        args: tuple[Any, ...] = () if first else (self._xmax, self._xip)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await conn.fetchrow(_SNAPSHOT_SQL)
            return _Changes(
                checkpoint=await get_checkpoint(conn, self.projector),
                xmax=snapshot["xmax"],
                xip=list(snapshot["xip"]),
                versions=await conn.fetch(_VERSIONS_SQL.format(where=where), *args),
                step_runs=await conn.fetch(
                    _STEP_RUNS_SQL.format(where=where.replace("row_xid", "s.row_xid")), *args
                ),
                runs=[] if first else await conn.fetch(_RUNS_SQL.format(where=where), *args),
                inputs=await conn.fetch(_EDGES_SQL.format(table="step_inputs", where=where), *args),
                outputs=await conn.fetch(
                    _EDGES_SQL.format(table="step_outputs", where=where), *args
                ),
            )

    def _apply(self, changes: _Changes) -> None:
        """Apply what a refresh read (no awaits: no walk sees it half applied)."""
        touched: set[int] = set()  # versions whose producer's output edge may have changed
        for av_id, name, version, producer in changes.versions:
            slot = self._version_slot(av_id)
            node = LineageNode(kind="artifact_version", id=av_id, name=name, version=version)
            if self._version_nodes[slot] is None:
                self._counts["versions"] += 1
            self._version_nodes[slot] = msgspec.Raw(_encode(node))
            self._producers[slot] = -1 if producer is None else self._step_slot(producer)
            touched.add(slot)
        for step_id, name, run_id, status, original, run_name, counted in changes.step_runs:
            fields = step_run_node(step_id, name, run_id, run_name, status, original)
            self._set_step_run(self._step_slot(step_id), fields if counted else None)
        for run_id, name in changes.runs:
            self._rename_run(run_id, name)
        for step_id, key, av_id in changes.inputs:
            self._set_input(self._step_slot(step_id), key, av_id)
        for step_id, key, av_id in changes.outputs:
            touched.update(self._set_output(self._step_slot(step_id), key, av_id))
        for slot in touched:
            self._set_produced(slot)
        self.checkpoint, self._xmax, self._xip = changes.checkpoint, changes.xmax, changes.xip
        self.rows_read = changes.rows

    def _set_step_run(self, slot: int, fields: LineageNode | None) -> None:
        """Step run ``slot`` is now ``fields`` (None: the walks do not go through it)."""
        old = self._step_fields[slot]
        if old is not None:
            self._runs[old.run_id or ""].discard(slot)
            self._counts["step runs"] -= 1
        self._step_fields[slot] = fields
        self._step_nodes[slot] = None if fields is None else msgspec.Raw(_encode(fields))
        if fields is not None:
            self._runs.setdefault(fields.run_id or "", set()).add(slot)
            self._counts["step runs"] += 1

    def _rename_run(self, run_id: str, name: str) -> None:
        """Run ``run_id`` is now named ``name``: the nodes of its step runs say so."""
        for slot in list(self._runs.get(run_id, ())):
            fields = self._step_fields[slot]
            if fields is not None and fields.run_name != name:
                self._set_step_run(slot, msgspec.structs.replace(fields, run_name=name))

    def _set_input(self, step: int, key: str, av_id: str) -> None:
        edge = LineageEdge(kind="input", source=av_id, target=self._step_ids[step], key=key)
        raw = msgspec.Raw(_encode(edge))
        slot = self._version_slot(av_id)
        old = self._replace_edge(self._inputs, step, key, slot, raw)
        if old is not None:
            readers = self._readers[old]
            readers[:] = [r for r in readers if not (r[0] == step and r[1] == key)]
        self._readers[slot].append((step, key, raw))

    def _set_output(self, step: int, key: str, av_id: str) -> tuple[int, ...]:
        """Record the output; the versions whose producer's output edge may change."""
        edge = LineageEdge(kind="output", source=self._step_ids[step], target=av_id, key=key)
        slot = self._version_slot(av_id)
        old = self._replace_edge(self._outputs, step, key, slot, msgspec.Raw(_encode(edge)))
        return (slot,) if old is None else (slot, old)

    def _replace_edge(
        self, edges: list[tuple[_Edge, ...]], step: int, key: str, slot: int, raw: msgspec.Raw
    ) -> int | None:
        """Set step run ``step``'s edge ``key`` to version ``slot``; the slot it pointed at
        before, if it had that edge."""
        held = edges[step]
        old = next((edge[1] for edge in held if edge[0] == key), None)
        edges[step] = (*(edge for edge in held if edge[0] != key), (key, slot, raw))
        if old is None:
            self._counts["edges"] += 1
        return old

    def _set_produced(self, slot: int) -> None:
        """The output edge from version ``slot``'s producer: its output key for it, the least
        if several (an empty key while the producer's outputs are not recorded), as
        :data:`.lineage._HOP_SELECT` has it."""
        producer, node = self._producers[slot], self._version_nodes[slot]
        if producer < 0 or node is None:
            return
        keyed = [edge for edge in self._outputs[producer] if edge[1] == slot]
        if keyed:
            self._produced[slot] = min(keyed, key=lambda edge: edge[0])[2]
        else:
            empty = LineageEdge(
                kind="output",
                source=self._step_ids[producer],
                target=self._version_ids[slot],
                key="",
            )
            self._produced[slot] = msgspec.Raw(_encode(empty))

    # -- answering ------------------------------------------------------------------------

    def lineage(
        self,
        artifact_version_id: str,
        *,
        direction: Direction = "upstream",
        depth: int | None = None,
    ) -> EncodedLineage | None:
        """What :func:`.lineage.get_lineage` answers, as of the last refresh; None if there
        is no such version. ValueError for a ``direction`` or ``depth`` that is not one."""
        if direction not in DIRECTIONS or (depth is not None and depth < 1):
            raise ValueError(f"no lineage walk goes {direction!r} to depth {depth!r}")
        start = self._version_slots.get(artifact_version_id, -1)
        if start < 0 or (start_node := self._version_nodes[start]) is None:
            return None
        limit = sys.maxsize if depth is None else depth
        nodes: list[msgspec.Raw] = [start_node]
        edges: list[msgspec.Raw] = []
        if direction == "upstream":
            self._upstream(start, limit, nodes, edges)
        elif direction == "downstream":
            self._downstream(start, limit, nodes, edges)
        else:  # both: then what the downstream walk adds, each node and edge once
            self._upstream(start, limit, nodes, edges)
            down_nodes: list[msgspec.Raw] = [start_node]
            down_edges: list[msgspec.Raw] = []
            self._downstream(start, limit, down_nodes, down_edges)
            _extend_new(nodes, down_nodes)
            _extend_new(edges, down_edges)
        return EncodedLineage(
            artifact_version_id=artifact_version_id,
            direction=direction,
            depth=depth,
            nodes=nodes,
            edges=edges,
        )

    def _upstream(self, start: int, limit: int, nodes: list[Any], edges: list[Any]) -> None:
        """From version slot ``start``: producers, their inputs, their producers, ... to depth
        ``limit``; a version is walked from once, a producer's inputs are emitted once."""
        version_nodes, producers, produced = self._version_nodes, self._producers, self._produced
        step_nodes, inputs = self._step_nodes, self._inputs
        add_node, add_edge = nodes.append, edges.append
        seen, walked = bytearray(len(version_nodes)), bytearray(len(step_nodes))
        seen[start] = 1
        frontier, depth = [start], 0
        while frontier and depth < limit:
            depth += 1
            reached: list[int] = []
            for version in frontier:
                producer = producers[version]
                if producer < 0 or (step_node := step_nodes[producer]) is None:
                    continue
                add_edge(produced[version])
                if walked[producer]:
                    continue
                walked[producer] = 1
                add_node(step_node)
                for _, read, edge in inputs[producer]:
                    if (read_node := version_nodes[read]) is None:
                        continue
                    add_edge(edge)
                    if not seen[read]:
                        seen[read] = 1
                        add_node(read_node)
                        reached.append(read)
            frontier = reached

    def _downstream(self, start: int, limit: int, nodes: list[Any], edges: list[Any]) -> None:
        """From version slot ``start``: its readers, their outputs, those versions' readers,
        ... to depth ``limit``; a version is walked from once, a reader's outputs emitted once."""
        version_nodes, readers = self._version_nodes, self._readers
        step_nodes, outputs = self._step_nodes, self._outputs
        add_node, add_edge = nodes.append, edges.append
        seen, walked = bytearray(len(version_nodes)), bytearray(len(step_nodes))
        seen[start] = 1
        frontier, depth = [start], 0
        while frontier and depth < limit:
            depth += 1
            reached: list[int] = []
            for version in frontier:
                for step, _, edge in readers[version]:
                    if (step_node := step_nodes[step]) is None:
                        continue
                    add_edge(edge)
                    if walked[step]:
                        continue
                    walked[step] = 1
                    add_node(step_node)
                    for _, made, output in outputs[step]:
                        if (made_node := version_nodes[made]) is None:
                            continue
                        add_edge(output)
                        if not seen[made]:
                            seen[made] = 1
                            add_node(made_node)
                            reached.append(made)
            frontier = reached


def _extend_new(into: list[msgspec.Raw], more: list[msgspec.Raw]) -> None:
    """Append the items of ``more`` that ``into`` does not hold (each node and edge is one
    object in the index, so identity tells them apart)."""
    held = set(map(id, into))
    into.extend(item for item in more if id(item) not in held)
