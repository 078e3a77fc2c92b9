"""Logging for the stack's processes: JSON lines, tracebacks without locals, secrets masked.

Unconfigured, structlog renders exceptions with rich and ``show_locals``: every
local of every frame lands in the log, request headers (``Bearer <token>``)
and connection URLs included. :func:`configure_logging` replaces that, once per
process, for structlog and for the standard library's loggers (uvicorn's).

The service process logs to its stdout, which ``cairn up`` points at a file under
``$CAIRN_HOME/logs``; the ``cairn`` command itself logs what it starts and stops
to a :class:`LogFile` there too, and to the terminal only when asked (``-v``).
``CAIRN_LOG_LEVEL`` (debug, info, warning) sets how much they write.

Files get one JSON object per line (``timestamp``, ``level``, ``event``, the bound
context, ``exception`` as plain text), for machines; people read them through
``cairn logs`` and ``-v``, which show each line as :func:`readable` renders it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, TextIO, cast
from urllib.parse import quote

import structlog
from structlog.typing import Processor, WrappedLogger

MASK = "***"
LEVEL_ENV = "CAIRN_LOG_LEVEL"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def level_from_env() -> int:
    """The level ``CAIRN_LOG_LEVEL`` names (info when unset); ValueError naming the choices."""
    name = os.environ.get(LEVEL_ENV, "info").strip().lower() or "info"
    if name not in _LEVELS:
        raise ValueError(
            f"{LEVEL_ENV}={name!r} is not a log level; use one of {', '.join(_LEVELS)}."
        )
    return _LEVELS[name]


class LogFile:
    """A text stream that appends to ``path`` and, given ``echo``, copies each line there.

    The file (0600, in a 0700 directory) is opened on the first line written, so a
    command that logs nothing leaves nothing behind.
    """

    def __init__(self, path: Path, echo: TextIO | None = None) -> None:
        self.path = path
        self.echo = echo
        self._file: IO[str] | None = None

    def write(self, text: str) -> int:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.fchmod(fd, 0o600)
            self._file = os.fdopen(fd, "a", encoding="utf-8")
        self._file.write(text)
        if self.echo is not None:
            self.echo.write("".join(readable(line) + "\n" for line in text.splitlines()))
        return len(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
        if self.echo is not None:
            self.echo.flush()


class SecretMask:
    """A processor (after the renderer) that replaces each secret with ``***`` in a log line.

    It works on the rendered line, so a secret is masked wherever it appears: in
    a field, in an exception message, in a traceback.
    """

    def __init__(self, secrets: Iterable[str | None]) -> None:
        forms = {
            form
            for secret in secrets
            if secret
            for form in (secret, quote(secret, safe=""), json.dumps(secret)[1:-1])
        }
        self._forms = sorted(forms, key=len, reverse=True)  # longest first: overlaps go whole

    def __call__(self, _logger: WrappedLogger, _method: str, line: Any) -> Any:
        if isinstance(line, str):
            for form in self._forms:
                line = line.replace(form, MASK)
        return line


def configure_logging(
    stream: TextIO | LogFile, secrets: Iterable[str | None] = (), level: int = logging.INFO
) -> None:
    """Send structlog and stdlib logging to ``stream`` as JSON lines, masking ``secrets``.

    Called once per process. structlog's lines below ``level`` are dropped; tracebacks
    are plain text (no locals, which may hold tokens and passwords).
    """
    mask = SecretMask(secrets)
    renderer = structlog.processors.JSONRenderer(sort_keys=False)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
            mask,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=cast(TextIO, stream)),  # writes only
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.processors.format_exc_info],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer, mask],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)  # uvicorn's errors, not its access lines


_console = structlog.dev.ConsoleRenderer(
    colors=False, exception_formatter=structlog.dev.plain_traceback
)


def readable(line: str) -> str:
    """A JSON log line as a person reads it (time, level, event, fields, traceback);
    any other line (nats-server's, Postgres's) as it is."""
    if not line.startswith("{"):
        return line
    try:
        fields = json.loads(line)
    except ValueError:
        return line
    if not isinstance(fields, dict) or "event" not in fields:
        return line
    return str(_console(None, str(fields.get("level", "info")), fields))
