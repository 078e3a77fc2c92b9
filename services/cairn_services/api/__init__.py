"""The HTTP query API over Cairn's read models.

``create_app(database_url, projector_name=..., schema=..., token=...)`` builds
the Starlette app; ``serve_api(app, host, port)`` serves it in the running loop.
"""

from __future__ import annotations

from .app import create_app, serve_api
from .errors import ApiError, BadRequestError, NotFoundError, ProjectorBehindError
from .routes import ArtifactSummary, Health

__all__ = [
    "ApiError",
    "ArtifactSummary",
    "BadRequestError",
    "Health",
    "NotFoundError",
    "ProjectorBehindError",
    "create_app",
    "serve_api",
]
