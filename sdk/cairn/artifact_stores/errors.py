"""Errors raised by artifact stores.

Every error an artifact store raises on purpose derives from ArtifactStoreError,
so a caller can catch one class for "the store could not do this".
"""

from __future__ import annotations


class ArtifactStoreError(Exception):
    """An artifact store could not perform an operation."""


class UnsafePathError(ArtifactStoreError):
    """A name, version id or uri would read or write outside the store root.

    Raised before any file is touched; nothing was read or written.
    """


class ArtifactNotFoundError(ArtifactStoreError, FileNotFoundError):
    """The uri does not exist in the store.

    Also a FileNotFoundError, so code written against plain files keeps working.
    """
