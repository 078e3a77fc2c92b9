"""The HTTP query API over Cairn's read models.

``create_app(database_url, projector_name=..., schema=..., token=..., limits=...)``
builds the Starlette app; ``serve_api(app, host, port)`` serves it in the running loop.
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
from .routes import MAX_LIMIT, MAX_POSITION, MAX_QUERY_BYTES, ArtifactSummary, Health

__all__ = [
    "MAX_LIMIT",
    "MAX_POSITION",
    "MAX_QUERY_BYTES",
    "ApiError",
    "ArtifactSummary",
    "BadRequestError",
    "DatabaseLimits",
    "DatabaseUnavailableError",
    "Health",
    "NotFoundError",
    "ProjectorBehindError",
    "create_app",
    "serve_api",
]
