"""Errors a caller of the projector may meet."""

from __future__ import annotations


class ProjectorError(RuntimeError):
    """Base of the projector's own errors; the message says what to do."""


class ProjectorBusyError(ProjectorError):
    """Another process already runs a projector with this name on this schema."""


class ProjectorTimeoutError(ProjectorError, TimeoutError):
    """The checkpoint did not reach the wanted stream sequence in time."""


class ProjectorStoppedError(ProjectorError):
    """The projector is not running (never started, stopped, or its loop died)."""
