"""The local stack's log files: which name shows which file, printing their ends, following them.

Each server part writes its output to ``$CAIRN_HOME/logs/<part>.log`` (the
projector and the API share the service process's ``services.log``); the
``cairn`` command writes what ``up`` and ``down`` started and stopped to
``stack.log``. ``cairn logs [NAME] [-f]`` reads them through this module.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ..logs import readable
from .errors import StackError
from .parts import Part, log_file, logs_dir

#: What ``cairn logs`` accepts, and the part whose file each shows ("stack": the cairn command's).
LOG_NAMES: dict[str, str] = {
    "nats": Part.NATS.value,
    "postgres": Part.POSTGRES.value,
    "services": Part.SERVICES.value,
    "projector": Part.SERVICES.value,
    "api": Part.SERVICES.value,
    "stack": "stack",
}
#: How often ``follow`` looks for new lines.
FOLLOW_POLL_S = 0.25
_TAIL_BLOCK = 64 * 1024


def cli_log_file(home: Path) -> Path:
    """Where the ``cairn`` command logs what it starts and stops."""
    return logs_dir(home) / "stack.log"


def log_files(home: Path, name: str | None) -> dict[str, Path]:
    """The files ``cairn logs NAME`` shows (every one when ``name`` is None), keyed by label.

    Raises StackError for a name that is not one of LOG_NAMES.
    """
    if name is None:
        keys = [*(part.value for part in Part), "stack"]
    elif name.lower() in LOG_NAMES:
        keys = [LOG_NAMES[name.lower()]]
    else:
        raise StackError(
            f"There is no log named {name!r}. Name one of {', '.join(LOG_NAMES)} "
            "(projector and api share the services log), or none for all of them."
        )
    return {
        key: cli_log_file(home) if key == "stack" else log_file(home, Part(key)) for key in keys
    }


def last_lines(path: Path, count: int | None) -> list[str]:
    """The last ``count`` lines of ``path`` (all of them when None); [] if it does not exist."""
    try:
        with open(path, "rb") as fh:
            if count is None:
                data = fh.read()
            else:
                end = fh.seek(0, os.SEEK_END)
                start = end
                data = b""
                while start > 0 and data.count(b"\n") <= count:
                    start = max(0, start - _TAIL_BLOCK)
                    fh.seek(start)
                    data = fh.read(end - start)
    except FileNotFoundError:
        return []
    lines = data.decode(errors="replace").splitlines()
    return lines if count is None else lines[-count:] if count else []


class NewLines:
    """What is added to ``files`` from now on, as labelled lines (complete ones only).

    A file that appears later is read from its start, one that shrank (truncated,
    replaced) from its new start.
    """

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files
        self._offsets = {key: _size(path) for key, path in files.items()}
        self._partial = dict.fromkeys(files, b"")

    def read(self) -> list[tuple[str, str]]:
        """(key, line) for each line completed since the last read."""
        found = []
        for key, path in self.files.items():
            size = _size(path)
            if size < self._offsets[key]:
                self._offsets[key], self._partial[key] = 0, b""
            if size == self._offsets[key]:
                continue
            with open(path, "rb") as fh:
                fh.seek(self._offsets[key])
                chunk = fh.read(size - self._offsets[key])
            self._offsets[key] += len(chunk)
            *complete, self._partial[key] = (self._partial[key] + chunk).split(b"\n")
            found += [(key, line.decode(errors="replace")) for line in complete]
        return found


def write_lines(lines: list[tuple[str, str]], out: TextIO, *, prefix: bool, width: int) -> None:
    """Write (key, line) pairs readably (see :func:`~cairn_services.logs.readable`), each
    labelled ``key | `` when ``prefix``."""
    for key, raw in lines:
        for line in readable(raw).splitlines() or [""]:
            out.write(f"{key:{width}} | {line}\n" if prefix else f"{line}\n")
    out.flush()


def follow(
    files: dict[str, Path],
    out: TextIO,
    *,
    prefix: bool,
    poll_s: float = FOLLOW_POLL_S,
    keep_going: Callable[[], bool] = lambda: True,
) -> None:
    """Print lines as they are added to ``files`` until ``keep_going()`` is false (or Ctrl-C)."""
    new = NewLines(files)
    width = max(map(len, files))
    while keep_going():
        write_lines(new.read(), out, prefix=prefix, width=width)
        time.sleep(poll_s)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
