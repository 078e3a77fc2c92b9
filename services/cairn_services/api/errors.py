"""Errors the API answers with: each becomes an ``ErrorBody`` with its status code."""

from __future__ import annotations


class ApiError(Exception):
    """An error a client sees as ``{"error": code, "message": message}`` with ``status``."""

    status = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(ApiError):
    status = 404
    code = "not_found"


class BadRequestError(ApiError):
    status = 400
    code = "bad_request"


class UnauthorizedError(ApiError):
    status = 401
    code = "unauthorized"


class ProjectorBehindError(ApiError):
    """The read models have not caught up with the sequence the client asked for."""

    status = 503
    code = "projector_behind"

    def __init__(self, projector: str, checkpoint: int, wanted: int, waited_s: float) -> None:
        super().__init__(
            f"Projector '{projector}' is behind: its checkpoint is {checkpoint}, the request "
            f"needs {wanted} (waited {waited_s:.1f}s). Retry later; if this persists, check "
            f"that the projector is running."
        )
        self.checkpoint, self.wanted = checkpoint, wanted
