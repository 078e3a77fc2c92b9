"""Read queries over the read models, returning plain dicts.

Every function takes a connection whose ``search_path`` selects the schema
(see :func:`.connection.server_settings`) and whose jsonb codec is set up by
:func:`.connection.init_connection`. Returned dicts use the field names of the
API's response shapes (``cairn.models``): an artifact version dict has ``id``,
``name``, ``version``, ``type``, ...; a run dict has ``config`` and ``steps``
(keyed by step name), each step ``inputs`` / ``outputs`` keyed by argument
name / output key (in the order the step declared them) and holding artifact
version dicts. Edges whose artifact
version is not projected yet are left out until it is.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from .connection import Queryable

RUN_STATUSES = ("running", "completed", "failed", "cached")

_AV_COLUMNS = (
    "id",
    "name",
    "version",
    "uri",
    "type",
    "data_type",
    "materializer",
    "content_hash",
    "size",
    "created_at",
    "tags",
    "producer_run_id",
    "producer_step_run_id",
    "output_name",
    "visualizations",
)
_AV_SELECT = ", ".join(f"av.{c}" for c in _AV_COLUMNS)
# the newest claim (as in ZenML); versions recorded before claim_order: the highest number
_LATEST_ORDER = (
    "av.claim_order DESC, av.numeric_version DESC NULLS LAST, av.created_at DESC, av.id DESC"
)
_RUN_SELECT = """
SELECT id, COALESCE(name, id) AS name, COALESCE(pipeline_name, '') AS pipeline_name, status,
       parameters, substitutions, enable_cache, started_at, finished_at, duration_s,
       error, failed_step
FROM pipeline_runs
"""
_NEWEST_RUNS = "started_at DESC NULLS LAST, id DESC"
_SUCCEEDED = "('completed', 'cached')"

#: The fewest hex digits an id prefix needs: shorter strings are names only.
MIN_ID_PREFIX = 4
_UUID_SHAPE = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
_HEX = re.compile(r"[0-9a-f]*")
# Artifacts and pipelines are names in the events; their ids are derived from the name, so a
# replay derives the same ones. These namespaces are fixed forever.
_ARTIFACT_IDS = uuid.UUID("c6a61954-12a0-4105-abd6-616c2f9fbb80")
_PIPELINE_IDS = uuid.UUID("fb3d5d84-be05-4e55-af57-b70cdf927dbb")


def artifact_id(name: str) -> str:
    """The id of the artifact ``name``: the same for every replay of the same events."""
    return str(uuid.uuid5(_ARTIFACT_IDS, name))


def pipeline_id(name: str) -> str:
    """The id of the pipeline ``name``: the same for every replay of the same events."""
    return str(uuid.uuid5(_PIPELINE_IDS, name))


def is_uuid(text: str) -> bool:
    """Whether ``text`` is a whole UUID in its usual 8-4-4-4-12 form (any case)."""
    return len(text) == len(_UUID_SHAPE) and id_prefix(text) is not None


def id_prefix(text: str) -> str | None:
    """``text`` lowercased if it can begin a UUID and has ``MIN_ID_PREFIX`` hex digits; else None.

    Dashes must stand where a UUID has them, as in ``str(uuid)``.
    """
    prefix = text.lower()
    if not MIN_ID_PREFIX <= len(prefix) <= len(_UUID_SHAPE):
        return None
    for char, shape in zip(prefix, _UUID_SHAPE, strict=False):
        if (char == "-") != (shape == "-"):
            return None
    return prefix if _HEX.fullmatch(prefix.replace("-", "")) else None


async def get_checkpoint(conn: Queryable, projector: str) -> int:
    """The last stream sequence ``projector`` committed, 0 if it has committed nothing."""
    seq = await conn.fetchval(
        "SELECT last_seq FROM projector_checkpoints WHERE name = $1", projector
    )
    return int(seq or 0)


async def get_run(conn: Queryable, name_or_id: str) -> dict[str, Any] | None:
    """The run with this id, else the newest run with this name, with its steps; or None."""
    row = await conn.fetchrow(
        f"{_RUN_SELECT} WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC, {_NEWEST_RUNS} LIMIT 1",
        name_or_id,
    )
    if row is None:
        return None
    runs = await _with_steps(conn, [_run_dict(row)])
    return runs[0]


async def list_runs(
    conn: Queryable,
    *,
    pipeline_name: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
    include_steps: bool = True,
) -> list[dict[str, Any]]:
    """Runs newest first (by start time), optionally of one pipeline and/or in one status."""
    conditions, args = [], []
    for column, value in (("pipeline_name", pipeline_name), ("status", status)):
        if value is not None:
            args.append(value)
            conditions.append(f"{column} = ${len(args)}")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    n = len(args)
    rows = await conn.fetch(
        f"{_RUN_SELECT} {where} ORDER BY {_NEWEST_RUNS} LIMIT ${n + 1} OFFSET ${n + 2}",
        *args,
        limit,
        offset,
    )
    runs = [_run_dict(row) for row in rows]
    return await _with_steps(conn, runs) if include_steps else runs


async def get_artifact_version(conn: Queryable, artifact_version_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_AV_SELECT} FROM artifact_versions av WHERE av.id = $1", artifact_version_id
    )
    return None if row is None else dict(row)


async def get_artifact_version_by_name(
    conn: Queryable, name: str, version: str
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_AV_SELECT} FROM artifact_versions av WHERE av.name = $1 AND av.version = $2",
        name,
        version,
    )
    return None if row is None else dict(row)


async def get_latest_artifact_version(conn: Queryable, name: str) -> dict[str, Any] | None:
    """The newest claimed version of ``name`` (as in ZenML); one index probe."""
    row = await conn.fetchrow(
        f"SELECT {_AV_SELECT} FROM artifact_versions av WHERE av.name = $1 "
        f"ORDER BY {_LATEST_ORDER} LIMIT 1",
        name,
    )
    return None if row is None else dict(row)


async def list_artifact_versions(
    conn: Queryable, name: str, *, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """The versions of ``name`` oldest first (empty if there is no such name)."""
    rows = await conn.fetch(
        f"SELECT {_AV_SELECT} FROM artifact_versions av WHERE av.name = $1 "
        "ORDER BY av.claim_order, av.created_at, av.id LIMIT $2 OFFSET $3",
        name,
        limit,
        offset,
    )
    return [dict(row) for row in rows]


async def list_artifact_names(conn: Queryable) -> list[str]:
    """Every artifact name, sorted."""
    rows = await conn.fetch("SELECT DISTINCT name FROM artifact_versions ORDER BY name")
    return [str(row["name"]) for row in rows]


async def list_artifacts(
    conn: Queryable, *, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """Artifact names sorted, each ``{"id", "name", "version_count", "latest": version dict}``."""
    rows = await conn.fetch(
        f"""
        SELECT n.version_count, {_AV_SELECT}
        FROM (SELECT name, count(*) AS version_count FROM artifact_versions
              GROUP BY name ORDER BY name LIMIT $1 OFFSET $2) n
        CROSS JOIN LATERAL (SELECT * FROM artifact_versions av WHERE av.name = n.name
                            ORDER BY {_LATEST_ORDER} LIMIT 1) av
        ORDER BY n.name
        """,
        limit,
        offset,
    )
    result = []
    for row in rows:
        latest = dict(row)
        count = latest.pop("version_count")
        name = latest["name"]
        result.append(
            {"id": artifact_id(name), "name": name, "version_count": int(count), "latest": latest}
        )
    return result


async def find_runs_by_id_prefix(
    conn: Queryable, prefix: str, *, limit: int = 10
) -> tuple[int, list[dict[str, Any]]]:
    """How many runs have an id starting with ``prefix``, and the first ``limit`` (id, name)."""
    return await _by_id_prefix(
        conn, "SELECT id, COALESCE(name, id) AS name", "pipeline_runs", prefix, limit
    )


async def find_artifact_versions_by_id_prefix(
    conn: Queryable, prefix: str, *, limit: int = 10
) -> tuple[int, list[dict[str, Any]]]:
    """How many versions have an id starting with ``prefix``; the first ``limit`` (id, name, version)."""
    return await _by_id_prefix(conn, "SELECT id, name, version", "artifact_versions", prefix, limit)


async def _by_id_prefix(
    conn: Queryable, select: str, table: str, prefix: str, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    if id_prefix(prefix) != prefix:
        raise ValueError(f"not an id prefix (see id_prefix): {prefix!r}")
    # LIKE 'p%' is a range scan of the primary key under the C collation (the local stack's).
    rows = await conn.fetch(
        f"{select}, count(*) OVER () AS total FROM {table} WHERE id LIKE $1 ORDER BY id LIMIT $2",
        prefix + "%",
        limit,
    )
    matches = [dict(row) for row in rows]
    total = int(matches[0]["total"]) if matches else 0
    for match in matches:
        del match["total"]
    return total, matches


async def get_artifact(conn: Queryable, name: str) -> dict[str, Any] | None:
    """The artifact ``name`` with every version (oldest first, keyed by version); or None."""
    versions = await list_artifact_versions(conn, name)
    if not versions:
        return None
    latest = await get_latest_artifact_version(conn, name)
    return {
        "id": artifact_id(name),
        "name": name,
        "version_count": len(versions),
        "versions": {v["version"]: v for v in versions},
        "latest": latest,
        "created_at": versions[0]["created_at"],
        "updated_at": max(v["created_at"] for v in versions),
    }


async def list_pipeline_names(conn: Queryable) -> list[str]:
    """Every pipeline name a run started under, sorted."""
    rows = await conn.fetch(
        "SELECT DISTINCT pipeline_name FROM pipeline_runs WHERE pipeline_name IS NOT NULL "
        "ORDER BY pipeline_name"
    )
    return [str(row["pipeline_name"]) for row in rows]


_PIPELINE_SELECT = f"""
SELECT p.pipeline_name AS name, p.run_count, p.created_at, p.updated_at,
       r.id AS latest_run_id, COALESCE(r.name, r.id) AS latest_run_name,
       r.status AS latest_run_status
FROM (SELECT pipeline_name, count(*) AS run_count, min(started_at) AS created_at,
             max(started_at) AS updated_at
      FROM pipeline_runs WHERE pipeline_name IS NOT NULL AND {{where}}
      GROUP BY pipeline_name ORDER BY pipeline_name LIMIT $1 OFFSET $2) p
CROSS JOIN LATERAL (SELECT id, name, status FROM pipeline_runs r
                    WHERE r.pipeline_name = p.pipeline_name
                    ORDER BY {_NEWEST_RUNS} LIMIT 1) r
ORDER BY p.pipeline_name
"""


async def list_pipelines(
    conn: Queryable, *, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """Pipelines by name: id, name, run_count, created_at / updated_at, latest_run_*."""
    rows = await conn.fetch(_PIPELINE_SELECT.format(where="true"), limit, offset)
    return [_pipeline_dict(row) for row in rows]


async def get_pipeline(conn: Queryable, name: str, *, runs: int = 50) -> dict[str, Any] | None:
    """The pipeline ``name`` with its newest ``runs`` runs (newest first, with their steps)
    and its last successful (completed or cached) run; or None if no run has started under it.
    """
    row = await conn.fetchrow(_PIPELINE_SELECT.format(where="pipeline_name = $3"), 1, 0, name)
    if row is None:
        return None
    pipeline = _pipeline_dict(row)
    pipeline["runs"] = await list_runs(conn, pipeline_name=name, limit=runs)
    succeeded = [r for r in pipeline["runs"] if r["status"] in ("completed", "cached")]
    if not succeeded and len(pipeline["runs"]) < pipeline["run_count"]:
        rows = await conn.fetch(
            f"{_RUN_SELECT} WHERE pipeline_name = $1 AND status IN {_SUCCEEDED} "
            f"ORDER BY {_NEWEST_RUNS} LIMIT 1",
            name,
        )
        succeeded = await _with_steps(conn, [_run_dict(r) for r in rows])
    pipeline["last_successful_run"] = succeeded[0] if succeeded else None
    return pipeline


def _pipeline_dict(row: Any) -> dict[str, Any]:
    pipeline = dict(row)
    pipeline["id"] = pipeline_id(pipeline["name"])
    pipeline["run_count"] = int(pipeline["run_count"])
    return pipeline


async def list_dead_letters(conn: Queryable, projector: str) -> list[dict[str, Any]]:
    """What ``projector`` could not project, by stream sequence: seq, subject, data, reason, at."""
    rows = await conn.fetch(
        "SELECT seq, subject, data, reason, at FROM dead_letters WHERE projector = $1 ORDER BY seq",
        projector,
    )
    return [dict(row) for row in rows]


def _run_dict(row: Any) -> dict[str, Any]:
    run = dict(row)
    run["config"] = {
        "parameters": run.pop("parameters"),
        "substitutions": run.pop("substitutions"),
        "enable_cache": run.pop("enable_cache"),
    }
    run["steps"] = {}
    return run


async def _with_steps(conn: Queryable, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill each run's ``steps`` with its step runs and their lineage (two queries in all)."""
    if not runs:
        return runs
    by_id = {run["id"]: run for run in runs}
    step_rows = await conn.fetch(
        """
        SELECT id, run_id, name, status, function, parameters, substitutions, enable_cache,
               started_at, finished_at, duration_s, error_type, error_message
        FROM step_runs WHERE run_id = ANY($1::text[])
        ORDER BY started_at NULLS LAST, id
        """,
        list(by_id),
    )
    steps: dict[str, dict[str, Any]] = {}
    for row in step_rows:
        step = _step_dict(row)
        steps[step["id"]] = step
        by_id[step["run_id"]]["steps"][step["name"]] = step
    await _attach_edges(conn, steps)
    return runs


def _step_dict(row: Any) -> dict[str, Any]:
    step = dict(row)
    error_type, error_message = step.pop("error_type"), step.pop("error_message")
    step["error"] = f"{error_type}: {error_message}" if error_type else None
    step["config"] = {
        "parameters": step.pop("parameters"),
        "substitutions": step.pop("substitutions"),
        "enable_cache": step.pop("enable_cache"),
    }
    step["inputs"], step["outputs"] = {}, {}
    return step


async def _attach_edges(conn: Queryable, steps: dict[str, dict[str, Any]]) -> None:
    if not steps:
        return
    rows = await conn.fetch(
        f"""
        SELECT e.side, e.step_run_id, e.key, {_AV_SELECT}
        FROM (SELECT 'inputs' AS side, step_run_id, key, artifact_version_id, position
                FROM step_inputs WHERE step_run_id = ANY($1::text[])
              UNION ALL
              SELECT 'outputs', step_run_id, key, artifact_version_id, position
                FROM step_outputs WHERE step_run_id = ANY($1::text[])) e
        JOIN artifact_versions av ON av.id = e.artifact_version_id
        ORDER BY e.side, e.step_run_id, e.position, e.key
        """,
        list(steps),
    )
    for row in rows:
        version = dict(row)
        side, step_run_id, key = version.pop("side"), version.pop("step_run_id"), version.pop("key")
        steps[step_run_id][side][key] = version
