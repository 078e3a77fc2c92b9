"""The HTTP query API over Cairn's read models.

``create_app(database_url, projector_name=..., schema=..., token=..., limits=...)``
builds the Starlette app; ``serve_api(app, host, port)`` serves it in the running loop;
``InProcessTransport(app, loop)`` lets a ``cairn.Client`` call it in-process. The shapes
it answers with are ``cairn.models``.
"""

from __future__ import annotations

from .app import create_app, serve_api
from .database import DatabaseLimits
from .errors import (
    ApiError,
    BadRequestError,
    DatabaseUnavailableError,
    NotFoundError,
    ProjectorBehindError,
)
from .in_process import InProcessTransport
from .routes import MAX_LIMIT, MAX_POSITION, MAX_QUERY_BYTES

__all__ = [
    "MAX_LIMIT",
    "MAX_POSITION",
    "MAX_QUERY_BYTES",
    "ApiError",
    "BadRequestError",
    "DatabaseLimits",
    "DatabaseUnavailableError",
    "InProcessTransport",
    "NotFoundError",
    "ProjectorBehindError",
    "create_app",
    "serve_api",
]
