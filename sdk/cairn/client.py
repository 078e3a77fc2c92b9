"""``Client``: read runs, steps and artifact versions through the query API."""

from __future__ import annotations

import re
from typing import Any, TypeVar
from urllib.parse import quote

import msgspec

from .errors import ApiError, NotFoundError, ServiceUnavailableError, StackUnavailableError
from .models import ArtifactVersion, ErrorBody, PipelineRun

T = TypeVar("T")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class Client:
    """Reads what Cairn recorded. Sees this process's own runs at once (read-your-writes).

    ``transport`` swaps the HTTP transport (e.g. ``httpx.ASGITransport`` in tests).
    """

    def __init__(
        self,
        api_url: str | None = None,
        *,
        token: str | None = None,
        transport: Any = None,
        timeout: float = 15.0,
    ) -> None:
        import httpx

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
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.api_url, headers=headers, transport=transport, timeout=timeout
        )

    # -- runs ----------------------------------------------------------------

    def get_pipeline_run(self, name_or_id: str) -> PipelineRun:
        """A run by its name or id, with its steps, their inputs and outputs."""
        return self._get(f"/runs/{quote(name_or_id, safe='')}", PipelineRun)

    def list_pipeline_runs(
        self,
        pipeline_name: str | None = None,
        status: str | None = None,
        size: int = 50,
        offset: int = 0,
    ) -> list[PipelineRun]:
        """Runs, newest first."""
        params = {"pipeline_name": pipeline_name, "status": status, "limit": size, "offset": offset}
        return self._get("/runs", list[PipelineRun], params)

    # -- artifacts -------------------------------------------------------------

    def get_artifact_version(
        self, name_or_id: str, version: str | int | None = None
    ) -> ArtifactVersion:
        """A version of an artifact by name (the latest when ``version`` is None) or by id."""
        if version is None and _UUID.fullmatch(name_or_id):
            try:
                return self._get(f"/artifact-versions/{name_or_id}", ArtifactVersion)
            except NotFoundError:
                pass  # a name that looks like an id
        wanted = "latest" if version is None else str(version)
        # query parameters, not path segments: names and versions may hold slashes
        return self._get(
            "/artifact-versions", ArtifactVersion, {"name": name_or_id, "version": wanted}
        )

    def list_artifact_versions(self, name: str) -> list[ArtifactVersion]:
        """Every version of the artifact ``name``, oldest first."""
        return self._get(f"/artifacts/{quote(name, safe='')}/versions", list[ArtifactVersion])

    def list_artifacts(self) -> list[dict[str, Any]]:
        """Artifact names with their latest version and number of versions."""
        return self._get("/artifacts", list[dict[str, Any]])

    def load_artifact(self, name_or_id: str, version: str | int | None = None) -> Any:
        """The value of an artifact version (latest when ``version`` is None)."""
        return self.get_artifact_version(name_or_id, version).load()

    # -- plumbing --------------------------------------------------------------

    def _get(self, path: str, type_: type[T] | Any, params: dict[str, Any] | None = None) -> T:
        import httpx

        query = {k: v for k, v in (params or {}).items() if v is not None}
        from .tracking import last_published_seq  # lazy: keeps import cairn light

        seq = last_published_seq()
        if seq:
            query["min_seq"] = seq
        try:
            response = self._http.get(path, params=query)
        except httpx.TransportError as exc:
            raise StackUnavailableError(
                f"Cannot reach the Cairn query API at {self.api_url} ({exc}). "
                "Start the local stack with `cairn up`, or set CAIRN_API_URL."
            ) from None
        if response.status_code == 200:
            return msgspec.json.decode(response.content, type=type_)
        try:
            body = msgspec.json.decode(response.content, type=ErrorBody)
            message = body.message
        except msgspec.DecodeError:
            message = response.text[:500]
        if response.status_code == 404:
            raise NotFoundError(message)
        if response.status_code == 503:
            retry_after = response.headers.get("Retry-After", "")
            raise ServiceUnavailableError(
                f"The Cairn query API at {self.api_url} cannot answer {path} now: {message}",
                float(retry_after) if retry_after.isdigit() else None,
            )
        raise ApiError(f"{response.status_code} from {path}: {message}")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
