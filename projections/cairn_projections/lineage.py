"""Lineage: what an artifact version was computed from, and what was computed from it.

The graph has two kinds of nodes, artifact versions and step runs, and two kinds of
edges, each with the key the step knows it by:

- an *input* edge from a version to a step run that read it (``step_inputs``: its
  arguments, and what it loaded itself), keyed by the argument name;
- an *output* edge from a step run to a version, keyed by the step run's output key
  (``step_outputs``): upstream, from the version's producer
  (``artifact_versions.producer_step_run_id``); downstream, to each of the step run's
  outputs, which for a cached step run are the versions it reused (so a cached step run
  links to what it reused, not to copies).

**Upstream** of version V: V's producer step run, that step run's inputs, their
producers, and so on. **Downstream** of V: the step runs with an input edge to V (its
consumers), their outputs, those versions' consumers, and so on. A producer's other
outputs and a consumer's other inputs are not part of V's lineage and are left out.

**Depth** counts artifact-version hops from V: depth 1 upstream is V's producer and
that step run's inputs; depth 1 downstream is V's consumers and their outputs; each
further depth repeats that once from the versions the previous one reached. A version
is at the depth of its shortest way from V. ``None`` is any depth.

Each walk is one recursive query over *hops* (a step run with its edges on both sides
and the version it reaches), united as a set: a version reached along several ways is
walked from once, and a cycle (a step that loads what it saved) ends the walk instead
of looping. A walk to a given depth carries the depth in its rows, so a cycle could
repeat them up to that depth: beyond :data:`_SHALLOW` it is also bounded by the number
of versions the walk can reach at all (the shortest way to any of them is no longer).

Which step runs a walk goes through is decided in one place, :data:`COUNTED_STEP_RUNS`.

The API answers from :mod:`.lineage_index` (the same walks over the graph in memory); this
query is the reference it is tested against, and what answers when the graph is too large
to hold.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import msgspec
from cairn_events import StepStatus

from .connection import Queryable
from .read_model import record_to

# the step runs read model's own columns and edge loading, so a step run reads the same here
from .steps import STEP_COLUMNS, RecordedStep, attach_edges

#: The ways a lineage walk can go from its version.
Direction = Literal["upstream", "downstream", "both"]
DIRECTIONS: tuple[str, ...] = get_args(Direction)
#: A condition on the ``step_runs`` row ``s``: the step runs lineage walks through (and
#: counts as a version's consumers). Every one, for now; this is the one place to narrow
#: it (issue 13 hides the step runs of deleted runs here).
COUNTED_STEP_RUNS = "true"
#: Walks to at most this depth are bounded by it alone; deeper ones by what is reachable too.
_SHALLOW = 64


class LineageNode(msgspec.Struct, kw_only=True, gc=False):
    """An artifact version (``kind="artifact_version"``, with its ``version``) or a step
    run (``kind="step_run"``, with its pipeline run's id and name, its status and, for
    a cached step run, the step run whose outputs it reused)."""

    kind: Literal["artifact_version", "step_run"]
    id: str
    name: str
    version: str | None = None
    run_id: str | None = None
    run_name: str | None = None
    status: StepStatus | None = None
    original_step_run_id: str | None = None


class LineageEdge(msgspec.Struct, kw_only=True, gc=False):
    """``input``: version ``source`` was read by step run ``target`` as argument ``key``;
    ``output``: step run ``source`` stored (or, cached, reused) version ``target`` as its
    output ``key`` (empty while the step run's outputs are not recorded yet)."""

    kind: Literal["input", "output"]
    source: str
    target: str
    key: str


class LineageGraph(msgspec.Struct, kw_only=True):
    """The lineage of ``artifact_version_id`` in ``direction`` to ``depth`` (None: any):
    its nodes (that version first) and the edges between them."""

    artifact_version_id: str
    direction: Direction
    depth: int | None
    nodes: list[LineageNode]
    edges: list[LineageEdge]


# -- the walks ------------------------------------------------------------------------
#
# A hop's row: the step run (s), the input edge (input_version, input_key), the output
# edge (output_version, output_key), and the version the hop reaches (id, name, version;
# upstream also what the next hop needs of it: its producer). A hop reaching no version
# (a producer without inputs, a consumer without outputs) has them NULL, and so does one
# that comes back to the version it started from (a step that loads what it saved): its
# edges are kept, the walk does not go round again from there. ``{source}`` is the
# versions the hops start from, as ``f``: V itself, or the previous hops; ``{hop}`` the
# depth column when the walk has one.

_HOP_STEP_COLUMNS = (
    "s.id AS step_id, s.name AS step_name, s.run_id, s.status, s.original_step_run_id"
)

_UPSTREAM_HOP = f"""
SELECT {{hop}} {_HOP_STEP_COLUMNS},
       v.id AS input_version, i.key AS input_key,
       f.id AS output_version, NULL::text AS output_key,
       NULLIF(v.id, f.id) AS id, v.name, v.version,
       CASE WHEN v.id <> f.id THEN v.producer_step_run_id END AS producer
FROM {{source}}
JOIN step_runs s ON s.id = f.producer AND ({COUNTED_STEP_RUNS})
LEFT JOIN (step_inputs i JOIN artifact_versions v ON v.id = i.artifact_version_id)
       ON i.step_run_id = s.id
"""

_DOWNSTREAM_HOP = f"""
SELECT {{hop}} {_HOP_STEP_COLUMNS},
       f.id AS input_version, i.key AS input_key,
       v.id AS output_version, o.key AS output_key,
       NULLIF(v.id, f.id) AS id, v.name, v.version, NULL::text AS producer
FROM {{source}}
JOIN step_inputs i ON i.artifact_version_id = f.id
JOIN step_runs s ON s.id = i.step_run_id AND ({COUNTED_STEP_RUNS})
LEFT JOIN (step_outputs o JOIN artifact_versions v ON v.id = o.artifact_version_id)
       ON o.step_run_id = s.id
"""

#: The version the walk starts from, as the first hops' source.
_START = "(SELECT id, producer_step_run_id AS producer FROM artifact_versions WHERE id = $1) f"

# Every version the walk can reach, ids only: what bounds a deep walk's depth.
_REACHABLE = {
    "upstream": """reachable(id) AS (
    SELECT $1::text
  UNION
    SELECT i.artifact_version_id FROM reachable r
    JOIN artifact_versions av ON av.id = r.id
    JOIN step_inputs i ON i.step_run_id = av.producer_step_run_id
)""",
    "downstream": """reachable(id) AS (
    SELECT $1::text
  UNION
    SELECT o.artifact_version_id FROM reachable r
    JOIN step_inputs i ON i.artifact_version_id = r.id
    JOIN step_outputs o ON o.step_run_id = i.step_run_id
)""",
}


#: Each hop as :meth:`_Graph.add_hops` takes it, with its run's name. Upstream, the output
#: edge's key is looked up only here, out of the walk: its version's key among its
#: producer's outputs (empty while that step run's outputs are not recorded yet).
_HOP_SELECT = """
SELECT h.step_id, h.step_name, h.run_id, h.status, h.original_step_run_id,
       h.input_version, h.input_key, h.output_version,
       COALESCE(h.output_key, (SELECT min(o.key) FROM step_outputs o
                               WHERE o.artifact_version_id = h.output_version
                                 AND o.step_run_id = h.step_id), ''),
       h.id, h.name, h.version, COALESCE(r.name, h.run_id)
FROM hops h LEFT JOIN pipeline_runs r ON r.id = h.run_id
"""


def walk_sql(direction: Literal["upstream", "downstream"], depth: int | None) -> str:
    """The query of the hops from version ``$1`` in ``direction`` (to depth ``$2`` if
    ``depth`` is given), as :data:`_HOP_SELECT`."""
    hop_sql = _UPSTREAM_HOP if direction == "upstream" else _DOWNSTREAM_HOP
    first = then = bound = reachable = ""
    if depth is not None:
        first, then, bound = "1 AS depth,", "f.depth + 1,", "WHERE f.depth < $2::bigint"
        if depth > _SHALLOW:
            bound = "WHERE f.depth < LEAST($2::bigint, (SELECT count(*) FROM reachable))"
            reachable = _REACHABLE[direction] + ",\n"
    return f"""
WITH RECURSIVE {reachable}hops AS (
{hop_sql.format(hop=first, source=_START)}
  UNION
{hop_sql.format(hop=then, source="hops f")}
{bound}
)
{_HOP_SELECT}"""


_START_SQL = "SELECT id, name, version FROM artifact_versions WHERE id = $1"
_WALKS: dict[str, tuple[Literal["upstream", "downstream"], ...]] = {
    "upstream": ("upstream",),
    "downstream": ("downstream",),
    "both": ("upstream", "downstream"),
}
_STATUSES = {status.value: status for status in StepStatus}


def step_run_node(
    step_run_id: str,
    name: str,
    run_id: str,
    run_name: str | None,
    status: str,
    original_step_run_id: str | None,
) -> LineageNode:
    """The node of a step run, from its row's columns (the query's and the index's)."""
    return LineageNode(
        kind="step_run",
        id=step_run_id,
        name=name,
        run_id=run_id,
        run_name=run_name,
        status=_STATUSES[status],
        original_step_run_id=original_step_run_id,
    )


async def get_lineage(
    conn: Queryable,
    artifact_version_id: str,
    *,
    direction: Direction = "upstream",
    depth: int | None = None,
) -> LineageGraph | None:
    """The lineage of ``artifact_version_id`` (see the module docstring); None if there is
    no such version. ValueError for a ``direction`` or ``depth`` that is not one (callers
    check what users give first, saying it their way)."""
    if direction not in _WALKS or (depth is not None and depth < 1):
        raise ValueError(f"no lineage walk goes {direction!r} to depth {depth!r}")
    start = await conn.fetchrow(_START_SQL, artifact_version_id)
    if start is None:
        return None
    graph = _Graph(LineageNode(kind="artifact_version", **start))
    args = (artifact_version_id,) if depth is None else (artifact_version_id, depth)
    for walk in _WALKS[direction]:
        graph.add_hops(await conn.fetch(walk_sql(walk, depth), *args))
    return LineageGraph(
        artifact_version_id=artifact_version_id,
        direction=direction,
        depth=depth,
        nodes=list(graph.nodes.values()),
        edges=graph.edges,
    )


class _Graph:
    """Nodes by id, and edges each once, as hop rows add them."""

    def __init__(self, start: LineageNode) -> None:
        self.nodes: dict[str, LineageNode] = {start.id: start}
        self.edges: list[LineageEdge] = []
        self._edge_keys: set[tuple[str, str, str]] = set()

    def add_hops(self, rows: list[Any]) -> None:
        nodes, edges, seen = self.nodes, self.edges, self._edge_keys
        for row in rows:
            (step_id, step_name, run_id, status, original, input_version, input_key,
             output_version, output_key, version_id, name, version, run_name) = row  # fmt: skip
            if step_id not in nodes:
                nodes[step_id] = step_run_node(
                    step_id, step_name, run_id, run_name, status, original
                )
            if version_id is not None and version_id not in nodes:
                nodes[version_id] = LineageNode(
                    kind="artifact_version", id=version_id, name=name, version=version
                )
            if (
                input_version is not None
                and (edge := (input_version, step_id, input_key)) not in seen
            ):
                seen.add(edge)
                edges.append(
                    LineageEdge(kind="input", source=input_version, target=step_id, key=input_key)
                )
            if (
                output_version is not None
                and (edge := (step_id, output_version, output_key)) not in seen
            ):
                seen.add(edge)
                edges.append(
                    LineageEdge(
                        kind="output", source=step_id, target=output_version, key=output_key
                    )
                )


# -- the step runs next to a version ----------------------------------------------------


async def get_step_run(conn: Queryable, step_run_id: str) -> RecordedStep | None:
    """The step run with this id, with its inputs and outputs; or None."""
    rows = await conn.fetch(f"SELECT {STEP_COLUMNS} FROM step_runs WHERE id = $1", step_run_id)
    found = await _with_edges(conn, rows)
    return found[0] if found else None


async def consumers_of(conn: Queryable, artifact_version_id: str) -> list[RecordedStep]:
    """The step runs with an input edge to ``artifact_version_id`` (it was an argument, or
    they loaded it), by start time, with their inputs and outputs."""
    rows = await conn.fetch(
        f"SELECT {STEP_COLUMNS} FROM step_runs s WHERE ({COUNTED_STEP_RUNS}) AND s.id IN "
        "(SELECT step_run_id FROM step_inputs WHERE artifact_version_id = $1) "
        "ORDER BY s.started_at NULLS LAST, s.id",
        artifact_version_id,
    )
    return await _with_edges(conn, rows)


async def _with_edges(conn: Queryable, rows: list[Any]) -> list[RecordedStep]:
    steps = [record_to(RecordedStep, row) for row in rows]
    await attach_edges(conn, {step.id: step for step in steps})
    return steps
