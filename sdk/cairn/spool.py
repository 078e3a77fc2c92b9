"""A durable local spool for events NATS has not acknowledged.

When NATS is unreachable, unacknowledged events (and pending version claims)
are appended here and fsync'd; they are sent again, in order, when NATS is
back, by this process or, if it exits first, by the next Cairn process that
starts (each spool file is locked by its live owner, so a file nobody holds
is an orphan to adopt). ``cairn spool status`` lists them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import msgspec
from cairn_events import (
    DEFAULT_STREAM,
    ArtifactMaterialized,
    EventStream,
    artifact_versions_path,
    encode,
    new_id,
)

SPOOL_SUFFIX = ".spool"


class SpoolEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One event waiting to be sent; ``claim`` marks an artifact version claim to redo."""

    subject: str
    event: msgspec.Raw
    claim: bool = False
    requested_version: str | None = None


class Unreadable(msgspec.Struct, frozen=True):
    """A spool line that does not decode (a torn write, a hand edit): quarantined, not retried."""

    line: bytes
    error: str


class SpoolFile(msgspec.Struct, frozen=True, kw_only=True):
    """One spool file as ``cairn spool status`` shows it."""

    path: Path
    entries: int
    orphaned: bool  # no live process holds it: the next Cairn process sends it


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SpoolEntry)


def encode_entries(entries: list[SpoolEntry]) -> bytes:
    return b"".join(_encoder.encode(e) + b"\n" for e in entries)


def decode_line(line: bytes) -> SpoolEntry | Unreadable:
    try:
        return _decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return Unreadable(line, str(exc))


class Spool:
    """This process's spool file, plus adoption of files left by processes that died."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / f"{socket.gethostname()}-{os.getpid()}-{new_id()}{SPOOL_SUFFIX}"
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self._fd

    def append(self, entries: list[SpoolEntry]) -> None:
        """Write ``entries`` durably (fsync) after those already spooled."""
        if entries:
            self._append_bytes(encode_entries(entries))

    def _append_bytes(self, data: bytes) -> None:
        fd = self._open()
        os.write(fd, data)
        os.fsync(fd)

    def read(self, start: int = 0) -> tuple[list[tuple[SpoolEntry | Unreadable, int]], int]:
        """The entries from offset ``start`` on, each with the offset just past it; and the end."""
        if self._fd is None:
            return [], 0
        with open(self.path, "rb") as f:
            f.seek(start)
            data = f.read()
        found, offset = [], start
        for line in data.splitlines(keepends=True):
            offset += len(line)
            if line.strip():
                found.append((decode_line(line), offset))
        return found, offset

    def count(self) -> int:
        """How many entries wait in this process's spool."""
        return len(self.read()[0])

    def discard_through(self, offset: int) -> None:
        """Forget the entries before ``offset`` (they were acknowledged); keep any added since."""
        if self._fd is None:
            return
        with open(self.path, "rb") as f:
            f.seek(offset)
            rest = f.read()
        os.ftruncate(self._fd, 0)
        if rest:
            os.write(self._fd, rest)
        os.fsync(self._fd)

    def adopt_orphans(self) -> int:
        """Move entries of spool files no live process holds into this one; return how many.

        Lines are moved as they are, so one that does not decode is quarantined by the
        sender instead of stopping the adoption.
        """
        adopted = 0
        for path, fd in _orphans(self.directory, but=self.path):
            with os.fdopen(fd, "rb") as f:
                lines = [
                    line if line.endswith(b"\n") else line + b"\n" for line in f if line.strip()
                ]
                if lines:
                    self._append_bytes(b"".join(lines))
                path.unlink()
            adopted += len(lines)
        return adopted

    def close(self) -> None:
        if self._fd is not None:
            empty = os.fstat(self._fd).st_size == 0
            os.close(self._fd)
            self._fd = None
            if empty:
                self.path.unlink(missing_ok=True)


def _orphans(directory: Path, *, but: Path | None = None) -> Iterator[tuple[Path, int]]:
    """Spool files no live process holds, each opened and locked (the caller closes the fd)."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob(f"*{SPOOL_SUFFIX}")):
        if path == but:
            continue
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its owner is alive and will send them itself
            os.close(fd)
            continue
        yield path, fd


def spool_files(directory: Path) -> list[SpoolFile]:
    """Every spool file under ``directory`` with its entry count and whether it is orphaned."""
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob(f"*{SPOOL_SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        with os.fdopen(fd, "rb") as f:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                orphaned = True
            except BlockingIOError:
                orphaned = False
            entries = sum(1 for line in f if line.strip())
        if entries:
            found.append(SpoolFile(path=path, entries=entries, orphaned=orphaned))
    return found


def discard_orphans(directory: Path) -> int:
    """Delete the spool files no live process holds; how many entries went with them."""
    discarded = 0
    for path, fd in _orphans(directory):
        with os.fdopen(fd, "rb") as f:
            discarded += sum(1 for line in f if line.strip())
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return discarded


def write_orphan(directory: Path, entries: list[SpoolEntry]) -> Path:
    """A new unlocked spool file holding ``entries``: the next Cairn process to connect sends it."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"requeued-{new_id()}{SPOOL_SUFFIX}"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(encode_entries(entries))
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


def claim_entry(
    template: ArtifactMaterialized, requested: str | None, stream: EventStream = DEFAULT_STREAM
) -> SpoolEntry:
    """A version claim to redo: the template of the version and the version asked for.

    Its subject is the wildcard the claim compares and sets over in ``stream``: the redo
    claims again from the template, so the subject only says, in logs and quarantine
    records, which name the claim was for.
    """
    return SpoolEntry(
        subject=stream.subject(artifact_versions_path(template.name)),
        event=msgspec.Raw(encode(template)),
        claim=True,
        requested_version=requested,
    )


def sendable_units(
    entries: list[tuple[SpoolEntry | Unreadable, int]], max_run: int
) -> Iterator[tuple[SpoolEntry | Unreadable | list[SpoolEntry], int]]:
    """Spooled entries as what is sent at once: each claim alone, events in runs up to ``max_run``.

    Each unit comes with the spool offset just past it.
    """
    run: list[SpoolEntry] = []
    run_end = 0
    for entry, end in entries:
        if isinstance(entry, SpoolEntry) and not entry.claim:
            run.append(entry)
            run_end = end
            if len(run) < max_run:
                continue
            yield run, run_end
            run = []
            continue
        if run:
            yield run, run_end
            run = []
        yield entry, end
    if run:
        yield run, run_end
