"""User-facing configuration objects for artifacts."""

from __future__ import annotations

import msgspec


class ArtifactConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How a step output is stored: its name (a template), version and tags.

    Use it as ``Annotated[T, ArtifactConfig(name="model_{date}")]``. ``version``
    is an explicit string version, allowed once per name; numbered versions
    are assigned automatically otherwise.
    """

    name: str | None = None
    version: str | int | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    is_model_artifact: bool = False
    artifact_type: str | None = None
