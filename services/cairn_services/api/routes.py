"""The endpoints: pipelines, runs, artifacts and artifact versions as ``cairn.models`` JSON.

What a request names (``name_or_id`` of a run, ``name_id_or_prefix`` of the rest) is
found in ZenML's order, id, then name, then id prefix (see :mod:`.lookup`): an id
prefix several ids share is a 409 listing them.

Every endpoint accepts ``?min_seq=N`` (read-your-writes): it answers only once
the projector has committed stream sequence N, or 503 when it doesn't get
there within the app's ``min_seq_timeout``.

Limits a client may rely on (anything outside them is a 400 saying which):
``limit`` is 1 to :data:`MAX_LIMIT`; ``offset`` and ``min_seq`` are 0 to
:data:`MAX_POSITION` (a Postgres bigint); integers are ASCII decimal digits
only; names, versions and ids are at most ``MAX_LABEL_BYTES`` (255) bytes of
UTF-8 with no control characters; the query string is at most
:data:`MAX_QUERY_BYTES` bytes (414 beyond).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import msgspec
from cairn.models import (
    Artifact,
    ArtifactSummary,
    ArtifactVersion,
    CacheEntry,
    CacheQuery,
    EntityMetadata,
    Health,
    LineageGraph,
    MetadataEntry,
    PipelineRun,
    PipelineSummary,
    RecordedPipeline,
    StepRun,
    metadata_cards,
)
from cairn.naming import shown
from cairn_events import MAX_LABEL_BYTES, EntityKind, RunStatus, label_problem
from cairn_projections import artifact_versions, cache_entries, lineage, runs
from cairn_projections.lineage_index import EncodedLineage
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import lookup, metadata
from .errors import BadRequestError, NotFoundError, UriTooLongError
from .state import ApiState

#: The most rows one request may ask for (``limit``).
MAX_LIMIT = 1000
#: The largest ``offset`` or ``min_seq``: Postgres bigint, which a stream sequence also fits.
MAX_POSITION = 2**63 - 1
#: The longest query string: room for every parameter at its longest, percent-encoded.
MAX_QUERY_BYTES = 4096
# int() would also take ' 12', '1_000' and other scripts' digits such as '١٢'; more than 30
# digits is out of range anyway, and int() refuses (ValueError) beyond 4300.
_DECIMAL = re.compile(r"-?[0-9]{1,30}")


_encoder = msgspec.json.Encoder()
Handler = Callable[[Request, ApiState], Awaitable[Any]]
T = TypeVar("T")
_RUN_STATUSES = frozenset(status.value for status in RunStatus)


def _as(type_: type[T] | Any, found: Any) -> T:
    """A query's result (a read model's Struct) as the ``cairn.models`` shape, by field name."""
    return msgspec.convert(found, type_, from_attributes=True)


def _endpoint(
    handler: Handler, *, with_metadata: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """Wraps a handler: honours ``min_seq``, then encodes what it returns as JSON, with
    the ``run_metadata`` of the runs, step runs and versions in it ``with_metadata``."""

    async def endpoint(request: Request) -> Response:
        state: ApiState = request.app.state.cairn
        if (size := len(request.scope["query_string"])) > MAX_QUERY_BYTES:
            raise UriTooLongError(
                f"The query string is {size} bytes long; the limit is {MAX_QUERY_BYTES} bytes. "
                f"Send only the parameters this endpoint takes."
            )
        min_seq = _int_param(request, "min_seq", default=0, minimum=0, maximum=MAX_POSITION)
        if min_seq:
            await state.watcher.wait_for(min_seq, state.min_seq_timeout)
        body = await handler(request, state)
        if with_metadata:
            async with state.read_models.connection() as conn:
                await metadata.attach(conn, body)
        return Response(_encoder.encode(body), media_type="application/json")

    return endpoint


async def health(request: Request, state: ApiState) -> Health:
    return Health(status="ok", checkpoint=await state.watcher.current())


async def list_runs(request: Request, state: ApiState) -> list[PipelineRun]:
    status = request.query_params.get("status") or None
    if status is not None and status not in _RUN_STATUSES:
        raise BadRequestError(f"status must be one of {', '.join(RunStatus)}; got {shown(status)}")
    pipeline_name = request.query_params.get("pipeline_name") or None
    if pipeline_name is not None:
        _check_label("pipeline_name", pipeline_name)
    limit = _int_param(request, "limit", default=50, minimum=1, maximum=MAX_LIMIT)
    offset = _int_param(request, "offset", default=0, minimum=0, maximum=MAX_POSITION)
    include_steps = _bool_param(request, "include_steps", default=True)
    async with state.read_models.connection() as conn:
        found = await runs.list_runs(
            conn,
            pipeline_name=pipeline_name,
            status=status,
            limit=limit,
            offset=offset,
            include_steps=include_steps,
        )
    return _as(list[PipelineRun], found)


async def get_run(request: Request, state: ApiState) -> PipelineRun:
    name_or_id = _check_label("Run name or id", request.path_params["name_or_id"])
    async with state.read_models.connection() as conn:
        run = await lookup.find_run(conn, name_or_id)
    return _as(PipelineRun, run)


async def list_pipelines(request: Request, state: ApiState) -> list[PipelineSummary]:
    limit = _int_param(request, "limit", default=MAX_LIMIT, minimum=1, maximum=MAX_LIMIT)
    offset = _int_param(request, "offset", default=0, minimum=0, maximum=MAX_POSITION)
    async with state.read_models.connection() as conn:
        pipelines = await runs.list_pipelines(conn, limit=limit, offset=offset)
    return _as(list[PipelineSummary], pipelines)


async def get_pipeline(request: Request, state: ApiState) -> RecordedPipeline:
    text = _check_label("Pipeline name or id", request.path_params["name_id_or_prefix"])
    async with state.read_models.connection() as conn:
        pipeline = await lookup.find_pipeline(conn, text)
    return _as(RecordedPipeline, pipeline)


async def get_artifact(request: Request, state: ApiState) -> Artifact:
    text = _check_label("Artifact name or id", request.path_params["name_id_or_prefix"])
    async with state.read_models.connection() as conn:
        artifact = await lookup.find_artifact(conn, text)
    return _as(Artifact, artifact)


async def list_artifacts(request: Request, state: ApiState) -> list[ArtifactSummary]:
    limit = _int_param(request, "limit", default=MAX_LIMIT, minimum=1, maximum=MAX_LIMIT)
    offset = _int_param(request, "offset", default=0, minimum=0, maximum=MAX_POSITION)
    async with state.read_models.connection() as conn:
        summaries = await artifact_versions.list_artifacts(conn, limit=limit, offset=offset)
    return _as(list[ArtifactSummary], summaries)


async def list_versions(request: Request, state: ApiState) -> list[ArtifactVersion]:
    name = _check_label("Artifact name", request.path_params["name"])
    limit = _int_param(request, "limit", default=MAX_LIMIT, minimum=1, maximum=MAX_LIMIT)
    offset = _int_param(request, "offset", default=0, minimum=0, maximum=MAX_POSITION)
    async with state.read_models.connection() as conn:
        versions = await artifact_versions.list_artifact_versions(
            conn, name, limit=limit, offset=offset
        )
        if not versions and not await artifact_versions.get_latest_artifact_version(conn, name):
            raise NotFoundError(await lookup.no_such_name(conn, name))
    return _as(list[ArtifactVersion], versions)


async def get_version(request: Request, state: ApiState) -> ArtifactVersion:
    return await _version_named(state, request.path_params["name"], request.path_params["version"])


async def find_version(request: Request, state: ApiState) -> ArtifactVersion:
    """``?name=N&version=V`` (latest by default): for names and versions holding slashes.

    ``?name_id_or_prefix=X[&version=V]`` instead finds X as an id, then a name, then an id
    prefix (ZenML's ``get_artifact_version``).
    """
    version = request.query_params.get("version") or None
    text = request.query_params.get("name_id_or_prefix")
    if text is not None:
        text = _check_label("Artifact name, version id or id prefix", text)
        if version is not None:
            version = _check_label("Version", version)
        async with state.read_models.connection() as conn:
            found = await lookup.find_artifact_version(conn, text, version)
        return _as(ArtifactVersion, found)
    name = request.query_params.get("name")
    if name is None:
        raise BadRequestError(
            "name or name_id_or_prefix is required: /artifact-versions?name=NAME"
            "[&version=VERSION], or ?name_id_or_prefix=NAME_ID_OR_PREFIX[&version=VERSION]"
        )
    return await _version_named(state, name, version or "latest")


async def _version_named(state: ApiState, name: str, version: str) -> ArtifactVersion:
    name = _check_label("Artifact name", name)
    version = _check_label("Version", version)
    async with state.read_models.connection() as conn:
        found = await lookup.version_named(conn, name, version)
        if found is None:
            raise NotFoundError(await lookup.no_such_version(conn, name, version))
    return _as(ArtifactVersion, found)


async def get_version_by_id(request: Request, state: ApiState) -> ArtifactVersion:
    artifact_version_id = _check_label(
        "Artifact version id", request.path_params["artifact_version_id"]
    )
    async with state.read_models.connection() as conn:
        found = await artifact_versions.get_artifact_version(conn, artifact_version_id)
        if found is None:
            raise NotFoundError(await _no_version_with_id(conn, artifact_version_id))
    return _as(ArtifactVersion, found)


async def _no_version_with_id(conn: Any, artifact_version_id: str) -> str:
    """That no version has this id; and how to find one if it is an artifact's name."""
    hint = ""
    if await artifact_versions.get_latest_artifact_version(conn, artifact_version_id):
        hint = (
            f"; '{artifact_version_id}' is an artifact name: pass the name to "
            f"Client().get_artifact_version() (over HTTP: "
            f"/artifacts/{artifact_version_id}/versions/latest) for its latest version's id"
        )
    return f"No artifact version with id '{artifact_version_id}'{hint}"


async def get_lineage(request: Request, state: ApiState) -> LineageGraph | EncodedLineage:
    """``?direction=upstream|downstream|both`` (upstream by default) ``&depth=N`` (artifact
    version hops; any depth by default): see ``cairn_projections.lineage``. Answered from
    the API's lineage index (brought up to date first), or by the query when the graph is
    too large to hold (``cairn_projections.lineage_index``)."""
    artifact_version_id = _check_label(
        "Artifact version id", request.path_params["artifact_version_id"]
    )
    direction = request.query_params.get("direction") or "upstream"
    if direction not in lineage.DIRECTIONS:
        raise BadRequestError(
            f"direction must be one of {', '.join(lineage.DIRECTIONS)}; got {shown(direction)}"
        )
    # 0 stands for "not given" here: the minimum refuses depth=0
    depth = _int_param(request, "depth", default=0, minimum=1, maximum=MAX_POSITION) or None
    walk = cast(lineage.Direction, direction)  # one of DIRECTIONS: checked above
    async with state.read_models.connection() as conn:
        if await state.lineage.refresh(conn):
            found: EncodedLineage | LineageGraph | None = state.lineage.lineage(
                artifact_version_id, direction=walk, depth=depth
            )
        else:
            graph = await lineage.get_lineage(
                conn, artifact_version_id, direction=walk, depth=depth
            )
            found = None if graph is None else _as(LineageGraph, graph)
        if found is None:
            raise NotFoundError(await _no_version_with_id(conn, artifact_version_id))
    return found


async def list_consumers(request: Request, state: ApiState) -> list[StepRun]:
    """The step runs that read the version (its arguments, or loaded), by start time."""
    artifact_version_id = _check_label(
        "Artifact version id", request.path_params["artifact_version_id"]
    )
    async with state.read_models.connection() as conn:
        consumers = await lineage.consumers_of(conn, artifact_version_id)
        if not consumers and not await artifact_versions.get_artifact_version(
            conn, artifact_version_id
        ):
            raise NotFoundError(await _no_version_with_id(conn, artifact_version_id))
    return _as(list[StepRun], consumers)


async def get_step_run(request: Request, state: ApiState) -> StepRun:
    step_run_id = _check_label("Step run id", request.path_params["step_run_id"])
    async with state.read_models.connection() as conn:
        found = await lineage.get_step_run(conn, step_run_id)
    if found is None:
        raise NotFoundError(
            f"No step run with id '{step_run_id}'; the step runs of a run, with their ids, "
            "are in Client().get_pipeline_run(run).steps (over HTTP: /runs/{run name or id})"
        )
    return _as(StepRun, found)


#: The most keys (and steps) one cache lookup may ask for; the largest body it may send.
MAX_CACHE_KEYS = 1000
MAX_BODY_BYTES = 1024 * 1024
_CACHE_KEY = re.compile(rf"[0-9A-Za-z_-]{{1,{cache_entries.MAX_KEY_LENGTH}}}")


async def lookup_cache(request: Request, state: ApiState) -> list[CacheEntry]:
    """POST ``/cache/lookup`` with a ``CacheQuery`` as JSON: the newest entries it names."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise BadRequestError(f"The body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}.")
    try:
        query = msgspec.json.decode(body, type=CacheQuery)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadRequestError(
            f'The body must be JSON like {{"keys": [...], "lineage_keys": [...], '
            f'"steps": [[pipeline, step], ...]}}: {exc}'
        ) from None
    for what, items in (
        ("keys", query.keys),
        ("lineage_keys", query.lineage_keys),
        ("steps", query.steps),
    ):
        if len(items) > MAX_CACHE_KEYS:
            raise BadRequestError(f"{what} has {len(items)} entries; at most {MAX_CACHE_KEYS}.")
    for key in [*query.keys, *query.lineage_keys]:
        if not _CACHE_KEY.fullmatch(key):
            raise BadRequestError(
                f"Cache key {shown(key)} is no cache key: 1 to {cache_entries.MAX_KEY_LENGTH} "
                "ASCII letters, digits, '-' or '_' (a key is a hex digest)."
            )
    for pipeline_name, step_name in query.steps:
        _check_label("Pipeline name", pipeline_name)
        _check_label("Step name", step_name)
    async with state.read_models.connection() as conn:
        found = await cache_entries.find_entries(
            conn,
            keys=query.keys,
            lineage_keys=query.lineage_keys,
            steps=query.steps,
            with_components=query.with_components,
        )
    return _as(list[CacheEntry], found)


def _entity(request: Request) -> tuple[EntityKind, str]:
    kind = request.path_params["entity_kind"]
    if kind not in _ENTITY_KINDS:
        raise BadRequestError(
            f"{shown(kind)} is no kind of entity with metadata; use one of "
            f"{', '.join(EntityKind)}: /metadata/artifact_version/<id>"
        )
    return EntityKind(kind), _check_label("Entity id", request.path_params["entity_id"])


async def get_metadata(request: Request, state: ApiState) -> EntityMetadata:
    """An entity's newest value of each key, and the same grouped into cards."""
    kind, entity_id = _entity(request)
    async with state.read_models.connection() as conn:
        found = await metadata.of_entity(conn, kind, entity_id)
    return EntityMetadata(
        entity_kind=kind, entity_id=entity_id, run_metadata=found, cards=metadata_cards(found)
    )


async def get_metadata_history(request: Request, state: ApiState) -> list[MetadataEntry]:
    """``?key=K``: every value logged for K (every key without it), oldest first."""
    kind, entity_id = _entity(request)
    key = request.query_params.get("key") or None
    if key is not None:
        _check_label("Metadata key", key)
    async with state.read_models.connection() as conn:
        return await metadata.history_of(conn, kind, entity_id, key)


_ENTITY_KINDS = frozenset(EntityKind)


ROUTES = [
    Route("/health", _endpoint(health)),
    Route("/runs", _endpoint(list_runs, with_metadata=True)),
    Route("/runs/{name_or_id:path}", _endpoint(get_run, with_metadata=True)),
    Route("/pipelines", _endpoint(list_pipelines)),
    Route("/pipelines/{name_id_or_prefix:path}", _endpoint(get_pipeline, with_metadata=True)),
    Route("/artifacts", _endpoint(list_artifacts, with_metadata=True)),
    Route("/artifacts/{name:path}/versions", _endpoint(list_versions, with_metadata=True)),
    Route("/artifacts/{name:path}/versions/{version}", _endpoint(get_version, with_metadata=True)),
    # after the two above, which a name ending in /versions[/V] reaches instead
    Route("/artifacts/{name_id_or_prefix:path}", _endpoint(get_artifact, with_metadata=True)),
    Route("/artifact-versions", _endpoint(find_version, with_metadata=True)),
    Route(
        "/artifact-versions/{artifact_version_id}", _endpoint(get_version_by_id, with_metadata=True)
    ),
    Route("/artifact-versions/{artifact_version_id}/lineage", _endpoint(get_lineage)),
    Route(
        "/artifact-versions/{artifact_version_id}/consumers",
        _endpoint(list_consumers, with_metadata=True),
    ),
    Route("/step-runs/{step_run_id}", _endpoint(get_step_run, with_metadata=True)),
    Route("/cache/lookup", _endpoint(lookup_cache), methods=["POST"]),
    Route("/metadata/{entity_kind}/{entity_id}", _endpoint(get_metadata)),
    Route("/metadata/{entity_kind}/{entity_id}/history", _endpoint(get_metadata_history)),
]


def _check_label(what: str, text: str) -> str:
    """``text`` if something could be stored under it; else BadRequestError saying why not."""
    problem = label_problem(text)
    if problem is not None:
        raise BadRequestError(
            f"{what} {shown(text)} {problem}, so nothing can match it. Names, versions and ids "
            f"have at most {MAX_LABEL_BYTES} bytes of UTF-8 and no control characters."
        )
    return text


def _int_param(request: Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = int(raw) if _DECIMAL.fullmatch(raw) else None
    if value is None or not minimum <= value <= maximum:
        raise BadRequestError(
            f"{name} must be a whole number from {minimum} to {maximum}, written in decimal "
            f"digits 0-9; got {shown(raw)}"
        )
    return value


def _bool_param(request: Request, name: str, *, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise BadRequestError(f"{name} must be true or false; got {shown(raw)}")
