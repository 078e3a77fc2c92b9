"""A durable local spool for events NATS has not acknowledged.

When NATS is unreachable, unacknowledged events (and pending version claims)
are appended here and fsync'd; they are sent again, in order, when NATS is
back, by this process or, if it exits first, by the next Cairn process that
starts (each spool file is locked by its live owner, so a file nobody holds
is an orphan to adopt).
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

import msgspec
from cairn_events import new_id


class SpoolEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One event waiting to be sent; ``claim`` marks an artifact version claim to redo."""

    subject: str
    event: msgspec.Raw
    claim: bool = False
    requested_version: str | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SpoolEntry)


class Spool:
    """This process's spool file, plus adoption of files left by processes that died."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / f"{socket.gethostname()}-{os.getpid()}-{new_id()}.spool"
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self._fd

    def append(self, entries: list[SpoolEntry]) -> None:
        """Write ``entries`` durably (fsync) after those already spooled."""
        if not entries:
            return
        fd = self._open()
        os.write(fd, b"".join(_encoder.encode(e) + b"\n" for e in entries))
        os.fsync(fd)

    def read(self) -> tuple[list[SpoolEntry], int]:
        """Every spooled entry, and the file offset just past them."""
        if self._fd is None:
            return [], 0
        with open(self.path, "rb") as f:
            data = f.read()
        return [_decoder.decode(line) for line in data.splitlines() if line.strip()], len(data)

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
        """Move entries of spool files no live process holds into this one; return how many."""
        if not self.directory.is_dir():
            return 0
        adopted = 0
        for path in sorted(self.directory.glob("*.spool")):
            if path == self.path:
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
            with os.fdopen(fd, "rb") as f:
                entries = [_decoder.decode(line) for line in f if line.strip()]
                self.append(entries)
                path.unlink()
            adopted += len(entries)
        return adopted

    def close(self) -> None:
        if self._fd is not None:
            empty = os.fstat(self._fd).st_size == 0
            os.close(self._fd)
            self._fd = None
            if empty:
                self.path.unlink(missing_ok=True)
