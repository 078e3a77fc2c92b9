"""The endpoints: runs, artifacts and artifact versions as ``cairn.models`` JSON.

Every endpoint accepts ``?min_seq=N`` (read-your-writes): it answers only once
the projector has committed stream sequence N, or 503 when it doesn't get
there within the app's ``min_seq_timeout``.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from cairn.models import ArtifactVersion, PipelineRun
from cairn_projections import queries
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .errors import BadRequestError, NotFoundError
from .state import ApiState

MAX_LIMIT = 1000
_MAX_LISTED = 10


class Health(msgspec.Struct, kw_only=True):
    status: str
    checkpoint: int


class ArtifactSummary(msgspec.Struct, kw_only=True):
    """One artifact name: how many versions it has and its latest."""

    name: str
    version_count: int
    latest_version: str
    latest: ArtifactVersion


_encoder = msgspec.json.Encoder()
Handler = Callable[[Request, ApiState], Awaitable[Any]]


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wraps a handler: honours ``min_seq``, then encodes what it returns as JSON."""

    async def endpoint(request: Request) -> Response:
        state: ApiState = request.app.state.cairn
        min_seq = _int_param(request, "min_seq", default=0, minimum=0)
        if min_seq:
            await state.watcher.wait_for(min_seq, state.min_seq_timeout)
        body = await handler(request, state)
        return Response(_encoder.encode(body), media_type="application/json")

    return endpoint


async def health(request: Request, state: ApiState) -> Health:
    return Health(status="ok", checkpoint=await state.watcher.current())


async def list_runs(request: Request, state: ApiState) -> list[PipelineRun]:
    status = request.query_params.get("status") or None
    if status is not None and status not in queries.RUN_STATUSES:
        raise BadRequestError(
            f"status must be one of {', '.join(queries.RUN_STATUSES)}; got {status!r}"
        )
    async with state.pool.acquire() as conn:
        runs = await queries.list_runs(
            conn,
            pipeline_name=request.query_params.get("pipeline_name") or None,
            status=status,
            limit=_int_param(request, "limit", default=50, minimum=1, maximum=MAX_LIMIT),
            offset=_int_param(request, "offset", default=0, minimum=0),
            include_steps=_bool_param(request, "include_steps", default=True),
        )
    return msgspec.convert(runs, list[PipelineRun])


async def get_run(request: Request, state: ApiState) -> PipelineRun:
    name_or_id = request.path_params["name_or_id"]
    async with state.pool.acquire() as conn:
        run = await queries.get_run(conn, name_or_id)
        if run is None:
            latest = await queries.list_runs(conn, limit=_MAX_LISTED, include_steps=False)
            known = (
                f"latest runs: {_listing(r['name'] for r in latest)}" if latest else "no runs yet"
            )
            raise NotFoundError(f"No pipeline run with name or id '{name_or_id}'; {known}")
    return msgspec.convert(run, PipelineRun)


async def list_artifacts(request: Request, state: ApiState) -> list[ArtifactSummary]:
    async with state.pool.acquire() as conn:
        rows = await queries.list_artifacts(
            conn,
            limit=_int_param(request, "limit", default=MAX_LIMIT, minimum=1, maximum=MAX_LIMIT),
            offset=_int_param(request, "offset", default=0, minimum=0),
        )
    for row in rows:
        row["latest_version"] = row["latest"]["version"]
    return msgspec.convert(rows, list[ArtifactSummary])


async def list_versions(request: Request, state: ApiState) -> list[ArtifactVersion]:
    name = request.path_params["name"]
    async with state.pool.acquire() as conn:
        versions = await queries.list_artifact_versions(
            conn,
            name,
            limit=_int_param(request, "limit", default=None, minimum=1),
            offset=_int_param(request, "offset", default=0, minimum=0),
        )
        if not versions and not await queries.get_latest_artifact_version(conn, name):
            raise NotFoundError(await _no_such_name(conn, name))
    return msgspec.convert(versions, list[ArtifactVersion])


async def get_version(request: Request, state: ApiState) -> ArtifactVersion:
    name, version = request.path_params["name"], request.path_params["version"]
    async with state.pool.acquire() as conn:
        if version == "latest":
            found = await queries.get_latest_artifact_version(conn, name)
        else:
            found = await queries.get_artifact_version_by_name(conn, name, version)
        if found is None:
            raise NotFoundError(await _no_such_version(conn, name, version))
    return msgspec.convert(found, ArtifactVersion)


async def get_version_by_id(request: Request, state: ApiState) -> ArtifactVersion:
    artifact_version_id = request.path_params["artifact_version_id"]
    async with state.pool.acquire() as conn:
        found = await queries.get_artifact_version(conn, artifact_version_id)
        if found is None:
            hint = ""
            if await queries.get_latest_artifact_version(conn, artifact_version_id):
                hint = (
                    f"; '{artifact_version_id}' is an artifact name: use "
                    f"/artifacts/{artifact_version_id}/versions/latest"
                )
            raise NotFoundError(f"No artifact version with id '{artifact_version_id}'{hint}")
    return msgspec.convert(found, ArtifactVersion)


ROUTES = [
    Route("/health", _endpoint(health)),
    Route("/runs", _endpoint(list_runs)),
    Route("/runs/{name_or_id:path}", _endpoint(get_run)),
    Route("/artifacts", _endpoint(list_artifacts)),
    Route("/artifacts/{name:path}/versions", _endpoint(list_versions)),
    Route("/artifacts/{name:path}/versions/{version}", _endpoint(get_version)),
    Route("/artifact-versions/{artifact_version_id}", _endpoint(get_version_by_id)),
]


async def _no_such_version(conn: Any, name: str, version: str) -> str:
    versions = await queries.list_artifact_versions(conn, name)
    if not versions:
        return await _no_such_name(conn, name)
    latest = await queries.get_latest_artifact_version(conn, name)
    assert latest is not None
    listed = _listing((v["version"] for v in versions), limit=20)
    return f"Artifact '{name}' has no version '{version}'; versions: {listed} (latest {latest['version']})"


async def _no_such_name(conn: Any, name: str) -> str:
    names = await queries.list_artifact_names(conn)
    if not names:
        return f"No artifact named '{name}'; there are no artifacts yet"
    similar = difflib.get_close_matches(name, names, n=_MAX_LISTED, cutoff=0.6)
    if similar:
        return f"No artifact named '{name}'; similar names: {_listing(similar)}"
    closest = difflib.get_close_matches(name, names, n=_MAX_LISTED, cutoff=0.0)
    return f"No artifact named '{name}'; artifact names (closest first): {_listing(closest)}"


def _listing(items: Any, limit: int = _MAX_LISTED) -> str:
    """Items joined for a message: at most ``limit``, saying how many were left out."""
    items = list(items)
    shown = ", ".join(str(i) for i in items[:limit])
    return f"{shown}, ... ({len(items) - limit} more)" if len(items) > limit else shown


def _int_param(
    request: Request,
    name: str,
    *,
    default: int | None,
    minimum: int,
    maximum: int | None = None,
) -> Any:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise BadRequestError(f"{name} must be an integer {bounds}; got {raw!r}")
    return value


def _bool_param(request: Request, name: str, *, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise BadRequestError(f"{name} must be true or false; got {raw!r}")
