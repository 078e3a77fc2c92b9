"""Logging for the service processes: plain lines, tracebacks without locals, secrets masked.

Unconfigured, structlog renders exceptions with rich and ``show_locals``: every
local of every frame lands in the log, request headers (``Bearer <token>``)
and connection URLs included. :func:`configure_logging` replaces that, once per
process, for structlog and for the standard library's loggers (uvicorn's).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, TextIO
from urllib.parse import quote

import structlog
from structlog.typing import Processor, WrappedLogger

MASK = "***"


class SecretMask:
    """A processor (after the renderer) that replaces each secret with ``***`` in a log line.

    It works on the rendered line, so a secret is masked wherever it appears: in
    a field, in an exception message, in a traceback.
    """

    def __init__(self, secrets: Iterable[str | None]) -> None:
        forms = {form for secret in secrets if secret for form in (secret, quote(secret, safe=""))}
        self._forms = sorted(forms, key=len, reverse=True)  # longest first: overlaps go whole

    def __call__(self, _logger: WrappedLogger, _method: str, line: Any) -> Any:
        if isinstance(line, str):
            for form in self._forms:
                line = line.replace(form, MASK)
        return line


def configure_logging(stream: TextIO, secrets: Iterable[str | None] = ()) -> None:
    """Send structlog and stdlib logging to ``stream`` as uncoloured lines, masking ``secrets``."""
    mask = SecretMask(secrets)
    renderer = structlog.dev.ConsoleRenderer(
        colors=False, exception_formatter=structlog.dev.plain_traceback
    )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), renderer, mask],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer, mask],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)  # uvicorn's errors, not its access lines
