"""The artifact store interface: where materializers put the bytes of artifacts.

A store owns one root. Every uri it hands out or accepts lies inside that root;
every method checks this and raises UnsafePathError otherwise, because names,
version ids and uris may come from events or requests that we do not trust.

The interface is deliberately small (open/exists/makedirs/listdir/size/digest/
rmtree/remove, and join for building uris) so that an object store (S3) can
implement it as well as a local directory. Each store class serves one uri
scheme (see cairn.artifact_stores.location): it is made for a location with
``at()`` and finds the root of a version's uri with ``version_root()``.
"""

from __future__ import annotations

import abc
import functools
import re
from typing import IO, Any

from cairn.artifact_stores.errors import UnsafePathError

__all__ = ["ArtifactStore", "artifact_slug", "digest_entry_header", "validate_version_id"]

_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SLUG_MAX_LENGTH = 100


@functools.lru_cache(maxsize=4096)  # artifact names repeat on every run of a pipeline
def artifact_slug(name: str) -> str:
    """Return a single path segment for an artifact name.

    Keeps [A-Za-z0-9_.-], replaces every other character with "_", trims to 100
    characters. The result is never empty, "." or "..", and never contains a
    path separator. Different names may share a slug; the version id keeps
    locations distinct.
    """
    slug = _SLUG_UNSAFE.sub("_", name)[:SLUG_MAX_LENGTH]
    if not slug.strip("."):  # "", ".", "..", "..." would be empty or climb directories
        slug = "_" * max(len(slug), 1)
    return slug


def validate_version_id(artifact_version_id: object) -> str:
    """Return the canonical (lowercase, hyphenated) form of a UUID version id.

    Accepts a str or any UUID object whose str() is the hyphenated form.
    Raises UnsafePathError for anything else: the id becomes a path segment.
    """
    text = (
        artifact_version_id if isinstance(artifact_version_id, str) else str(artifact_version_id)
    ).lower()
    if _UUID.fullmatch(text) is None:
        raise UnsafePathError(
            f"artifact version id {artifact_version_id!r} is not a UUID in the form "
            "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx; pass the id of the artifact version "
            "(e.g. str(uuid.uuid4()))."
        )
    return text


class ArtifactStore(abc.ABC):
    """A place where artifact versions are stored as files under one root.

    Uris are strings whose form depends on the store (absolute local paths for
    LocalArtifactStore). Missing uris raise ArtifactNotFoundError (also a
    FileNotFoundError); uris outside the root raise UnsafePathError before
    anything is touched.
    """

    @classmethod
    @abc.abstractmethod
    def at(cls, location: str) -> ArtifactStore:
        """The store rooted at ``location``, a uri of this store's scheme."""

    @classmethod
    def version_root(cls, uri: str) -> str:
        """The root of the store an artifact version's uri was made by (see artifact_uri)."""
        return uri.rstrip("/").rsplit("/", 2)[0]

    @property
    @abc.abstractmethod
    def root(self) -> str:
        """The root uri; every uri of this store lies inside it."""

    def holds(self, uri: str) -> bool:
        """Whether ``uri`` lies inside this store's root (checks nothing on storage)."""
        root = self.root.rstrip("/")
        return uri == root or uri.startswith(root + "/")

    def artifact_uri(self, name: str, artifact_version_id: str) -> str:
        """Return the location for one artifact version: <root>/<slug(name)>/<version id>.

        Pure computation: creates nothing and checks nothing on storage. The
        version id must be a UUID (UnsafePathError otherwise).
        """
        return self.join(self.root, artifact_slug(name), validate_version_id(artifact_version_id))

    def join(self, base: str, *parts: str) -> str:
        """Join path segments the way this store's uris are joined ("/" by default)."""
        return "/".join((base.rstrip("/"), *parts))

    @abc.abstractmethod
    def open(self, uri: str, mode: str = "rb") -> IO[Any]:
        """Open a file. Write modes ("w", "a", "x", "+") create missing parent directories.

        Text modes use UTF-8. Reading a missing file raises ArtifactNotFoundError.
        """

    @abc.abstractmethod
    def exists(self, uri: str) -> bool:
        """Return whether a file or directory exists at uri."""

    @abc.abstractmethod
    def makedirs(self, uri: str) -> None:
        """Create the directory uri and its parents; no error if it already exists."""

    @abc.abstractmethod
    def listdir(self, uri: str) -> list[str]:
        """Return the names (not uris) of the entries of directory uri, sorted."""

    @abc.abstractmethod
    def size(self, uri: str) -> int:
        """Return the size in bytes of a file, or the total size of the files of a directory tree."""

    @abc.abstractmethod
    def digest(self, uri: str) -> tuple[str, int]:
        """Return ("sha256:<hex>", total bytes) of a file or a directory tree.

        For a file: the SHA-256 of its content. For a directory: SHA-256 over
        its files in sorted relative-path order (POSIX separators), each fed as
        relative path, a NUL byte, its size as 8 bytes big-endian, then its
        content. Same content and layout -> same digest, on any store.
        """

    @abc.abstractmethod
    def rmtree(self, uri: str) -> None:
        """Delete the directory uri and everything under it. The root itself cannot be deleted."""

    @abc.abstractmethod
    def remove(self, uri: str) -> None:
        """Delete the file uri."""


def digest_entry_header(relative_path: str, size: int) -> bytes:
    """Bytes fed to the hash before a file's content in a directory digest.

    Stores share this so that the same tree has the same digest everywhere.
    """
    return relative_path.encode("utf-8") + b"\0" + size.to_bytes(8, "big")
