"""What the stack's server launchers share: the process they started, `with` support, and
files only their owner may read (logs, passwords, configs holding them)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self


def write_private_file(path: Path, text: str, *, owner: tuple[int, int] | None = None) -> None:
    """Replace `path` with `text`, readable by its owner only (0600); `owner` is (uid, gid)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)  # the mode above does not narrow a tmp left by a crash
        if owner is not None:
            os.fchown(fh.fileno(), *owner)
        fh.write(text)
    tmp.replace(path)


def open_private_log(path: Path) -> BinaryIO:
    """`path` opened for appending; created 0600, and narrowed to 0600 if it was wider."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


class ManagedServer:
    """A server process started by this object; subclasses say how to start and stop it."""

    _proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs, else None."""
        return self._proc.pid if self.running and self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self, timeout: float = 10.0) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
