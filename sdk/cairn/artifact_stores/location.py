"""Choosing the artifact store for a location or a recorded uri, by its scheme.

A location (``CAIRN_ARTIFACT_STORE``, or the local stack's record) is a store's
root. Its scheme (in any case) picks the store class: a plain path or a ``file:``
uri is a :class:`LocalArtifactStore`; ``s3://bucket/prefix`` will be an S3 store,
which comes with Cairn's data-management release (issue 13) and registers itself
here with :func:`register_scheme`.
An artifact version's uri carries its store's scheme too, so loading a version
finds its store the same way.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from cairn.artifact_stores.base import ArtifactStore
from cairn.artifact_stores.errors import ArtifactStoreError
from cairn.artifact_stores.local import LocalArtifactStore

__all__ = [
    "register_scheme",
    "scheme_of",
    "store_class_for",
    "store_for",
    "store_for_uri",
    "store_holding",
]

#: The store class for each uri scheme; plain paths are "file".
_SCHEMES: dict[str, type[ArtifactStore]] = {"file": LocalArtifactStore}
#: Schemes Cairn knows of but has no store for yet, and when one comes.
_LATER = {
    "s3": "S3 artifact stores come in a later version of Cairn, its data-management release "
    "(issue 13)"
}


def register_scheme(scheme: str, store_class: type[ArtifactStore]) -> None:
    """Make ``store_class`` the store for locations and uris of ``scheme`` (e.g. "s3")."""
    _SCHEMES[scheme.lower()] = store_class
    store_for.cache_clear()


def scheme_of(location: str) -> str:
    """The scheme of a location or uri, lowercase: "file" for a plain path.

    A scheme is one followed by ``//`` (``S3://b``, ``file:///a``), or one Cairn knows
    (``file:/a``, ``s3:b``); other colons belong to a path (``runs:1`` is a directory).
    """
    scheme = urlsplit(location).scheme  # lowercased by urlsplit
    if not scheme:
        return "file"
    if scheme in _SCHEMES or scheme in _LATER or location[len(scheme) + 1 :].startswith("//"):
        return scheme
    return "file"


def store_class_for(location: str, *, what: str = "Artifact store") -> type[ArtifactStore]:
    """The store class for ``location``'s scheme; ArtifactStoreError if there is none yet.

    ``what`` names the location in the error ("Artifact store", "Artifact version uri").
    """
    scheme = scheme_of(location)
    found = _SCHEMES.get(scheme)
    if found is not None:
        return found
    known = ", ".join(f"{name}://" for name in sorted(_SCHEMES))
    why = _LATER.get(scheme, f"Cairn has no artifact store for it (it has {known})")
    raise ArtifactStoreError(
        f"{what} {location!r} uses '{scheme}://', which this version of Cairn cannot use: "
        f"{why}. Set CAIRN_ARTIFACT_STORE to a local directory path."
    )


@functools.cache
def store_for(location: str) -> ArtifactStore:
    """The store rooted at ``location`` (one per location and process)."""
    return store_class_for(location).at(location)


def store_for_uri(uri: str, configured: str | None) -> ArtifactStore:
    """The store holding ``uri``: the ``configured`` one if it holds it, else uri's own root.

    A version's uri is ``<root>/<name slug>/<version id>`` in its store's scheme, so its
    store is found from the uri alone when it is not the configured one.
    """
    if configured is not None:
        store = store_for(configured)
        if store.holds(uri):
            return store
    store_class = store_class_for(uri, what="Artifact version uri")
    return store_for(store_class.version_root(uri))


def store_holding(uri: str) -> ArtifactStore:
    """The store holding ``uri``, given this process's configured artifact store."""
    from cairn.settings import configured_artifact_store  # lazy: stores stay light to import

    return store_for_uri(uri, configured_artifact_store())
