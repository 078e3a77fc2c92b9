"""Errors a user of the SDK can meet; each message says what was wrong and what to do."""

from __future__ import annotations


class CairnError(Exception):
    """Base of every Cairn error."""


class StepDefinitionError(CairnError):
    """A step or pipeline is declared in a way Cairn cannot run."""


class CallError(StepDefinitionError, TypeError):
    """A step or pipeline was called with arguments its function does not take."""


class ParameterError(CairnError, TypeError):
    """A step or pipeline parameter cannot be recorded (not JSON) or does not fit its annotation."""


class StepTypeError(CairnError, TypeError):
    """A step input or output does not match its annotation."""

    def __init__(self, step: str, what: str, expected: str, actual: str, detail: str = "") -> None:
        self.step, self.what, self.expected, self.actual = step, what, expected, actual
        self.detail = detail
        message = f"Step '{step}' {what}: expected {expected}, got {actual}"
        super().__init__(message + (f" ({detail})" if detail else ""))


class ArtifactNameError(CairnError, KeyError):
    """An artifact name template uses a placeholder no substitution provides."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class ArtifactVersionError(CairnError, ValueError):
    """An explicit artifact version is malformed or already taken."""


class EventRefusedError(CairnError):
    """NATS refused an event for good; it is quarantined beside the spool (`cairn spool status`)."""


class StackUnavailableError(CairnError, ConnectionError):
    """No NATS server (or query API) can be reached."""


class NotFoundError(CairnError, KeyError):
    """A run, step or artifact that the query asked for does not exist."""

    def __str__(self) -> str:
        return str(self.args[0])


class AmbiguousError(CairnError, KeyError):
    """An id prefix that several ids share; the message lists them (ZenML's ``ZenKeyError``)."""

    def __str__(self) -> str:
        return str(self.args[0])


class ApiError(CairnError):
    """The query API answered with an error that is not a missing entity."""


class ServiceUnavailableError(StackUnavailableError, ApiError):
    """The query API is up but cannot answer now: its database is down or the projector behind.

    Retry after ``retry_after`` seconds (None when the API did not say how long).
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
