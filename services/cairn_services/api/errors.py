"""Errors the API answers with: each becomes an ``ErrorBody`` with its status code.

An error with ``retry_after`` also sends ``Retry-After`` (seconds): the request was
fine, the service could not answer it now.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error a client sees as ``{"error": code, "message": message}`` with ``status``."""

    status = 500
    code = "internal"
    retry_after: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(ApiError):
    status = 404
    code = "not_found"


class BadRequestError(ApiError):
    status = 400
    code = "bad_request"


class AmbiguousError(ApiError):
    """An id prefix matches more than one entity; the message lists them."""

    status = 409
    code = "ambiguous"


class UnauthorizedError(ApiError):
    status = 401
    code = "unauthorized"


class UriTooLongError(ApiError):
    status = 414
    code = "uri_too_long"


class HttpError(ApiError):
    """What Starlette refuses by itself: no such route (404), a wrong method (405), ..."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = "not_found" if status == 404 else "http_error"


class InternalError(ApiError):
    """A fault of the API itself; the body names ``error_id``, the log line tells the rest."""

    def __init__(self, error_id: str) -> None:
        super().__init__(
            f"The Cairn query API failed on this request (error id {error_id}). This is a bug, "
            f"not a problem with the request: report it with the error id, which the API's log "
            f"shows next to the details."
        )
        self.error_id = error_id


class ProjectorBehindError(ApiError):
    """The read models have not caught up with the sequence the client asked for."""

    status = 503
    code = "projector_behind"
    retry_after = 2

    def __init__(self, projector: str, checkpoint: int, wanted: int, waited_s: float) -> None:
        super().__init__(
            f"Projector '{projector}' is behind: its checkpoint is {checkpoint}, the request "
            f"needs {wanted} (waited {waited_s:.1f}s). Retry later; if this persists, check "
            f"that the projector is running."
        )
        self.checkpoint, self.wanted = checkpoint, wanted


class DatabaseUnavailableError(ApiError):
    """Postgres, which holds the read models, cannot answer now; ``reason`` says why in words."""

    status = 503
    code = "database_unavailable"

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(
            f"The read-model database is unavailable: {reason}. Retry in {retry_after}s; if "
            f"this persists, check that the Postgres the Cairn services use is running and "
            f"reachable from the query API."
        )
        self.reason, self.retry_after = reason, retry_after
