"""Choosing the artifact store for a configured location or a recorded uri."""

from __future__ import annotations

import functools
import os

from cairn.artifact_stores.base import ArtifactStore
from cairn.artifact_stores.errors import ArtifactStoreError
from cairn.artifact_stores.local import LocalArtifactStore


@functools.cache
def store_for(location: str) -> ArtifactStore:
    """The store rooted at ``location`` (a local directory path)."""
    if "://" in location and not location.startswith("file://"):
        scheme = location.split("://", 1)[0]
        raise ArtifactStoreError(
            f"Artifact store {location!r} uses '{scheme}://', which this version of Cairn cannot "
            "write to yet; set CAIRN_ARTIFACT_STORE to a local directory path."
        )
    path = location.removeprefix("file://")
    os.makedirs(path, exist_ok=True)
    return LocalArtifactStore(path)


def store_for_uri(uri: str, configured: str | None) -> ArtifactStore:
    """The store holding ``uri``: the configured one if it contains it, else the uri's own root.

    A version's uri is ``<root>/<name slug>/<version id>``, so its root is two levels up.
    """
    if configured is not None:
        store = store_for(configured)
        root = os.path.realpath(store.root)
        if os.path.commonpath([root, os.path.realpath(uri)]) == root:
            return store
    return store_for(os.path.dirname(os.path.dirname(uri.rstrip("/"))))
