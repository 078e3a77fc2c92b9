"""Artifact events."""

from __future__ import annotations

import msgspec

from ._envelope import Event


class ArtifactMaterialized(Event, frozen=True, kw_only=True, tag="artifact.materialized"):
    """A new version of an artifact name was stored and its version number claimed.

    ``numeric_count`` is how many numbered versions the name has including
    this one; the next numbered version is ``numeric_count + 1``. It is carried
    on every version so the latest event of a name is enough to claim the next.
    """

    artifact_version_id: str
    name: str
    version: str
    numeric_count: int
    uri: str
    artifact_type: str
    data_type: str
    materializer: str
    content_hash: str
    size: int
    producer_run_id: str | None = None
    producer_step_run_id: str | None = None
    output_name: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    visualizations: dict[str, str] = msgspec.field(default_factory=dict)
