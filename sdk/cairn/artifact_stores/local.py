"""An artifact store on the local filesystem: plain files under one root directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO, Any

from cairn.artifact_stores.base import ArtifactStore, digest_entry_header
from cairn.artifact_stores.errors import (
    ArtifactNotFoundError,
    ArtifactStoreError,
    UnsafePathError,
)

__all__ = ["LocalArtifactStore", "local_path"]

_NOT_PLAIN = frozenset(("", ".", ".."))
_CHUNK = 1 << 20  # 1 MiB: large enough to amortise syscalls, small enough to stream big files


class LocalArtifactStore(ArtifactStore):
    """Artifact store in a local directory; uris are absolute local paths (str).

    The root is created if missing and resolved once (symlinks included).
    Every uri is resolved with os.path.realpath and must lie inside the root.
    Writes are not fsync'ed: this store favours speed over durability on power loss.
    The path check guards against untrusted names and uris, not against another
    process swapping directories for symlinks while an operation runs.
    """

    def __init__(self, root: str | Path) -> None:
        os.makedirs(root, exist_ok=True)
        self._root = os.path.realpath(root)
        # Prefix test is equivalent to os.path.commonpath for resolved paths, and cheaper.
        self._root_prefix = self._root if self._root.endswith(os.sep) else self._root + os.sep

    @classmethod
    def at(cls, location: str) -> LocalArtifactStore:
        """The store rooted at a plain path or a ``file:`` uri (created if missing).

        See :func:`local_path` for what each form means and which are refused.
        """
        return cls(local_path(location))

    @classmethod
    def version_root(cls, uri: str) -> str:
        return os.path.dirname(os.path.dirname(uri.rstrip(os.sep)))

    def __repr__(self) -> str:
        return f"LocalArtifactStore(root={self._root!r})"

    @property
    def root(self) -> str:
        return self._root

    def join(self, base: str, *parts: str) -> str:
        return os.path.join(base, *parts)

    # -- path safety -------------------------------------------------------------------

    def _inside(self, real: str) -> bool:
        return real == self._root or real.startswith(self._root_prefix)

    def holds(self, uri: str) -> bool:
        """Whether ``uri`` resolves (symlinks included) to a path inside the root."""
        return self._inside(os.path.realpath(uri))

    def _resolve(self, uri: str | os.PathLike[str]) -> str:
        """Return the real path of uri, or raise UnsafePathError if it is outside the root."""
        return self._locate(uri)[0]

    def _locate(self, uri: str | os.PathLike[str]) -> tuple[str, str | None]:
        """Return (real path of uri, its first missing ancestor directory if known, else None)."""
        if type(uri) is str and uri.startswith(self._root_prefix) and not os.altsep:
            located = self._locate_below_root(uri)
            if located is not None:
                return located
        real = os.path.realpath(uri)
        if not self._inside(real):
            raise UnsafePathError(
                f"{os.fspath(uri)!r} resolves to {real!r}, outside the artifact store root "
                f"{self._root!r}; use a uri from artifact_uri() or under the root, without '..' "
                "or symlinks leading out of it."
            )
        return real, None

    def _locate_below_root(self, uri: str) -> tuple[str, str | None] | None:
        """Fast path of _locate for uris spelled under the real root; None means "use realpath".

        Equivalent to realpath for such uris: with no "", "." or ".." segments, the
        path resolves to itself unless a component is a symlink, which we detect with
        one lstat per component below the root (realpath would lstat every component
        from "/"). A missing component ends the walk: nothing below it exists.
        """
        parts = uri[len(self._root_prefix) :].split(os.sep)
        if not _NOT_PLAIN.isdisjoint(parts):  # checked up front: the walk may stop early
            return None
        path = self._root.rstrip(os.sep)
        for index, part in enumerate(parts):
            path = path + os.sep + part
            try:
                if stat.S_ISLNK(os.lstat(path).st_mode):
                    return None
            except (FileNotFoundError, NotADirectoryError):
                return uri, path if index < len(parts) - 1 else None
        return uri, None

    def _resolve_entry(self, uri: str | os.PathLike[str]) -> str:
        """Like _resolve, but a final symlink is kept (so remove() deletes the link itself)."""
        head, tail = os.path.split(os.fspath(uri).rstrip(os.sep))
        if tail in ("", ".", ".."):
            return self._resolve(uri)
        return os.path.join(self._resolve(head or "."), tail)

    @staticmethod
    def _not_found(uri: str | os.PathLike[str]) -> ArtifactNotFoundError:
        return ArtifactNotFoundError(
            f"nothing at {os.fspath(uri)!r} in the artifact store; check that the artifact "
            "was saved and that the uri comes from this store."
        )

    # -- files -------------------------------------------------------------------------

    def open(self, uri: str, mode: str = "rb") -> IO[Any]:
        path, missing = self._locate(uri)
        encoding = None if "b" in mode else "utf-8"
        reading = "r" in mode and "+" not in mode
        if missing is not None and not reading:  # a fresh artifact uri: skip the doomed open
            parent = os.path.dirname(path)
            if missing == parent:  # only the version directory is new: one mkdir suffices
                try:  # noqa: SIM105 (hot path: no context manager)
                    os.mkdir(parent)
                except FileExistsError:  # created concurrently; fine
                    pass
            else:
                os.makedirs(parent, exist_ok=True)
        try:
            return open(path, mode, encoding=encoding)
        except FileNotFoundError:
            if reading:
                raise self._not_found(uri) from None
        os.makedirs(os.path.dirname(path), exist_ok=True)  # parents were not known to be missing
        return open(path, mode, encoding=encoding)

    def exists(self, uri: str) -> bool:
        return os.path.exists(self._resolve(uri))

    def makedirs(self, uri: str) -> None:
        path = self._resolve(uri)
        try:  # a fresh artifact uri: its parent (the name's folder) usually exists
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
        except FileNotFoundError:
            os.makedirs(path, exist_ok=True)

    def listdir(self, uri: str) -> list[str]:
        try:
            return sorted(os.listdir(self._resolve(uri)))
        except FileNotFoundError:
            raise self._not_found(uri) from None

    def remove(self, uri: str) -> None:
        try:
            os.remove(self._resolve_entry(uri))
        except FileNotFoundError:
            raise self._not_found(uri) from None

    def rmtree(self, uri: str) -> None:
        import shutil  # only deletion needs it; keeps import of the store cheap

        path = self._resolve_entry(uri)
        if path == self._root:
            raise UnsafePathError(
                f"refusing to delete the artifact store root {self._root!r}; "
                "delete an artifact directory inside it instead."
            )
        if os.path.islink(path):
            raise ArtifactStoreError(f"{os.fspath(uri)!r} is a symlink; use remove() to delete it.")
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            raise self._not_found(uri) from None

    # -- trees -------------------------------------------------------------------------

    def _files(self, directory: str, prefix: str, out: list[tuple[str, str]]) -> None:
        """Append (relative posix path, real path) of every file under directory to out.

        Symlinked files count if they resolve inside the root (UnsafePathError otherwise);
        symlinked directories are not followed, so a tree cannot loop.
        """
        with os.scandir(directory) as entries:
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    self._files(entry.path, rel + "/", out)
                elif entry.is_symlink():
                    target = self._resolve(entry.path)
                    if os.path.isfile(target):
                        out.append((rel, target))
                elif entry.is_file(follow_symlinks=False):
                    out.append((rel, entry.path))

    def _tree(self, uri: str) -> tuple[str, list[tuple[str, str]] | None]:
        """Return (real path, files sorted by relative path), or (real path, None) for a file."""
        path = self._resolve(uri)
        files: list[tuple[str, str]] = []
        try:
            self._files(path, "", files)  # scandir first: a directory is the common case
        except NotADirectoryError:
            return path, None
        except FileNotFoundError:
            raise self._not_found(uri) from None
        files.sort()
        return path, files

    def size(self, uri: str) -> int:
        path, files = self._tree(uri)
        if files is None:
            return os.stat(path).st_size
        return sum(os.stat(real).st_size for _, real in files)

    def digest(self, uri: str) -> tuple[str, int]:
        import hashlib  # the OpenSSL binding costs ~4 ms to import; most importers never digest

        path, files = self._tree(uri)
        hasher = hashlib.sha256()
        if files is None:
            size = _feed_file(hasher, path)
        else:
            size = 0
            for rel, real in files:
                size += _feed_file(hasher, real, rel)
        return "sha256:" + hasher.hexdigest(), size


def local_path(location: str) -> str:
    """The directory a local artifact store location names; ArtifactStoreError if unclear.

    A plain path is used as written, ``~`` expanded (relative paths are relative to the
    working directory). A ``file:`` uri (scheme in any case) names an absolute path:
    ``file:///abs``, ``file:/abs`` or ``file://localhost/abs``, percent-escapes decoded.
    ``file://relative/dir`` is refused rather than guessed at: its first segment is a
    host (another machine's), not a directory, and so are ``?`` and ``#`` parts.
    """
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(location)
    if parts.scheme != "file":  # urlsplit lowercases the scheme
        if not location:
            raise ArtifactStoreError(
                "The artifact store location is empty; set CAIRN_ARTIFACT_STORE to a local "
                "directory path such as ~/cairn-artifacts."
            )
        return os.path.expanduser(location)
    wrong = f"Artifact store {location!r} is not a local directory uri"
    if parts.netloc not in ("", "localhost"):
        raise ArtifactStoreError(
            f"{wrong}: {parts.netloc!r} is its host part (another machine), since a file: uri's "
            f"path starts at its third slash. Write file:///{parts.netloc}{parts.path} for the "
            f"absolute path /{parts.netloc}{parts.path}, or the plain path "
            f"{parts.netloc}{parts.path} for one relative to the working directory."
        )
    if parts.query or parts.fragment:
        raise ArtifactStoreError(
            f"{wrong}: it has a '?' or '#' part, which a directory does not; write them "
            "percent-escaped (%3F, %23), or give the directory as a plain path."
        )
    if not parts.path.startswith("/"):
        given = f"{parts.path!r} is not one" if parts.path else "it names none"
        raise ArtifactStoreError(
            f"{wrong}: a file: uri names an absolute path, and {given}. Write "
            "file:///absolute/path, or a plain path for one relative to the working directory."
        )
    return unquote(parts.path)


def _feed_file(hasher: Any, path: str, rel: str | None = None) -> int:
    """Feed one file (framed with its relative path if rel is given) into hasher; return its size."""
    fd = os.open(path, os.O_RDONLY)
    try:
        remaining = size = os.fstat(fd).st_size
        if rel is not None:
            hasher.update(digest_entry_header(rel, size))
        while remaining > 0:
            chunk = os.read(fd, min(remaining, _CHUNK))
            if not chunk:
                raise ArtifactStoreError(
                    f"{path!r} shrank while it was being hashed; digest it again once the "
                    "writer has finished."
                )
            hasher.update(chunk)
            remaining -= len(chunk)
        return size
    finally:
        os.close(fd)
