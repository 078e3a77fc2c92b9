"""One process at a time starts, repairs or stops the local stack: a lock file under CAIRN_HOME."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from cairn_services.stack.errors import StackError

LOCK_NAME = "stack.lock"
_POLL_S = 0.05


@contextlib.contextmanager
def stack_lock(home: Path, timeout: float) -> Iterator[None]:
    """Hold ``$CAIRN_HOME/stack.lock`` (flock) for the block; StackError after ``timeout`` s.

    The kernel drops the lock when its holder exits, so a crashed holder never
    leaves it stale. The holder's pid is written in the file for the message.
    """
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = home / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    raise StackError(
                        f"Another process (pid {holder}) has been starting or stopping the "
                        f"local stack under {home} for over {timeout:.0f} s (it holds {path}). "
                        f"Wait for it to finish and try again; if it is stuck, end it "
                        f"(kill {holder})."
                    ) from None
                time.sleep(_POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
