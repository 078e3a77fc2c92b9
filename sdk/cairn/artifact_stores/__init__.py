"""Artifact stores: where the files of artifact versions live.

`LocalArtifactStore` keeps plain files under a local directory. Every store
checks that each uri lies inside its root and raises `UnsafePathError` otherwise.
"""

from cairn.artifact_stores.base import ArtifactStore, artifact_slug, validate_version_id
from cairn.artifact_stores.errors import (
    ArtifactNotFoundError,
    ArtifactStoreError,
    UnsafePathError,
)
from cairn.artifact_stores.local import LocalArtifactStore

__all__ = [
    "ArtifactNotFoundError",
    "ArtifactStore",
    "ArtifactStoreError",
    "LocalArtifactStore",
    "UnsafePathError",
    "artifact_slug",
    "validate_version_id",
]
