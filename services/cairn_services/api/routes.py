"""The query API's endpoints: runs, steps and artifact versions as ``cairn.models`` JSON."""

from __future__ import annotations

import difflib
from typing import Any

import msgspec
from cairn.models import ArtifactVersion, ErrorBody, PipelineRun
from cairn_projections import queries
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_encoder = msgspec.json.Encoder()
_SHOWN = 10


class ApiProblem(Exception):
    """An error answered as an ErrorBody with this status."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def json_response(value: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(value), status_code=status, media_type="application/json")


def problem_response(problem: ApiProblem) -> Response:
    return json_response(ErrorBody(error=problem.error, message=problem.message), problem.status)


def _int_param(request: Request, name: str, default: int, low: int = 0, high: int = 10_000) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiProblem(400, "bad_request", f"Query parameter {name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ApiProblem(400, "bad_request", f"Query parameter {name}={value} must be in {low}..{high}")
    return value


async def _fresh(request: Request) -> None:
    """Wait (bounded) until the projector has what the caller last wrote (``?min_seq=``)."""
    wanted = _int_param(request, "min_seq", 0, high=2**63 - 1)
    if wanted == 0:
        return
    state = request.app.state
    if not await state.watch.wait_for(wanted, state.freshness_timeout):
        raise ApiProblem(
            503,
            "projector_behind",
            f"The projector has reached stream sequence {state.watch.checkpoint}, not {wanted} "
            f"yet, after {state.freshness_timeout:.0f}s; retry shortly or check the projector.",
        )


def _run(row: dict[str, Any]) -> PipelineRun:
    return msgspec.convert(row, PipelineRun)


def _version(row: dict[str, Any]) -> ArtifactVersion:
    return msgspec.convert(row, ArtifactVersion)


async def health(request: Request) -> Response:
    return json_response({"status": "ok", "checkpoint": request.app.state.watch.checkpoint})


async def list_runs(request: Request) -> Response:
    await _fresh(request)
    status = request.query_params.get("status")
    if status is not None and status not in queries.RUN_STATUSES:
        raise ApiProblem(400, "bad_request", f"status={status!r} is not one of {', '.join(queries.RUN_STATUSES)}")
    async with request.app.state.pool.acquire() as conn:
        rows = await queries.list_runs(
            conn,
            pipeline_name=request.query_params.get("pipeline_name"),
            status=status,
            limit=_int_param(request, "limit", 50, 1, 1000),
            offset=_int_param(request, "offset", 0),
        )
    return json_response([_run(row) for row in rows])


async def get_run(request: Request) -> Response:
    await _fresh(request)
    name_or_id = request.path_params["name_or_id"]
    async with request.app.state.pool.acquire() as conn:
        row = await queries.get_run(conn, name_or_id)
        if row is None:
            latest = await queries.list_runs(conn, limit=_SHOWN, include_steps=False)
            names = ", ".join(r["name"] for r in latest) or "none yet"
            raise ApiProblem(404, "not_found", f"No pipeline run with name or id '{name_or_id}'; latest runs: {names}")
    return json_response(_run(row))


async def list_artifacts(request: Request) -> Response:
    await _fresh(request)
    async with request.app.state.pool.acquire() as conn:
        rows = await queries.list_artifacts(
            conn, limit=_int_param(request, "limit", 1000, 1, 10_000), offset=_int_param(request, "offset", 0)
        )
    return json_response(
        [{"name": r["name"], "version_count": r["version_count"], "latest_version": r["latest"]["version"]} for r in rows]
    )


async def list_versions(request: Request) -> Response:
    await _fresh(request)
    name = request.path_params["name"]
    async with request.app.state.pool.acquire() as conn:
        rows = await queries.list_artifact_versions(conn, name)
        if not rows:
            raise ApiProblem(404, "not_found", await _no_such_name(conn, name))
    return json_response([_version(row) for row in rows])


async def get_version(request: Request) -> Response:
    await _fresh(request)
    name, version = request.path_params["name"], request.path_params["version"]
    async with request.app.state.pool.acquire() as conn:
        if version == "latest":
            row = await queries.get_latest_artifact_version(conn, name)
        else:
            row = await queries.get_artifact_version_by_name(conn, name, version)
        if row is None:
            raise ApiProblem(404, "not_found", await _no_such_version(conn, name, version))
    return json_response(_version(row))


async def get_version_by_id(request: Request) -> Response:
    await _fresh(request)
    artifact_version_id = request.path_params["artifact_version_id"]
    async with request.app.state.pool.acquire() as conn:
        row = await queries.get_artifact_version(conn, artifact_version_id)
    if row is None:
        raise ApiProblem(404, "not_found", f"No artifact version with id '{artifact_version_id}'")
    return json_response(_version(row))


async def _no_such_name(conn: Any, name: str) -> str:
    names = await queries.list_artifact_names(conn)
    close = difflib.get_close_matches(name, names, n=_SHOWN, cutoff=0.5)
    hint = f"similar names: {', '.join(close)}" if close else f"{len(names)} names exist (cairn artifact list)"
    return f"No artifact named '{name}'; {hint}"


async def _no_such_version(conn: Any, name: str, version: str) -> str:
    rows = await queries.list_artifact_versions(conn, name)
    if not rows:
        return await _no_such_name(conn, name)
    versions = [r["version"] for r in rows]
    latest = await queries.get_latest_artifact_version(conn, name)
    shown = ", ".join(versions[-_SHOWN:]) if len(versions) <= _SHOWN else "..., " + ", ".join(versions[-_SHOWN:])
    return f"Artifact '{name}' has no version '{version}'; versions: {shown} (latest {latest['version'] if latest else '?'})"


ROUTES = [
    Route("/health", health),
    Route("/runs", list_runs),
    Route("/runs/{name_or_id:path}", get_run),
    Route("/artifacts", list_artifacts),
    Route("/artifacts/{name:path}/versions", list_versions),
    Route("/artifacts/{name:path}/versions/{version}", get_version),
    Route("/artifact-versions/{artifact_version_id}", get_version_by_id),
]
