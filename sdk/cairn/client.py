"""``Client``: read pipelines, runs, artifacts and their versions through the query API.

The methods mirror ZenML's ``Client``: ``get_*`` take ``name_id_or_prefix`` (an id, a
name, or the start of an id, tried in that order) and raise :class:`.NotFoundError` or,
for an id prefix several ids share, :class:`.AmbiguousError` (both ``KeyError`` s, as in
ZenML). ``list_*`` take ZenML's ``size`` and ``page``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar, get_args
from urllib.parse import quote

import msgspec

from . import models as _models
from .errors import (
    AmbiguousError,
    ApiError,
    NotFoundError,
    ServiceUnavailableError,
    StackUnavailableError,
)
from .models import (
    Artifact,
    ArtifactSummary,
    ArtifactVersion,
    CacheEntry,
    CacheQuery,
    ErrorBody,
    LineageDirection,
    LineageGraph,
    PipelineRun,
    PipelineSummary,
    RecordedPipeline,
    StepRun,
)

if TYPE_CHECKING:
    from uuid import UUID

    import httpx

T = TypeVar("T")
#: What ``get_lineage(direction=...)`` takes.
LINEAGE_DIRECTIONS: tuple[str, ...] = get_args(LineageDirection)
#: The deepest lineage the query API walks to by number (deeper: depth=None, to the ends).
MAX_DEPTH = 2**63 - 1
#: The most rows the query API sends per request; longer lists are fetched page by page.
API_PAGE_LIMIT = 1000


class Client:
    """Reads what Cairn recorded. Sees this process's own runs at once (read-your-writes)
    when its API is the one of the stack this process tracks to.

    ``api_url`` defaults to ``CAIRN_API_URL``, else the local stack's API (started if
    none runs). ``transport`` replaces the HTTP transport of every request: any *sync*
    ``httpx.BaseTransport``, such as ``httpx.MockTransport`` or
    ``cairn_services.api.InProcessTransport`` (the query API app called in-process, as
    the tests do); ``api_url`` is then only the base of the request URLs. Async
    transports (``httpx.ASGITransport``) do not work: the Client is synchronous.

    Both are checked here, before anything is sent: an ``api_url`` that is not an
    ``http://`` or ``https://`` URL is a ValueError (a TypeError if it is not a str), a
    transport that is not a sync httpx transport a TypeError, each saying what to pass.
    """

    def __init__(
        self,
        api_url: str | None = None,
        *,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 15.0,
    ) -> None:
        import httpx

        from .settings import redact_url, unreachable_advice

        _check_transport(transport)  # both checked before a local stack may be started
        given = api_url is not None
        if given:
            _check_api_url(api_url, origin="given to Client()")
        elif configured := os.environ.get("CAIRN_API_URL"):
            _check_api_url(configured, origin="in CAIRN_API_URL")
        if api_url is None:
            from .settings import resolve_settings

            settings = resolve_settings()
            api_url, token = settings.api_url, token or settings.api_token
            if api_url is None:
                raise StackUnavailableError(
                    "No query API is configured; set CAIRN_API_URL (CAIRN_NATS_URL is set, "
                    "so the local stack's API is not used)."
                )
        self.api_url = api_url.rstrip("/")
        self._shown = shown = redact_url(self.api_url)  # for messages: no credentials
        self._unreachable: str  # what to say when the API cannot be reached; {error} is why
        if given:
            self._unreachable = (
                f"Cannot reach the Cairn query API at {shown}, given to Client() ({{error}}). "
                "Check that it runs there and that this machine can reach it."
            )
        else:
            whose = "Cairn" if os.environ.get("CAIRN_API_URL") else "local Cairn stack's"
            advice = unreachable_advice("CAIRN_API_URL", "query API")
            self._unreachable = (
                f"Cannot reach the {whose} query API at {shown} ({{error}}). {advice}"
            )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.api_url, headers=headers, transport=transport, timeout=timeout
        )

    # -- pipelines -------------------------------------------------------------

    def list_pipelines(self, *, size: int | None = None, page: int = 1) -> list[PipelineSummary]:
        """Pipelines by name, each with its run count and latest run; all of them by default,
        else page ``page`` (from 1) of ``size``.
        """
        return self._list("/pipelines", list[PipelineSummary], {}, size, page)

    def get_pipeline(
        self, name_id_or_prefix: str | UUID, *, hydrate: bool = True
    ) -> RecordedPipeline:
        """A pipeline by id, name or id prefix, with its 50 newest runs (as ZenML's ``runs``).

        ``hydrate`` is accepted for ZenML's sake: everything comes hydrated.
        """
        return self._get(f"/pipelines/{_path(name_id_or_prefix)}", RecordedPipeline)

    # -- runs ------------------------------------------------------------------

    def get_pipeline_run(
        self,
        name_id_or_prefix: str | UUID | None = None,
        *,
        name_or_id: str | None = None,
        hydrate: bool = True,
    ) -> PipelineRun:
        """A run by id, name (the newest of that name) or id prefix, with its steps, their
        inputs and outputs. ``name_or_id=`` is the older keyword for ``name_id_or_prefix``.
        """
        wanted = _one_of("get_pipeline_run", name_id_or_prefix, name_or_id)
        return self._get(f"/runs/{_path(wanted)}", PipelineRun)

    def list_pipeline_runs(
        self,
        pipeline_name: str | None = None,
        status: str | None = None,
        size: int = 50,
        offset: int = 0,
        *,
        page: int = 1,
        include_steps: bool = True,
    ) -> list[PipelineRun]:
        """Runs newest first: page ``page`` (from 1) of ``size`` runs, after skipping
        ``offset``. Any ``size`` works; the API is asked page by page.
        """
        params = {"pipeline_name": pipeline_name, "status": status}
        if not include_steps:
            params["include_steps"] = "false"
        return self._list("/runs", list[PipelineRun], params, size, page, offset)

    # -- artifacts -------------------------------------------------------------

    def get_artifact(self, name_id_or_prefix: str | UUID, *, hydrate: bool = True) -> Artifact:
        """An artifact by id, name or id prefix, with every version (``versions[version]``)."""
        return self._get(f"/artifacts/{_path(name_id_or_prefix)}", Artifact)

    def get_artifact_version(
        self,
        name_id_or_prefix: str | UUID | None = None,
        version: str | int | None = None,
        *,
        name_or_id: str | None = None,
        hydrate: bool = True,
    ) -> ArtifactVersion:
        """A version by id, by artifact name (``version``, the latest when None) or by id
        prefix. As in ZenML, ``version`` is ignored when an id or id prefix matched.
        ``name_or_id=`` is the older keyword for ``name_id_or_prefix``.
        """
        wanted = str(_one_of("get_artifact_version", name_id_or_prefix, name_or_id))
        params = {"name_id_or_prefix": wanted, "version": _version(version)}
        found: ArtifactVersion = self._get("/artifact-versions", ArtifactVersion, params)
        if version is not None and found.name != wanted:  # matched by its id or an id prefix
            import warnings

            warnings.warn(
                f"get_artifact_version({wanted!r}, version={version!r}): {wanted!r} is (the start "
                f"of) the id of version {found.version} of {found.name!r}, so version= was "
                "ignored, as ZenML ignores it; pass the artifact's name to choose a version.",
                UserWarning,
                stacklevel=2,
            )
        return found

    def list_artifact_versions(
        self,
        name: str | None = None,
        *,
        artifact: str | UUID | None = None,
        size: int | None = None,
        page: int = 1,
    ) -> list[ArtifactVersion]:
        """The versions of one artifact oldest first: every one by default, else page
        ``page`` (from 1) of ``size``. ``artifact=`` takes its name, id or id prefix.
        """
        if (name is None) == (artifact is None):
            raise TypeError(
                "list_artifact_versions() takes the artifact's name, or artifact= (its name, id "
                f"or id prefix), exactly one of them; got name={name!r}, artifact={artifact!r}"
            )
        if name is None:
            name = self.get_artifact(str(artifact)).name
        path = f"/artifacts/{quote(name, safe='')}/versions"
        return self._list(path, list[ArtifactVersion], {}, size, page)

    def list_artifacts(self, *, size: int | None = None, page: int = 1) -> list[ArtifactSummary]:
        """Artifact names with their id, latest version and number of versions; all of them
        by default, else page ``page`` (from 1) of ``size``.
        """
        return self._list("/artifacts", list[ArtifactSummary], {}, size, page)

    def load_artifact(self, name_id_or_prefix: str | UUID, version: str | int | None = None) -> Any:
        """The value of an artifact version (latest when ``version`` is None)."""
        return self.get_artifact_version(name_id_or_prefix, version).load()

    # -- step runs and lineage -------------------------------------------------

    def get_run_step(self, step_run_id: str | UUID, *, hydrate: bool = True) -> StepRun:
        """A step run by id (ZenML's name), with its inputs and outputs."""
        step_run_id = _id("get_run_step", step_run_id, version=False)
        return self._get(f"/step-runs/{_path(step_run_id)}", StepRun)

    def list_consumers(self, artifact_version_or_id: ArtifactVersion | str | UUID) -> list[StepRun]:
        """The step runs that read an artifact version (an argument, or loaded in the step),
        by start time; cached step runs too, as they were given it."""
        version_id = _id("list_consumers", artifact_version_or_id)
        return self._get(f"/artifact-versions/{_path(version_id)}/consumers", list[StepRun])

    def get_lineage(
        self,
        artifact_version_or_id: ArtifactVersion | str | UUID,
        direction: LineageDirection = "upstream",
        depth: int | None = None,
    ) -> LineageGraph:
        """The lineage of an artifact version: ``upstream``, what it was computed from (its
        producer, that step run's inputs, their producers, ...); ``downstream``, what was
        computed from it (the step runs that read it, their outputs, ...); or ``both``.

        ``depth`` counts artifact-version hops (1: the producer and its inputs, or the
        readers and their outputs); None follows the lineage to its ends. ValueError for
        any other direction or depth. A str that is no version's id is found as
        ``get_artifact_version`` finds it: an artifact's name (its latest version) or the
        start of a version's id.
        """
        version_id = _id("get_lineage", artifact_version_or_id)
        if not isinstance(direction, str) or direction not in LINEAGE_DIRECTIONS:
            raise ValueError(
                f"get_lineage() takes direction='upstream', 'downstream' or 'both'; "
                f"got {_described(direction)}"
            )
        if depth is not None and (type(depth) is not int or not 1 <= depth <= MAX_DEPTH):
            raise ValueError(
                "get_lineage() takes depth=None (to the ends) or a whole number of artifact "
                f"version hops from 1 to {MAX_DEPTH}; got {_described(depth)}"
            )
        params = {"direction": direction, "depth": depth}
        try:
            return self._get(
                f"/artifact-versions/{_path(version_id)}/lineage", LineageGraph, params
            )
        except NotFoundError as no_id:
            if not isinstance(artifact_version_or_id, str) or _is_uuid(version_id):
                raise
            # a name (its latest version) or an id prefix, as get_artifact_version finds it
            try:
                version_id = self.get_artifact_version(version_id).id
            except NotFoundError as no_name:
                raise NotFoundError(f"{no_id.args[0]}; {no_name.args[0]}") from None
        return self._get(f"/artifact-versions/{_path(version_id)}/lineage", LineageGraph, params)

    # -- metadata --------------------------------------------------------------

    def get_metadata(self, entity: Any) -> _models.EntityMetadata:
        """The newest value of each metadata key of ``entity`` (an artifact version, step run,
        pipeline run or model version, as the Client returns them), and its cards."""
        kind, entity_id = _metadata_entity("get_metadata", entity)
        return self._get(f"/metadata/{kind}/{_path(entity_id)}", _models.EntityMetadata)

    def get_metadata_history(
        self, entity: Any, key: str | None = None
    ) -> list[_models.MetadataEntry]:
        """Every value logged for ``key`` of ``entity`` (every key when None), oldest first:
        each with when, by which host, process and user, and from which step run."""
        kind, entity_id = _metadata_entity("get_metadata_history", entity)
        if key is not None and not isinstance(key, str):
            raise TypeError(f"get_metadata_history() takes key= a str; got {_described(key)}")
        return self._get(
            f"/metadata/{kind}/{_path(entity_id)}/history",
            list[_models.MetadataEntry],
            {"key": key},
        )

    # -- cache -----------------------------------------------------------------

    def find_cache_entries(self, query: CacheQuery, *, min_seq: int = 0) -> list[CacheEntry]:
        """The newest cache entries of ``query``'s keys, lineage keys and steps (what a run
        asks before its steps run). Does not wait for this process's own events unless
        ``min_seq`` is given: the run keeps its own entries in memory."""
        return self._post("/cache/lookup", query, list[CacheEntry], min_seq=min_seq)

    # -- plumbing --------------------------------------------------------------

    def _list(
        self,
        path: str,
        type_: Any,
        params: dict[str, Any],
        size: int | None,
        page: int,
        offset: int = 0,
    ) -> list[Any]:
        """Page ``page`` of ``size`` rows (every row when ``size`` is None), fetched in
        requests of at most :data:`API_PAGE_LIMIT` rows.
        """
        if (size is not None and size < 1) or page < 1 or offset < 0:
            raise ValueError(
                f"size must be 1 or more (or None for all), page 1 or more and offset 0 or "
                f"more; got size={size!r}, page={page!r}, offset={offset!r}"
            )
        rows: list[Any] = []
        start = offset + (page - 1) * (size or 0)
        for limit, skip in _chunks(size, start):
            chunk = self._get(path, type_, {**params, "limit": limit, "offset": skip})
            rows.extend(chunk)
            if len(chunk) < limit:
                break
        return rows

    def _get(self, path: str, type_: type[T] | Any, params: dict[str, Any] | None = None) -> T:
        import httpx

        query = {k: v for k, v in (params or {}).items() if v is not None}
        from .own_writes import last_published_seq

        seq = last_published_seq(self.api_url)
        if seq:
            query["min_seq"] = seq
        try:
            response = self._http.get(path, params=query)
        except httpx.TransportError as exc:
            error = str(exc) or type(exc).__name__
            raise StackUnavailableError(self._unreachable.format(error=error)) from None
        answer: T = self._answer(path, response, type_)
        return answer

    def _post(self, path: str, body: Any, type_: type[T] | Any, *, min_seq: int = 0) -> T:
        """POST ``body`` (JSON) to ``path``; waits for ``min_seq`` only when it is given."""
        import httpx

        params = {"min_seq": min_seq} if min_seq else None
        try:
            response = self._http.post(
                path,
                content=msgspec.json.encode(body),
                params=params,
                headers={"Content-Type": "application/json"},
            )
        except httpx.TransportError as exc:
            error = str(exc) or type(exc).__name__
            raise StackUnavailableError(self._unreachable.format(error=error)) from None
        answer: T = self._answer(path, response, type_)
        return answer

    def _answer(self, path: str, response: httpx.Response, type_: type[T] | Any) -> Any:
        """The decoded body of a 200; the error the status stands for otherwise."""
        if response.status_code == 200:
            return msgspec.json.decode(response.content, type=type_)
        try:
            body = msgspec.json.decode(response.content, type=ErrorBody)
            message = body.message
        except msgspec.DecodeError:
            message = response.text[:500]
        if response.status_code == 404:
            raise NotFoundError(message)
        if response.status_code == 409:
            raise AmbiguousError(message)
        if response.status_code == 503:
            retry_after = response.headers.get("Retry-After", "")
            raise ServiceUnavailableError(
                f"The Cairn query API at {self._shown} cannot answer {path} now: {message}",
                float(retry_after) if retry_after.isdigit() else None,
            )
        raise ApiError(f"{response.status_code} from {path}: {message}")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _metadata_entity(method: str, entity: Any) -> tuple[str, str]:
    """The entity kind and id of something metadata is logged on."""
    kinds = {
        ArtifactVersion: "artifact_version",
        StepRun: "step_run",
        PipelineRun: "run",
    }
    for shape, kind in kinds.items():
        if isinstance(entity, shape):
            return kind, entity.id
    if type(entity).__name__ == "ModelVersion" and isinstance(getattr(entity, "id", None), str):
        return "model_version", entity.id
    raise TypeError(
        f"{method}() takes an artifact version, step run, pipeline run or model version as the "
        f"Client returns them; got {_described(entity)}"
    )


def _check_api_url(api_url: object, *, origin: str) -> None:
    """Refuse an ``api_url`` that is not an http(s) URL with a host, saying what to write.

    Without this, ``"127.0.0.1:8080"`` fails at the first request as an unreachable API
    ("check that it runs there"), which sends the user looking in the wrong place.
    """
    from urllib.parse import urlsplit

    from .settings import redact_url

    example = "such as 'http://127.0.0.1:8080'"
    if not isinstance(api_url, str):  # its value is not shown: a URL object may hold a password
        raise TypeError(
            f"The query API URL {origin} must be a str, {example}; got "
            f"{type(api_url).__name__}. Pass the URL as a str (str(url) for a URL object)."
        )
    if "://" not in api_url:
        fixed = redact_url(f"http://{api_url}")  # no credentials in messages
        raise ValueError(
            f"The query API URL {fixed.removeprefix('http://')!r} {origin} has no scheme; the "
            f"query API speaks HTTP: write {fixed!r} (or https://... behind TLS)."
        )
    shown = redact_url(api_url)
    parts = urlsplit(api_url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(
            f"The query API URL {shown!r} {origin} uses '{parts.scheme}://'; the query API "
            f"speaks HTTP: write http://host:port or https://host:port, {example}."
        )
    if not parts.hostname:
        raise ValueError(
            f"The query API URL {shown!r} {origin} names no host; write the host and port "
            f"the API listens on, {example}."
        )


def _check_transport(transport: object) -> None:
    """Refuse a ``transport`` the sync httpx client cannot send through, saying what works.

    httpx itself would only fail at the first request, with ``AttributeError: ... has no
    attribute 'handle_request'``.
    """
    import httpx

    if transport is None or isinstance(transport, httpx.BaseTransport):
        return
    in_process = (
        "for the query API app in this process use "
        "cairn_services.api.in_process.InProcessTransport(app, loop)"
    )
    if isinstance(transport, httpx.AsyncBaseTransport):
        why = (
            f"{type(transport).__name__} is an async transport, and the Client is synchronous "
            f"(it calls handle_request, which async transports do not have); {in_process}, "
            "which runs the app on its event loop"
        )
    elif callable(transport):
        name = getattr(transport, "__qualname__", type(transport).__name__)
        why = f"{name} is callable, an app rather than a transport; {in_process}"
    else:
        why = f"got {type(transport).__name__}; {in_process}, or httpx.MockTransport(handler)"
    raise TypeError(
        f"Client(transport=...) takes a sync httpx transport (an httpx.BaseTransport): {why}."
    )


def _chunks(size: int | None, start: int) -> Iterator[tuple[int, int]]:
    """``(limit, offset)`` requests covering ``size`` rows from ``start`` (None: no end)."""
    while size is None or size > 0:
        limit = API_PAGE_LIMIT if size is None else min(size, API_PAGE_LIMIT)
        yield limit, start
        start += limit
        if size is not None:
            size -= limit


def _one_of(method: str, name_id_or_prefix: str | UUID | None, name_or_id: str | None) -> str:
    """What ``method`` is to find: ``name_id_or_prefix`` (ZenML's keyword) or ``name_or_id``."""
    if (name_id_or_prefix is None) == (name_or_id is None):
        raise TypeError(
            f"{method}() takes one name or id, as name_id_or_prefix or as name_or_id= (its "
            f"older keyword); got name_id_or_prefix={name_id_or_prefix!r}, "
            f"name_or_id={name_or_id!r}"
        )
    return str(name_id_or_prefix if name_id_or_prefix is not None else name_or_id)


def _is_uuid(text: str) -> bool:
    from uuid import UUID

    try:
        UUID(text)
    except ValueError:
        return False
    return len(text) == 36


def _id(method: str, given: object, *, version: bool = True) -> str:
    """The id ``method`` was given, as a str or a UUID; with ``version``, an
    ArtifactVersion stands for its id."""
    from uuid import UUID

    if version and isinstance(given, ArtifactVersion):
        return given.id
    if isinstance(given, UUID):
        return str(given)
    takes = "an ArtifactVersion or an artifact version's id" if version else "a step run's id"
    if not isinstance(given, str):
        raise TypeError(f"{method}() takes {takes} (a str or UUID); got {_described(given)}")
    if not given.strip():
        raise ValueError(f"{method}() takes {takes}; got the empty id {_described(given)}")
    return given


def _described(value: object) -> str:
    """``value`` for a message: its repr, cut (a value may be huge); a huge int by its size
    (Python refuses to write one of more than 4300 digits)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an int of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:80]}... (a {type(value).__name__})"


def _path(name_id_or_prefix: str | UUID) -> str:
    # a path segment: quoted, slashes too (the API takes the rest of the path as the name)
    return quote(str(name_id_or_prefix), safe="")


def _version(version: str | int | None) -> str | None:
    return None if version is None else str(version)


# ArtifactVersion.producer / .consumers ask a default Client: models cannot import this module
_models.default_client = Client
